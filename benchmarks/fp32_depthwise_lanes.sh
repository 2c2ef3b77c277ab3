#!/bin/bash
# FP32 depthwise 3x3 per MobileNetV2 layer outside Swift (benchmarks/fp32_depthwise_lanes.c): the
# pixel-lane kernels and the channels-in-lanes kernel of the working tree's Sources/CKernels
# (clang -O2), alternated in one process.   benchmarks/fp32_depthwise_lanes.sh [ROUNDS] [REPS]
set -e
work=$(mktemp -d)
source "$(dirname "$0")/ckernels_lib.sh"  # lib SRC OUT.a
lib Sources/CKernels "$work/new.a"
clang -O2 -ISources/CKernels/include benchmarks/fp32_depthwise_lanes.c "$work/new.a" -lpthread -lm -o "$work/bench"
"$work/bench" "${1:-5}" "${2:-30}"
rm -rf "$work"
