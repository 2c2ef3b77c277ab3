"""Writes the data for the streaming benchmark (docs/scale.md, "Measured"): a tiny image
classifier (GlobalAveragePool -> Flatten -> Gemm, so the cost is reading data, not compute)
and N x 3 x 64 x 64 float32 images with labels as
  OUT/model.onnx
  OUT/big.npz            one stored .npz (np.savez)
  OUT/big_deflated.npz   the same, deflated (np.savez_compressed)
  OUT/shards/part-*.npz  the same rows in 4 stored shards
  OUT/small.npz          the first 512 rows (the in-memory path's size)
Usage: python benchmarks/streaming_data.py OUT_DIR [GIB]   (default 2.2 GiB of images)
Delete OUT_DIR afterwards: nothing here is committed."""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper

out = sys.argv[1]
gib = float(sys.argv[2]) if len(sys.argv) > 2 else 2.2
os.makedirs(os.path.join(out, "shards"), exist_ok=True)
row = 3 * 64 * 64 * 4
n = int(gib * (1 << 30) / row)
rng = np.random.default_rng(0)

w = rng.standard_normal((3, 10)).astype(np.float32)
graph = helper.make_graph(
    [helper.make_node("GlobalAveragePool", ["input"], ["pooled"]),
     helper.make_node("Flatten", ["pooled"], ["flat"]),
     helper.make_node("Gemm", ["flat", "w"], ["logits"])],
    "stream_bench",
    [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 64, 64])],
    [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
    [helper.make_tensor("w", TensorProto.FLOAT, [3, 10], w.flatten())])
onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), os.path.join(out, "model.onnx"))

# Pixel values on a 1/255 grid, as decoded images are: deflate then has something to gain.
images = (rng.integers(0, 256, size=(n, 3, 64, 64), dtype=np.uint8).astype(np.float32) / 255)
pooled = images.mean(axis=(2, 3))
labels = (pooled @ w).argmax(axis=1).astype(np.int64)
labels[::7] = (labels[::7] + 1) % 10          # a score that is not 100
np.savez(os.path.join(out, "big.npz"), input=images, labels=labels)
np.savez_compressed(os.path.join(out, "big_deflated.npz"), input=images, labels=labels)
cuts = np.linspace(0, n, 5).astype(int)
for k in range(4):
    np.savez(os.path.join(out, "shards", f"part-{k}.npz"), input=images[cuts[k]:cuts[k + 1]], labels=labels[cuts[k]:cuts[k + 1]])
np.savez(os.path.join(out, "small.npz"), input=images[:512], labels=labels[:512])
print(n, "rows")
