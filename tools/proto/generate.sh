#!/usr/bin/env bash
# Regenerates Sources/ONNX/Generated/onnx.pb.swift from onnx.proto.
# Run by hand only when onnx.proto changes; CI never runs it (the output is committed).
#
# Needs: protoc (apt-get install protobuf-compiler) and protoc-gen-swift built from the
# swift-protobuf version Package.swift pins:
#   git clone <swift-protobuf> sp && cd sp && git checkout 1.39.0 \
#     && swift build -c release --product protoc-gen-swift
# onnx.proto is copied from the onnx wheel on PyPI (onnx 1.23.2: site-packages/onnx/onnx.proto).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
plugin=${PROTOC_GEN_SWIFT:-$(command -v protoc-gen-swift)}
mkdir -p "$root/Sources/ONNX/Generated"
protoc --plugin=protoc-gen-swift="$plugin" \
       --swift_opt=Visibility=Internal \
       --swift_out="$root/Sources/ONNX/Generated" \
       --proto_path="$here" onnx.proto
echo "wrote Sources/ONNX/Generated/onnx.pb.swift"
