#!/bin/bash
# benchmarks/fp32_depthwise_lanes.c built against BASE's Sources/CKernels (a commit) and against the
# working tree's, run alternately ROUNDS times (each: pixel-lane kernels + epilogue vs the lanes
# kernel, one thread, min of 3 x 20 calls).   benchmarks/fp32_depthwise_lanes_ab.sh BASE [ROUNDS]
set -e
base=${1:-main}; rounds=${2:-2}
work=$(mktemp -d)
source "$(dirname "$0")/ckernels_lib.sh"  # lib, ab_build
ab_build "$base" benchmarks/fp32_depthwise_lanes.c "$work"
for r in $(seq "$rounds"); do
    echo "## round $r: $base"; "$work/base" 3 20
    echo "## round $r: working tree"; "$work/new" 3 20
done
rm -rf "$work"
