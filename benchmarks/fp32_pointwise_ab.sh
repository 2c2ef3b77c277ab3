#!/bin/bash
# MobileNetV2's 1x1 FP32 convs outside Swift (benchmarks/fp32_pointwise_layers.c) against the working
# tree's Sources/CKernels (clang -O2): MPQ_FP32_PW_PANELS=0 (the old loop order of the direct path)
# and the default, alternated ROUNDS times.   benchmarks/fp32_pointwise_ab.sh [ROUNDS] [THREADS]
set -e
work=$(mktemp -d)
source "$(dirname "$0")/ckernels_lib.sh"  # lib SRC OUT.a
lib Sources/CKernels "$work/new.a"
clang -O2 -ISources/CKernels/include -ISources/CKernels benchmarks/fp32_pointwise_layers.c "$work/new.a" -lpthread -lm -o "$work/bench"
for r in $(seq "${1:-3}"); do
    echo "## round $r: MPQ_FP32_PW_PANELS=0"; MPQ_FP32_PW_PANELS=0 "$work/bench" 1 20 "${2:-1}" 0
    echo "## round $r: default"; "$work/bench" 1 20 "${2:-1}" 0
done
rm -rf "$work"
