#!/usr/bin/env python3
"""Golden for mpq's FP32 Sigmoid and SiLU: ONNX Runtime's outputs on a sweep of inputs.

mpq computes the logistic function with ONNX Runtime's formula (MLAS `MlasComputeLogistic`,
Sources/CKernels/sigmoid_inline.h); `SigmoidOrtGoldenTests` checks that claim bit for bit
against what ORT itself returned here:
- `sigmoid`: a one-node Sigmoid model;
- `silu`: x * Sigmoid(x) (a Sigmoid and a Mul), which ORT's optimizer fuses into QuickGelu
  (alpha 1); the op types of its optimized graph are recorded as `fused` (bytes of a
  comma-separated string) so the test can say which form ORT ran.

    /work/venv/bin/python tools/goldens/sigmoid_golden.py Tests/Fixtures/ops/sigmoid_ort.npz

Inputs: a dense sweep of [-20, 20] (steps of 2^-9), the clamp edges and their neighbours,
+-0, +-inf, NaN, huge and tiny magnitudes, and 4,096 normal draws. Deterministic: fixed
seed, one thread.
"""
import os
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto as T
from onnx import helper as h


def inputs():
    sweep = np.arange(-20 * 512, 20 * 512 + 1, dtype=np.float64) / 512
    edges = []
    for e in (-18.0, 18.0, -16.0, 0.0):
        v = np.float32(e)
        edges += [v, np.nextafter(v, np.float32(-np.inf)), np.nextafter(v, np.float32(np.inf))]
    special = [0.0, -0.0, np.inf, -np.inf, np.nan, 1e30, -1e30, 3.4e38, -3.4e38, 1e-30, -1e-30,
               np.finfo(np.float32).tiny, -np.finfo(np.float32).tiny, 1e-45, -1e-45, 87.0, -87.0, -104.0]
    normal = np.random.default_rng(20261203).standard_normal(4096) * 4
    return np.concatenate([sweep, edges, special, normal]).astype(np.float32)


def run(graph_nodes, x, path_prefix):
    g = h.make_graph(graph_nodes, "g", [h.make_tensor_value_info("x", T.FLOAT, [len(x)])],
                     [h.make_tensor_value_info("y", T.FLOAT, [len(x)])])
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 13)])
    m.ir_version = 8
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.optimized_model_filepath = path_prefix + "_opt.onnx"
    s = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    y = s.run(None, {"x": x})[0]
    ops = [n.op_type for n in onnx.load(so.optimized_model_filepath).graph.node]
    return y, ops


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "Tests/Fixtures/ops/sigmoid_ort.npz"
    x = inputs()
    with tempfile.TemporaryDirectory() as d:
        sig, _ = run([h.make_node("Sigmoid", ["x"], ["y"])], x, os.path.join(d, "sigmoid"))
        silu, ops = run([h.make_node("Sigmoid", ["x"], ["s"]), h.make_node("Mul", ["x", "s"], ["y"])], x,
                        os.path.join(d, "silu"))
    fused = np.frombuffer(",".join(ops).encode(), dtype=np.uint8).astype(np.int64)
    np.savez(out, x=x, sigmoid=sig.astype(np.float32), silu=silu.astype(np.float32), fused=fused)
    print(f"{out}: {len(x)} inputs; ORT ran the SiLU as {','.join(ops)}; ORT {ort.__version__}")


if __name__ == "__main__":
    main()
