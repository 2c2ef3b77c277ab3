#!/usr/bin/env bash
# FP32 latency of mpq before (an older release build), mpq now and ONNX Runtime, in
# interleaved rounds so that a shared machine's load hits all three alike: each round runs
# `mpq profile --runs 5` (sum of per-node medians) with both builds, then ORT's median of 5.
#
#   BEFORE=/tmp/base PYTHON=/work/venv/bin/python ROUNDS=4 benchmarks/fp32_vs_ort_interleaved.sh
#   MODELS="resnet18 resnet_digits" BATCHES="1 16" CPU=1 ... # a subset; CPU=1 adds CPU ms per run
#
# CPU=1: each build's CPU time (user + sys) per inference as well, from `/usr/bin/time` over
# `mpq profile --runs 21` minus `--runs 1` (loading and the warm-up cancel), divided by 20:
# on a machine shared with other jobs it moves less than wall time.
#
# Also per Conv: `MPQ_FP32_GEMM=openblas|mpq mpq profile ... --json` compares the two FP32
# Conv GEMMs within one build (docs/fp32-gemm.md).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
BEFORE=${BEFORE:?set BEFORE to a directory holding an older release build of mpq}
ROUNDS=${ROUNDS:-4}
NOW=${NOW:-"$(swift build -c release --show-bin-path)/mpq"}
RESNET18=${RESNET18:-/work/bench/resnet18_224}
MODELS=${MODELS:-resnet18 resnet_digits shapes_det}
BATCHES=${BATCHES:-1 16}
# CPU ms per inference of `$1 profile $2 --data $3 --batch-size $4` (see CPU=1 above).
cpu_ms() {
  local a b
  a=$( { /usr/bin/time -f "%U %S" "$1" profile "$2" --data "$3" --batch-size $4 --runs 1 --quiet >/dev/null; } 2>&1 | tail -1)
  b=$( { /usr/bin/time -f "%U %S" "$1" profile "$2" --data "$3" --batch-size $4 --runs 21 --quiet >/dev/null; } 2>&1 | tail -1)
  echo "$a $b" | awk '{printf "%.3f", (($3 + $4) - ($1 + $2)) * 1000 / 20}'
}
lscpu | grep "Model name"; uptime
total() { "$PYTHON" -c 'import json,sys; print("%.3f" % json.load(sys.stdin)["fp32_ms"])'; }
for spec in "resnet18 $RESNET18/model.onnx $RESNET18/calib.npz" \
            "resnet_digits Tests/Fixtures/resnet/resnet_digits.onnx Tests/Fixtures/resnet/resnet_digits_calib.npz" \
            "shapes_det Tests/Fixtures/detection/shapes_det.onnx Tests/Fixtures/detection/shapes_det_calib.npz"; do
  set -- $spec
  case " $MODELS " in *" $1 "*) ;; *) continue ;; esac
  [ -f "$2" ] || { echo "skip $1 ($2 missing)"; continue; }
  for bs in $BATCHES; do
    for r in $(seq 1 "$ROUNDS"); do
      b=$("$BEFORE/mpq" profile "$2" --data "$3" --batch-size $bs --runs 5 --json 2>/dev/null | total)
      n=$("$NOW" profile "$2" --data "$3" --batch-size $bs --runs 5 --json 2>/dev/null | total)
      o=$("$PYTHON" - "$2" "$3" $bs <<'PY'
import sys, time, numpy as np, onnxruntime as ort
model, calib, batch = sys.argv[1], sys.argv[2], int(sys.argv[3])
so = ort.SessionOptions(); so.intra_op_num_threads = 2; so.log_severity_level = 3
s = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
d = np.load(calib)
feeds = {i.name: (d[i.name] if i.name in d.files else d[d.files[0]])[:batch] for i in s.get_inputs()}
s.run(None, feeds)
t = []
for _ in range(5):
    a = time.perf_counter(); s.run(None, feeds); t.append(time.perf_counter() - a)
print("%.3f" % (float(np.median(t)) * 1e3))
PY
)
      cpu=""
      if [ "${CPU:-0}" = 1 ]; then cpu=", CPU per run: before $(cpu_ms "$BEFORE/mpq" "$2" "$3" $bs) ms, now $(cpu_ms "$NOW" "$2" "$3" $bs) ms"; fi
      echo "$1 batch $bs round $r: before $b ms, now $n ms, ORT $o ms$cpu"
    done
  done
done
uptime
