"""Writes the data for the bounded-outputs benchmark (benchmarks/README.md, "Issue 12: bounded
outputs"): a model whose output is as wide as its input (two 1x1 convolutions, 3 -> 8 -> 3
channels, on 3 x 64 x 64 images: 12,288 floats = 48 KiB per sample), so a run that holds
N x width outputs holds as much as the data, scored with `--metric cosine` (FP32 reference
needed). Files:
  OUT/wide.onnx
  OUT/calib.npz     64 rows (calibration)
  OUT/search.npz    N rows
  OUT/holdout.npz   N rows (other images)
Usage: python benchmarks/bounded_outputs_data.py OUT_DIR [N]   (default N = 4000: 188 MiB a split)
Delete OUT_DIR afterwards: nothing here is committed."""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper

out = sys.argv[1]
n = int(sys.argv[2]) if len(sys.argv) > 2 else 4000
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(0)
w1 = (rng.standard_normal((8, 3, 1, 1)) * 0.5).astype(np.float32)
w2 = (rng.standard_normal((3, 8, 1, 1)) * 0.5).astype(np.float32)
graph = helper.make_graph(
    [helper.make_node("Conv", ["input", "w1"], ["h"]),
     helper.make_node("Relu", ["h"], ["r"]),
     helper.make_node("Conv", ["r", "w2"], ["y"])],
    "wide_outputs",
    [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 64, 64])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, 64, 64])],
    [helper.make_tensor("w1", TensorProto.FLOAT, [8, 3, 1, 1], w1.flatten()),
     helper.make_tensor("w2", TensorProto.FLOAT, [3, 8, 1, 1], w2.flatten())])
onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), os.path.join(out, "wide.onnx"))


def images(rows):
    return (rng.integers(0, 256, size=(rows, 3, 64, 64), dtype=np.uint8).astype(np.float32) / 255)


np.savez(os.path.join(out, "calib.npz"), input=images(64))
np.savez(os.path.join(out, "search.npz"), input=images(n))
np.savez(os.path.join(out, "holdout.npz"), input=images(n))
print(n, "rows a split")
