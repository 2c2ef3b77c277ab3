#!/bin/bash
# FP32 Conv kernels per ResNet-18 layer outside Swift (benchmarks/fp32_conv_layers.c): compiles
# Sources/CKernels of BASE (a commit; "-" skips it) and of the working tree with clang -O2 and runs
# both alternately ROUNDS times.   benchmarks/fp32_conv_ab.sh BASE ROUNDS THREADS [LAYER-SUBSTRING | seq]
# (seq: ResNet-18's 20 Convs in model order, each with its own weights, per-layer minima)
set -e
base=${1:-main}; rounds=${2:-3}; threads=${3:-1}; only=${4:-}
work=$(mktemp -d)
source "$(dirname "$0")/ckernels_lib.sh"  # lib, ab_build
ab_build "$base" benchmarks/fp32_conv_layers.c "$work"
for r in $(seq "$rounds"); do
    if [ "$base" != "-" ]; then echo "## round $r: $base"; "$work/base" 2 "$threads" $only; fi
    echo "## round $r: working tree"; "$work/new" 2 "$threads" $only
done
rm -rf "$work"
