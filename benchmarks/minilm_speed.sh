#!/usr/bin/env bash
# MiniLM (all-MiniLM-L6-v2, seq 128) latency side by side in one run (issue 13): mpq before
# (a release build of an older commit, BEFORE=dir holding mpq-bench), mpq now, ONNX Runtime
# on the FP32 model and on mpq's all-INT8 QDQ export (--scheme ort), batch 1 and 16, the
# same rows for all. Needs out/minilm/ from benchmarks/models/minilm.py and a python with
# onnxruntime and numpy.
#
#   BEFORE=/work/baseline PYTHON=/work/venv/bin/python benchmarks/minilm_speed.sh [DATA.npz]
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
D=out/minilm
DATA=${1:-$D/calib64.npz}
OUT=${OUT:-$D/speed}
mkdir -p "$OUT"
BIN="$(swift build -c release --show-bin-path)"
lscpu | grep -E "Model name|^CPU\(s\)"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
"$BIN/mpq" calibrate $D/minilm.onnx --data "$DATA" --out "$OUT/calib.json" --quiet
layers=$("$BIN/mpq" inspect $D/minilm.onnx --data "$DATA" --json | "$PYTHON" -c 'import json,sys; d=json.load(sys.stdin); print(json.dumps({"layers": {n["name"]: "int8" for n in d["nodes"] if n.get("quantizable")}}))')
echo "$layers" > "$OUT/all_int8.json"
"$BIN/mpq" export $D/minilm.onnx --precision "$OUT/all_int8.json" --format qdq --scheme ort \
    --calibration "$OUT/calib.json" --out "$OUT/minilm.ort_qdq.onnx" --quiet
if [ -n "${BEFORE:-}" ]; then
  echo "== mpq before ($BEFORE)"
  "$BEFORE/mpq-bench" model "minilm=$D/minilm.onnx,$DATA"
fi
echo "== mpq now"
"$BIN/mpq-bench" model "minilm=$D/minilm.onnx,$DATA"
echo "== ONNX Runtime (intra_op_num_threads=$(nproc)), min / median ms per batch over 15 runs after 3 warm-up"
"$PYTHON" - $D/minilm.onnx "$OUT/minilm.ort_qdq.onnx" "$DATA" "$(nproc)" <<'PY'
import sys, time
import numpy as np
import onnxruntime as ort
fp32, qdq, data, threads = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
print("onnxruntime", ort.__version__)
def session(p):
    so = ort.SessionOptions(); so.intra_op_num_threads = threads; so.log_severity_level = 3
    return ort.InferenceSession(p, so, providers=["CPUExecutionProvider"])
def timed(s, feeds):
    for _ in range(3): s.run(None, feeds)
    t = []
    for _ in range(15):
        a = time.perf_counter(); s.run(None, feeds); t.append(time.perf_counter() - a)
    return min(t) * 1e3, float(np.median(t)) * 1e3
d = np.load(data)
a, b = session(fp32), session(qdq)
for batch in (1, 16):
    feeds = {i.name: d[i.name][:batch] for i in a.get_inputs()}
    f, q = timed(a, feeds), timed(b, feeds)
    print("minilm %5d  fp32 %9.3f %9.3f   ort-export %9.3f %9.3f" % (batch, f[0], f[1], q[0], q[1]))
PY
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
