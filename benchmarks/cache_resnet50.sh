#!/bin/bash
# Activation-cache cost of `mpq sensitivity` on a ResNet-50-shaped graph (docs/caching.md).
#
#   bash benchmarks/cache_resnet50.sh [IMAGES] [EMULATED_IMAGES]
#
# Generates the random-weight ResNet-50 shape at 224x224 (benchmarks/models/resnet_shaped.py;
# onnx + numpy from VENV, default /work/venv) with IMAGES search images (default 200), then
# runs the sensitivity analysis three ways:
# - "default": --cache-mb 2048 scaled by IMAGES / EMULATED_IMAGES (default: no scaling),
#   i.e. the bytes per image the default cap gives an EMULATED_IMAGES-image split; the cut
#   choice depends only on bytes per image, so few images with a scaled cap reproduce the
#   cache (and the full-model-equivalent cost) of the bigger split;
# - "disk": the same plus --cache-dir with --cache-disk-mb 8192 scaled the same way;
# - "all": a cap that holds every activation (the floor of exact re-execution).
# Prints each run's cost and cache lines (full reports under out/bench/cache/).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-200}
E=${2:-$N}
MPQ=${MPQ:-.build/release/mpq}
PY=${VENV:-/work/venv}/bin/python
M=out/bench/cache
mkdir -p $M
[ -f $M/model.onnx ] && [ "$(cat $M/images 2>/dev/null)" = "$N" ] || {
    $PY benchmarks/models/resnet_shaped.py --arch resnet50 --out $M --calib 4 --holdout "$N" --no-fit-head
    mv $M/holdout.npz $M/search.npz && cp $M/calib.npz $M/hold.npz && echo "$N" > $M/images
}
mem=$(( 2048 * N / E )); disk=$(( 8192 * N / E ))
spill=$(mktemp -d)
trap 'rm -rf "$spill"' EXIT
run() {
    tag=$1; shift
    /usr/bin/time -f "%e s wall, %M KB max RSS" "$MPQ" sensitivity $M/model.onnx --calibration $M/calib.npz \
        --search $M/search.npz --holdout $M/hold.npz --metric agreement --batch-size "$(( N < 16 ? N : 16 ))" --quiet \
        --out $M/$tag.json "$@" > $M/$tag.txt 2> $M/$tag.time
    echo "== $tag ($*): $(grep -E '^cost:' $M/$tag.txt)"
    grep -E '^cache:' $M/$tag.txt; cat $M/$tag.time
}
run default --cache-mb "$mem"
run disk --cache-mb "$mem" --cache-dir "$spill" --cache-disk-mb "$disk"
run all --cache-mb $(( 400 * N ))
