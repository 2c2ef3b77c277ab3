#!/usr/bin/env python3
"""ONNX Runtime's side of benchmarks/fp32_conv_layers.c: each ResNet-18 layer shape as a one-Conv
model (bias + Relu, which ORT fuses), one image, intra_op_num_threads = --threads; prints the
minimum over --rounds x reps runs in microseconds and GFLOP/s.
    /work/venv/bin/python benchmarks/fp32_conv_layers_ort.py --threads 1 --rounds 3"""
import argparse
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

LAYERS = [  # name, c, h, w, m, k, s, pad: as in fp32_conv_layers.c
    ("r18.stem 3->64 7x7/2 224", 3, 224, 224, 64, 7, 2, 3),
    ("r18.l1 64->64 3x3 56", 64, 56, 56, 64, 3, 1, 1),
    ("r18.l2a 64->128 3x3/2 56", 64, 56, 56, 128, 3, 2, 1),
    ("r18.l2ds 64->128 1x1/2 56", 64, 56, 56, 128, 1, 2, 0),
    ("r18.l2b 128->128 3x3 28", 128, 28, 28, 128, 3, 1, 1),
    ("r18.l3a 128->256 3x3/2 28", 128, 28, 28, 256, 3, 2, 1),
    ("r18.l3b 256->256 3x3 14", 256, 14, 14, 256, 3, 1, 1),
    ("r18.l4a 256->512 3x3/2 14", 256, 14, 14, 512, 3, 2, 1),
    ("r18.l4b 512->512 3x3 7", 512, 7, 7, 512, 3, 1, 1),
]


def model(c, h, w, m, k, s, pad):
    rng = np.random.default_rng(0)
    wt = helper.make_tensor("w", TensorProto.FLOAT, [m, c, k, k], (rng.standard_normal((m, c, k, k)) * 0.05).astype(np.float32).ravel())
    bt = helper.make_tensor("b", TensorProto.FLOAT, [m], (rng.standard_normal(m) * 0.1).astype(np.float32))
    conv = helper.make_node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[k, k], strides=[s, s], pads=[pad] * 4)
    relu = helper.make_node("Relu", ["c"], ["y"])
    g = helper.make_graph([conv, relu], "l", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, h, w])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [wt, bt])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", default="")
    a = ap.parse_args()
    for name, c, h, w, m, k, s, pad in LAYERS:
        if a.only not in name:
            continue
        so = ort.SessionOptions()
        so.intra_op_num_threads = a.threads
        sess = ort.InferenceSession(model(c, h, w, m, k, s, pad), so, providers=["CPUExecutionProvider"])
        x = np.random.default_rng(1).standard_normal((1, c, h, w)).astype(np.float32)
        oh = (h + 2 * pad - k) // s + 1
        macs = m * oh * oh * c * k * k
        reps = int(4e8 / macs) + 3
        for _ in range(3):
            sess.run(None, {"x": x})
        best = 1e9
        for _ in range(a.rounds * reps):
            t0 = time.perf_counter()
            sess.run(None, {"x": x})
            best = min(best, time.perf_counter() - t0)
        print(f"{name:28s} {macs / 1e6:7.1f} MMACs  ORT {best * 1e6:8.1f} us {2 * macs / best / 1e9:6.1f} GF/s", flush=True)


if __name__ == "__main__":
    main()
