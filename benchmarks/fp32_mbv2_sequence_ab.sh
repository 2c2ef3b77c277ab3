#!/bin/bash
# MobileNetV2's FP32 convs in model order at batch 1 (benchmarks/fp32_mbv2_sequence.c) built
# against BASE's Sources/CKernels (a commit) and the working tree's, alternated ROUNDS times on
# THREADS threads (one thread: pinned to CPU 1), 30 runs each; per layer the minimum over the
# rounds, the sums, and whether both builds wrote the same bytes on every layer. BASE_DW: the
# depthwise split threshold of BASE's runtime (262144 before s15-split, 131072 after), passed to
# its harness. Under load, prefix `chrt -f 1` (the s14 and s15 sections' runs).
#     benchmarks/fp32_mbv2_sequence_ab.sh BASE [ROUNDS] [THREADS] [BASE_DW]
set -e
work=$(mktemp -d)
source "$(dirname "$0")/ckernels_lib.sh"
ab_build "$1" benchmarks/fp32_mbv2_sequence.c "$work"
rounds=${2:-5} threads=${3:-2} base_dw=${4:-262144}
pin=(); [ "$threads" = 1 ] && pin=(taskset -c 1)
for r in $(seq "$rounds"); do
    "${pin[@]}" "$work/base" 30 "$threads" "$base_dw" > "$work/base.$r"
    "${pin[@]}" "$work/new" 30 "$threads" > "$work/new.$r"
done
python3 - "$work" "$rounds" <<'PY'
import re, sys
work, rounds = sys.argv[1], int(sys.argv[2])
best, names, sums = {"base": {}, "new": {}}, {}, {"base": [], "new": []}
sums_ok = True
for side in best:
    for r in range(1, rounds + 1):
        for line in open(f"{work}/{side}.{r}"):
            m = re.match(r"\s*(\d+) (.{22}) +([\d.]+) us  (\w+)", line)
            if m:
                i = int(m.group(1)); names[i] = m.group(2).strip()
                t, ck = float(m.group(3)), m.group(4)
                old = best[side].get(i, (1e9, ck))
                best[side][i] = (min(old[0], t), ck)
            m = re.match(r"sum of minima [\d.]+ us, fastest run ([\d.]+)", line)
            if m: sums[side].append(float(m.group(1)))
print(f"{'layer':28s} {'base us':>9s} {'new us':>9s} {'new/base':>9s}  bytes")
for i in sorted(names):
    b, n = best["base"][i], best["new"][i]
    print(f"{i:2d} {names[i]:25s} {b[0]:9.1f} {n[0]:9.1f} {n[0] / b[0]:9.2f}  {'same' if b[1] == n[1] else 'DIFFER'}")
sb, sn = sum(v[0] for v in best["base"].values()), sum(v[0] for v in best["new"].values())
print(f"sum of minima {sb:.1f} -> {sn:.1f} us ({sn / sb:.2f}); fastest whole run {min(sums['base']):.1f} -> {min(sums['new']):.1f} us")
PY
rm -rf "$work"
