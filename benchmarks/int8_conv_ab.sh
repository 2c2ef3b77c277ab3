#!/bin/bash
# A/B of the INT8 conv kernels, one thread, outside Swift: compiles Sources/CKernels of BASE (a
# commit) and of the working tree with clang -O2 into two copies of benchmarks/int8_conv_layers.c
# and runs them alternately ROUNDS times (a noisy shared host: compare minima, check checksums).
#     benchmarks/int8_conv_ab.sh main 40 3
set -e
base=${1:-main}; reps=${2:-30}; rounds=${3:-3}
work=$(mktemp -d)
source "$(dirname "$0")/ckernels_lib.sh"  # lib, ab_build
ab_build "$base" benchmarks/int8_conv_layers.c "$work"
for r in $(seq "$rounds"); do
    echo "## round $r: $base"; "$work/base" "$reps"
    echo "## round $r: working tree"; "$work/new" "$reps"
done
rm -rf "$work"
