#!/usr/bin/env bash
# `--metric-command` with a Python top-1 script (examples/metrics/top1.py) must score exactly
# what the built-in `--metric top1` scores: `mpq eval` on the digits CNN (FP32 and all-INT8)
# and `mpq search` on the degrading MLP (every search and holdout number, and the map).
#
#   MPQ=.build/release/mpq PYTHON=python3 tools/crosscheck/metric_command.sh OUT_DIR
set -euo pipefail
cd "$(dirname "$0")/../.."
MPQ=${MPQ:?path of the mpq binary}
PYTHON=${PYTHON:-python3}
OUT=${1:-.build/crosscheck}
F=Tests/Fixtures
mkdir -p "$OUT"
CMD="$PYTHON examples/metrics/top1.py"
failed=0

for precision in fp32 int8; do
  extra=()
  if [ "$precision" = int8 ]; then extra=(--precision int8 --calibration "$F/digits_calib.npz"); fi
  a=$("$MPQ" eval "$F/digits_cnn.onnx" --data "$F/digits_holdout.npz" --metric top1 "${extra[@]}" --json)
  b=$("$MPQ" eval "$F/digits_cnn.onnx" --data "$F/digits_holdout.npz" --metric-command "$CMD" "${extra[@]}" --json)
  if ! "$PYTHON" - "$a" "$b" "$precision" <<'PY'
import json, sys
a, b = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print("metric-command eval %s: top1 %.2f, command %.2f" % (sys.argv[3], a["score"], b["score"]))
sys.exit(0 if a["score"] == b["score"] else 1)
PY
  then failed=1; fi
done

splits=(--calibration "$F/breast_cancer_raw_mlp_calib.npz" --search "$F/breast_cancer_raw_mlp_search.npz"
        --holdout "$F/breast_cancer_raw_mlp_holdout.npz" --strategy greedy --budget 2 --sensitivity always)
rc=0; "$MPQ" search "$F/breast_cancer_raw_mlp.onnx" "${splits[@]}" --metric top1 --out "$OUT/mc_top1.map.json" > /dev/null || rc=$?
[ "$rc" -eq 0 ] || [ "$rc" -eq 3 ] || { echo "metric-command: search --metric top1 exited $rc" >&2; failed=1; }
rc=0; "$MPQ" search "$F/breast_cancer_raw_mlp.onnx" "${splits[@]}" --metric-command "$CMD" --out "$OUT/mc_command.map.json" > /dev/null || rc=$?
[ "$rc" -eq 0 ] || [ "$rc" -eq 3 ] || { echo "metric-command: search --metric-command exited $rc" >&2; failed=1; }
if ! "$PYTHON" - "$OUT/mc_top1.map.json" "$OUT/mc_command.map.json" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
def numbers(d):
    r = d["result"]
    # McNemar needs hits, and the resolution note needs a per-sample right/wrong metric
    # (Search/SplitResolution.swift): built-in metrics only, not a command's score.
    holdout = {k: v for k, v in r["holdout"].items() if k not in ("mcnemar_p", "resolution_note")}
    return r["search"], holdout, [(l["name"], l["precision"]) for l in d["layers"]]
na, nb = numbers(a), numbers(b)
print("metric-command search: top1 search %s holdout %s; command search %s holdout %s; maps %s" % (
    na[0], na[1], nb[0], nb[1], "equal" if na[2] == nb[2] else "DIFFER"))
sys.exit(0 if na == nb else 1)
PY
then failed=1; fi
exit $failed
