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
    ("rd.l1 16->16 3x3 56", 16, 56, 56, 16, 3, 1, 1),
    ("rd.stem 3->16 7x7/2 64", 3, 64, 64, 16, 7, 2, 3),
    ("det.stem 3->16 3x3 64", 3, 64, 64, 16, 3, 1, 1),
    ("det.down2 24->32 3x3/2 32", 24, 32, 32, 32, 3, 2, 1),
    ("det.c2 32->32 3x3 16", 32, 16, 16, 32, 3, 1, 1),
    ("det.c3 48->48 3x3 8", 48, 8, 8, 48, 3, 1, 1),
    ("det.c4 64->64 3x3 4", 64, 4, 4, 64, 3, 1, 1),
    ("det.fuse 112->64 3x3 8", 112, 8, 8, 64, 3, 1, 1),
    ("det.down1 16->24 3x3/2 64", 16, 64, 64, 24, 3, 2, 1),
    ("det.down3 32->48 3x3/2 16", 32, 16, 16, 48, 3, 2, 1),
    ("det.down4 48->64 3x3/2 8", 48, 8, 8, 64, 3, 2, 1),
    ("rd.stem1 1->16 7x7/2 224", 1, 224, 224, 16, 7, 2, 3),
    ("rd.l2a 16->32 3x3/2 56", 16, 56, 56, 32, 3, 2, 1),
    ("rd.l2 32->32 3x3 28", 32, 28, 28, 32, 3, 1, 1),
    ("rd.l3a 32->64 3x3/2 28", 32, 28, 28, 64, 3, 2, 1),
    ("rd.l3 64->64 3x3 14", 64, 14, 14, 64, 3, 1, 1),
    ("rd.l4a 64->128 3x3/2 14", 64, 14, 14, 128, 3, 2, 1),
    ("rd.l4 128->128 3x3 7", 128, 7, 7, 128, 3, 1, 1),
    ("rd.l2ds 16->32 1x1/2 56", 16, 56, 56, 32, 1, 2, 0),
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
