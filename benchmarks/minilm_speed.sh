#!/usr/bin/env bash
# MiniLM (all-MiniLM-L6-v2, seq 128) latency side by side in one run (issue 13): mpq before
# (a release build of an older commit, BEFORE=dir holding mpq-bench), mpq now, ONNX Runtime
# on the FP32 model and on mpq's all-INT8 QDQ export (--scheme ort), batch 1 and 16, the
# same rows for all: benchmarks/runtime_vs_ort.sh on out/minilm/ (from
# benchmarks/models/minilm.py). Needs a python with onnxruntime and numpy.
#
#   BEFORE=/work/baseline PYTHON=/work/venv/bin/python benchmarks/minilm_speed.sh [DATA.npz]
set -euo pipefail
cd "$(dirname "$0")/.."
D=out/minilm
DATA=${1:-$D/calib64.npz}
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
OUT=${OUT:-$D/speed} benchmarks/runtime_vs_ort.sh "minilm=$D/minilm.onnx,$DATA"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
