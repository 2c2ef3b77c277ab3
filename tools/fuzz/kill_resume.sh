#!/usr/bin/env bash
# kill -9 at random moments of `mpq search` and `mpq sweep` with --state, then resume:
# every resumed run's map must be byte-identical to an uninterrupted run's (docs/search.md,
# "Resuming").
#
#   tools/fuzz/kill_resume.sh [N]          N kills per command (default 20)
#
# Environment: MPQ (binary, default .build/release/mpq, built if missing), WORK (scratch
# folder, default a new temporary one), SEED (bash RANDOM seed, default 1),
# MODES ("search sweep" by default), MAX_DELAY (upper bound of the random kill delay in
# seconds; default: the uninterrupted run's own duration).
set -u
cd "$(dirname "$0")/../.."
N=${1:-20}
MPQ=${MPQ:-.build/release/mpq}
MODES=${MODES:-search sweep}
RANDOM=${SEED:-1}
if [ ! -x "$MPQ" ]; then swift build -c release --product mpq >&2 || exit 1; fi
WORK=${WORK:-$(mktemp -d -t mpq-kill-resume.XXXXXX)}
mkdir -p "$WORK"

# The digits CNN with the cosine metric: a GA that takes a few seconds.
DATA=(--calibration Examples/digits_calib.npz --search Examples/digits_search.npz --holdout Examples/digits_holdout.npz
      --metric cosine --strategy evolutionary --seed 3 --generations 12 --population 16)
args_for() {
    case $1 in
        search) echo search Examples/digits_cnn.onnx "${DATA[@]}" --budget 0.005 ;;
        sweep)  echo sweep Examples/digits_cnn.onnx "${DATA[@]}" --budgets 0.002,0.005,0.1 ;;
    esac
}

now() { date +%s.%N; }
total_pass=0; total_fail=0
for mode in $MODES; do
    read -r -a cmd <<< "$(args_for "$mode")"
    ref="$WORK/$mode-reference.json"
    t0=$(now)
    "$MPQ" "${cmd[@]}" --out "$ref" > /dev/null 2>&1
    rc=$?
    t1=$(now)
    if [ $rc -ne 0 ] && [ $rc -ne 3 ]; then echo "$mode: uninterrupted run failed with exit $rc" >&2; exit 1; fi
    run_s=$(echo "$t1 - $t0" | bc)
    max_delay=${MAX_DELAY:-$run_s}
    echo "$mode: uninterrupted run ${run_s}s (exit $rc); $N kills at random moments in 0..${max_delay}s"
    pass=0; fail=0; killed=0
    for i in $(seq 1 "$N"); do
        state="$WORK/$mode-state-$i"; out="$WORK/$mode-$i.json"
        rm -rf "$state" "$out"
        # Random delay in milliseconds over the whole run.
        ms=$(echo "$max_delay * 1000 * $RANDOM / 32767" | bc | cut -d. -f1)
        delay=$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))
        "$MPQ" "${cmd[@]}" --state "$state" --out "$out" > /dev/null 2>&1 &
        pid=$!
        sleep "$delay"
        if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null && killed=$((killed + 1)); fi
        wait "$pid" 2>/dev/null
        saved=0
        [ -f "$state/evaluations.json" ] && saved=$(grep -c '"int8_layers"\|"int8Layers"' "$state/evaluations.json")
        rm -f "$out"
        "$MPQ" "${cmd[@]}" --state "$state" --out "$out" > /dev/null 2>"$WORK/$mode-$i.stderr"
        rc2=$?
        if [ $rc2 -ne $rc ]; then
            echo "  $i: kill after ${delay}s ($saved saved): resumed run exited $rc2, expected $rc: $(tail -1 "$WORK/$mode-$i.stderr")"
            fail=$((fail + 1))
        elif cmp -s "$ref" "$out"; then
            echo "  $i: kill after ${delay}s ($saved saved evaluations): identical"
            pass=$((pass + 1))
        else
            echo "  $i: kill after ${delay}s ($saved saved evaluations): DIFFERS ($(cmp "$ref" "$out" | head -1))"
            fail=$((fail + 1))
        fi
    done
    echo "$mode: $pass passed, $fail failed, $killed of $N runs killed before they finished"
    total_pass=$((total_pass + pass)); total_fail=$((total_fail + fail))
done
echo "kill_resume: $total_pass passed, $total_fail failed (work in $WORK)"
[ $total_fail -eq 0 ]
