#!/usr/bin/env python3
"""Goldens for the INT8 depthwise Conv: ONNX Runtime's QLinearConv on uint8 codes.

Each case is a one-node QLinearConv model (uint8 input, int8 per-channel weights, int32
bias, group == channels) run by ONNX Runtime on one thread; its uint8 output is recorded
with everything the kernel needs. `DepthwiseInt8KernelTests` builds the requantizing
epilogue the runtime builds (`Requantization`) from the same scales and compares the bytes
of `mpq_depthwise_conv_u8s8_u8` on every kernel path. Shapes cover the depthwise kernel's
plans: small planes (several output rows per vector: 7x7, 14x14 -> 7x7), wide planes
(28x28, 57x57 stride 2), a 5x5 kernel, channel counts that are not multiples of 16, and an
output range [0, 6] (a Relu6 folded into the output grid, as ORT's QDQ fusion does).

    /work/venv/bin/python tools/goldens/qlinear_conv_goldens.py Tests/Fixtures/qlinear_conv

Deterministic: fixed seed, one thread.
"""
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto as T
from onnx import helper as h

RNG = np.random.default_rng(20261202)


def cases():
    # name, N, C, H, W, K, stride, pad, y_scale, y_zp
    yield "dw7_s1", 2, 40, 7, 7, 3, 1, 1, 0.05, 118
    yield "dw14_s2", 2, 24, 14, 14, 3, 2, 1, 0.04, 131
    yield "dw14_s1_relu6", 1, 33, 14, 14, 3, 1, 1, 6 / 255, 0
    yield "dw28_s1", 1, 20, 28, 28, 3, 1, 1, 0.06, 100
    yield "dw57_s2", 1, 5, 57, 57, 3, 2, 1, 0.05, 128
    yield "dw13_k5_s2", 1, 18, 13, 13, 5, 2, 2, 0.07, 90


def model(x_shape, C, K, stride, pad, xs, xz, ws, ys, yz, w, b):
    inits = [h.make_tensor("xs", T.FLOAT, [], [xs]), h.make_tensor("xz", T.UINT8, [], [xz]),
             h.make_tensor("w", T.INT8, list(w.shape), w.flatten().tolist()),
             h.make_tensor("ws", T.FLOAT, [C], ws.tolist()), h.make_tensor("wz", T.INT8, [C], [0] * C),
             h.make_tensor("ys", T.FLOAT, [], [ys]), h.make_tensor("yz", T.UINT8, [], [yz]),
             h.make_tensor("b", T.INT32, [C], b.tolist())]
    node = h.make_node("QLinearConv", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz", "b"], ["y"], group=C,
                       kernel_shape=[K, K], strides=[stride, stride], pads=[pad] * 4)
    g = h.make_graph([node], "dw", [h.make_tensor_value_info("x", T.UINT8, x_shape)],
                     [h.make_tensor_value_info("y", T.UINT8, [x_shape[0], C, None, None])], inits)
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 17)], producer_name="qlinear_conv_goldens")
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "Tests/Fixtures/qlinear_conv"
    os.makedirs(out, exist_ok=True)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    for name, N, C, H, W, K, stride, pad, ys, yz in cases():
        x = RNG.integers(0, 256, size=(N, C, H, W), dtype=np.uint8)
        w = RNG.integers(-127, 128, size=(C, 1, K, K), dtype=np.int8)
        xs, xz = np.float32(0.02), int(RNG.integers(0, 256))
        ws = RNG.uniform(0.002, 0.02, size=C).astype(np.float32)
        b = RNG.integers(-3000, 3000, size=C, dtype=np.int32)
        m = model(list(x.shape), C, K, stride, pad, float(xs), xz, ws, ys, yz, w, b)
        y = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
        np.savez(os.path.join(out, f"{name}.npz"), x=x, w=w, b=b, x_scale=np.array([xs], np.float32),
                 x_zero_point=np.array([xz], np.int32), w_scale=ws, y_scale=np.array([ys], np.float32),
                 y_zero_point=np.array([yz], np.int32), attrs=np.array([K, stride, pad], np.int32), y=y)
        print(f"{name}: x {list(x.shape)} -> y {list(y.shape)}, {np.count_nonzero(y == 0) + np.count_nonzero(y == 255)} saturated")


if __name__ == "__main__":
    main()
