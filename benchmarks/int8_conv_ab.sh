#!/bin/bash
# A/B of the INT8 conv kernels, one thread, outside Swift: compiles Sources/CKernels of BASE (a
# commit) and of the working tree with clang -O2 into two copies of benchmarks/int8_conv_layers.c
# and runs them alternately ROUNDS times (a noisy shared host: compare minima, check checksums).
#     benchmarks/int8_conv_ab.sh main 40 3
set -e
base=${1:-main}; reps=${2:-30}; rounds=${3:-3}
work=$(mktemp -d)
git archive "$base" Sources/CKernels | tar -x -C "$work"
source "$(dirname "$0")/ckernels_lib.sh"  # lib SRC OUT.a
lib "$work/Sources/CKernels" "$work/base.a"
lib Sources/CKernels "$work/new.a"
clang -O2 -ISources/CKernels/include benchmarks/int8_conv_layers.c "$work/base.a" -lpthread -lm -o "$work/base"
clang -O2 -ISources/CKernels/include benchmarks/int8_conv_layers.c "$work/new.a" -lpthread -lm -o "$work/new"
for r in $(seq "$rounds"); do
    echo "## round $r: $base"; "$work/base" "$reps"
    echo "## round $r: working tree"; "$work/new" "$reps"
done
rm -rf "$work"
