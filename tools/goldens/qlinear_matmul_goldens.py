#!/usr/bin/env python3
"""Goldens for the INT8 MatMul of two activations: ONNX Runtime's QLinearMatMul on uint8 codes.

Each case is a one-node QLinearMatMul model (uint8 A and B, per-tensor scales and zero
points, uint8 output) run by ONNX Runtime on one thread; its output bytes are recorded with
the inputs and quantization parameters. `ActivationMatMulGoldenTests` runs
`QuantizedActivationMatMul.matmul(..., requantize:)` on the same codes (what the `ort`
scheme runs for attention's probabilities·V when a Q follows) and compares the bytes on
every kernel path. Shapes: attention-like batched products (heads, K = 32 and 128), a
broadcast right operand, odd sizes (tails of the 8-lane epilogue), a large K, and a small
output scale that saturates.

    /work/venv/bin/python tools/goldens/qlinear_matmul_goldens.py Tests/Fixtures/qlinear_matmul

Deterministic: fixed seed, one thread.
"""
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto as T
from onnx import helper as h

RNG = np.random.default_rng(20261204)


def cases():
    # name, A shape, B shape, y_scale factor (of the exact output's range), y_zp (None: from the range)
    yield "heads_k32", (2, 3, 16, 32), (2, 3, 32, 16), 1.0, None
    yield "heads_k128", (1, 4, 24, 128), (1, 4, 128, 32), 1.0, None
    yield "odd_sizes", (3, 13, 37), (3, 37, 11), 1.0, None
    yield "broadcast_b", (2, 5, 19, 40), (40, 23), 1.0, None
    yield "large_k", (7, 600), (600, 9), 1.0, None
    yield "saturating", (2, 9, 64), (2, 64, 21), 0.5, 100


def model(a_shape, b_shape, s, z):
    inits = [h.make_tensor("as", T.FLOAT, [], [s["a"]]), h.make_tensor("az", T.UINT8, [], [z["a"]]),
             h.make_tensor("bs", T.FLOAT, [], [s["b"]]), h.make_tensor("bz", T.UINT8, [], [z["b"]]),
             h.make_tensor("ys", T.FLOAT, [], [s["y"]]), h.make_tensor("yz", T.UINT8, [], [z["y"]])]
    node = h.make_node("QLinearMatMul", ["a", "as", "az", "b", "bs", "bz", "ys", "yz"], ["y"])
    g = h.make_graph([node], "qmm", [h.make_tensor_value_info("a", T.UINT8, list(a_shape)),
                                     h.make_tensor_value_info("b", T.UINT8, list(b_shape))],
                     [h.make_tensor_value_info("y", T.UINT8, [None] * max(len(a_shape), len(b_shape)))], inits)
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 17)], producer_name="qlinear_matmul_goldens")
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "Tests/Fixtures/qlinear_matmul"
    os.makedirs(out, exist_ok=True)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    for name, a_shape, b_shape, factor, yz in cases():
        a = RNG.integers(0, 256, size=a_shape, dtype=np.uint8)
        b = RNG.integers(0, 256, size=b_shape, dtype=np.uint8)
        s = {"a": float(np.float32(RNG.uniform(0.005, 0.05))), "b": float(np.float32(RNG.uniform(0.005, 0.05)))}
        z = {"a": int(RNG.integers(0, 256)), "b": int(RNG.integers(0, 256)), "y": yz}
        # The output grid from the exact result's range (a factor < 1 saturates its ends).
        exact = np.matmul(a.astype(np.int64) - z["a"], b.astype(np.int64) - z["b"]) * (s["a"] * s["b"])
        lo, hi = min(float(exact.min()), 0.0), max(float(exact.max()), 0.0)
        s["y"] = float(np.float32(factor * (hi - lo) / 255))
        z["y"] = int(np.clip(np.rint(-lo * factor / s["y"]) if yz is None else yz, 0, 255))
        m = model(a_shape, b_shape, s, z)
        y = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"]).run(None, {"a": a, "b": b})[0]
        np.savez(os.path.join(out, f"{name}.npz"), a=a, b=b,
                 scales=np.array([s["a"], s["b"], s["y"]], np.float32),
                 zero_points=np.array([z["a"], z["b"], z["y"]], np.int32), y=y)
        sat = np.count_nonzero(y == 0) + np.count_nonzero(y == 255)
        print(f"{name}: a {list(a.shape)} b {list(b.shape)} -> y {list(y.shape)}, {sat} of {y.size} saturated")


if __name__ == "__main__":
    main()
