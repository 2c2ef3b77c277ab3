#!/usr/bin/env bash
# mpq's runtime against ONNX Runtime on the same models, batches and calibration data,
# side by side in one run: `mpq-bench model` (FP32, all-INT8 --scheme inputs, all-INT8
# --scheme ort) then ORT on the FP32 model and on mpq's all-INT8 ort-scheme export.
#
#   benchmarks/runtime_vs_ort.sh [NAME=MODEL.onnx,CALIB.npz ...]     # default: the fixtures
#   PYTHON=/path/venv/bin/python THREADS=1 benchmarks/runtime_vs_ort.sh ...
#   BEFORE=DIR benchmarks/runtime_vs_ort.sh ...   # also DIR/mpq-bench (an older release build)
#
# Shapes come from the calibration data (`inspect --data`), so models with dynamic
# dimensions (a transformer's sequence length) work too.
#
# Needs a python with onnxruntime and numpy. Prints lscpu's model line and the OpenBLAS
# environment first; compare only ratios from one run.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
THREADS=${THREADS:-$(nproc)}
OUT=${OUT:-.build/runtime_vs_ort}
mkdir -p "$OUT"
lscpu | grep -E "Model name|^CPU\(s\)|Flags" | sed -E 's/(Flags:).*(avx512_vnni|avx2).*/\1 ... \2 .../' | head -3
echo "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset} OPENBLAS_L2_SIZE=${OPENBLAS_L2_SIZE:-unset}; threads: OpenBLAS $THREADS, mpq INT8 kernels all cores ($(nproc)), ORT $THREADS"
swift build -c release --product mpq-bench >&2
swift build -c release --product mpq >&2
BIN="$(swift build -c release --show-bin-path)"
if [ $# -eq 0 ]; then
  set -- "digits_cnn=Examples/digits_cnn.onnx,Examples/digits_calib.npz" \
         "shapes_det=Tests/Fixtures/detection/shapes_det.onnx,Tests/Fixtures/detection/shapes_det_calib.npz"
fi
if [ -n "${BEFORE:-}" ]; then
  echo "== mpq before ($BEFORE/mpq-bench)"
  OPENBLAS_NUM_THREADS=$THREADS "$BEFORE/mpq-bench" model "$@"
  echo "== mpq now"
fi
OPENBLAS_NUM_THREADS=$THREADS "$BIN/mpq-bench" model "$@"
echo
echo "ONNX Runtime (intra_op_num_threads=$THREADS), min / median ms per batch over 15 runs after 3 warm-up"
for arg in "$@"; do
  name=${arg%%=*}; files=${arg#*=}; model=${files%%,*}; calib=${files#*,}
  "$BIN/mpq" calibrate "$model" --data "$calib" --out "$OUT/$name.calib.json" --quiet
  layers=$("$BIN/mpq" inspect "$model" --data "$calib" --json | "$PYTHON" -c 'import json,sys; d=json.load(sys.stdin); print(json.dumps({"layers": {n["name"]: "int8" for n in d["nodes"] if n.get("quantizable")}}))')
  echo "$layers" > "$OUT/$name.all.json"
  "$BIN/mpq" export "$model" --precision "$OUT/$name.all.json" --format qdq --scheme ort --calibration "$OUT/$name.calib.json" \
      --out "$OUT/$name.ort.onnx" --quiet
  "$PYTHON" - "$name" "$model" "$OUT/$name.ort.onnx" "$calib" "$THREADS" <<'PY'
import sys, time
import numpy as np
import onnxruntime as ort
name, fp32, qdq, calib, threads = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
def session(p):
    so = ort.SessionOptions(); so.intra_op_num_threads = threads; so.log_severity_level = 3
    return ort.InferenceSession(p, so, providers=["CPUExecutionProvider"])
def timed(s, feeds):
    for _ in range(3): s.run(None, feeds)
    t = []
    for _ in range(15):
        a = time.perf_counter(); s.run(None, feeds); t.append(time.perf_counter() - a)
    return min(t) * 1e3, float(np.median(t)) * 1e3
data = np.load(calib)
a, b = session(fp32), session(qdq)
inp = a.get_inputs()
n = len(data[inp[0].name] if inp[0].name in data.files else data["input"])
for batch in sorted({1, min(16, n)}):
    feeds = {i.name: (data[i.name] if i.name in data.files else data["input"])[:batch] for i in inp}
    f, q = timed(a, feeds), timed(b, feeds)
    print("%-22s %5d  fp32 %9.3f %9.3f   ort-export %9.3f %9.3f   ort-export/fp32 %5.2f" % (name, batch, f[0], f[1], q[0], q[1], q[0] / f[0]))
PY
done
