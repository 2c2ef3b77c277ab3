#!/bin/bash
# The channel-blocked FP32 Conv against today's channel-vector Conv per layer, outside Swift
# (benchmarks/fp32_blocked_layers.c, both kernels in one binary built from the working tree's
# Sources/CKernels with clang -O2; alternated inside every round).
#     benchmarks/fp32_blocked_ab.sh ROUNDS THREADS [LAYER-SUBSTRING]
set -e
rounds=${1:-3}; threads=${2:-1}; only=${3:-}
work=$(mktemp -d)
source "$(dirname "$0")/ckernels_lib.sh"  # lib, ab_build
ab_build - benchmarks/fp32_blocked_layers.c "$work"
"$work/new" "$rounds" "$threads" $only
rm -rf "$work"
