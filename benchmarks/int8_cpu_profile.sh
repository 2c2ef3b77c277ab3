#!/usr/bin/env bash
# CPU time per INT8 pass, by function, on one core: robust against other processes on the
# machine (perf counts samples only while this process runs, so being preempted does not
# inflate anything, unlike wall-clock profiles on a loaded 2-core box). Runs `mpq profile`
# pinned to one core, keeps the samples from the first INT8 GEMM tile to the end (the INT8
# warm-up and timed runs) and prints ms per pass per symbol.
#
#   benchmarks/int8_cpu_profile.sh [MPQ] [MODEL] [DATA] [BATCH]
#   benchmarks/int8_cpu_profile.sh /work/baseline/mpq         # an older build, same rows
#
# Needs perf and python3. ONNX Runtime's counterpart (its symbols are stripped): CPU time per
# run from time.process_time() with intra_op_num_threads=1 (see benchmarks/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
MPQ=${1:-.build/release/mpq}
MODEL=${2:-out/minilm/minilm.onnx}
DATA=${3:-out/minilm/calib64.npz}
BATCH=${4:-16}
RUNS=3
TMP=$(mktemp -d)
"$MPQ" calibrate "$MODEL" --data "$DATA" --out "$TMP/calib.json" --quiet
perf record -q -F 1999 -o "$TMP/perf.data" taskset -c 0 "$MPQ" profile "$MODEL" --data "$DATA" --batch-size "$BATCH" \
    --runs $RUNS --precision int8 --calibration "$TMP/calib.json" > /dev/null 2>&1
perf script -i "$TMP/perf.data" -F time,ip,sym 2>/dev/null | python3 -c '
import sys, collections
hz, passes = 1999, '"$((RUNS + 1))"'
syms = [(line.split() + ["?", "?", "?"])[2] for line in sys.stdin if line.strip()]
start = next(i for i, s in enumerate(syms) if s.startswith("tile_"))
window = syms[start:]
print("CPU ms per INT8 pass (1 core, %d passes): %.1f" % (passes, len(window) / hz * 1000 / passes))
for s, k in collections.Counter(window).most_common(25):
    print("%7.1f ms  %5.1f%%  %s" % (k / hz * 1000 / passes, 100 * k / len(window), s[:100]))
'
rm -rf "$TMP"
