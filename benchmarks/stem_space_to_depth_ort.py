#!/usr/bin/env python3
"""One stride-2 INT8 stem Conv in ONNX Runtime, in the three forms a QDQ export can give it:

  direct   Q -> DQ -> Conv(k x k, stride 2) -> Q: ORT's im2col + GEMM path, since its direct
           (`MlasConvSym`) kernel needs a multiple of 4 input channels;
  pad4     the input channels padded with the zero point to 4, zero weights for them: the
           direct kernel (what mpq's `ort` export does for 3x3 and smaller kernels);
  s2d      the input padded, SpaceToDepth(2), a stride-1 Conv with ceil(k / 2) taps over 4 x Cin
           channels and the weight rearranged (docs/export.md, "Space-to-depth stems").

All three compute the same integer sums: the script checks that ORT's outputs are the same
bytes, then times them (ort_sessions.time_rounds: one session open at a time, min over rounds)
at 1 and 2 intra-op threads, batch 1 and 16. A benchmark, not a test; results in
benchmarks/README.md ("s39"). Weights and codes are random (the time does not depend on them).

    /work/venv/bin/python benchmarks/stem_space_to_depth_ort.py
"""
import os
import sys

import numpy as np
from onnx import TensorProto as T, helper as h, numpy_helper as nh

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ort_sessions  # noqa: E402

KINDS = ("direct", "pad4", "s2d")


def build(kind, cin, cout, size, k):
    rng = np.random.default_rng(cin * 1000 + cout + k)
    pad = k // 2
    w = rng.integers(-127, 128, size=(cout, cin, k, k), dtype=np.int8)
    ws = rng.random(cout).astype(np.float32) * 0.01 + 0.001
    inits = [nh.from_array(np.array(0.02, np.float32), "xs"), nh.from_array(np.array(7, np.uint8), "xz"),
             nh.from_array(np.array(0.05, np.float32), "ys"), nh.from_array(np.array(3, np.uint8), "yz"),
             nh.from_array(ws, "ws"), nh.from_array(np.zeros(cout, np.int8), "wz"),
             nh.from_array((0.02 * ws).astype(np.float32), "bs"), nh.from_array(np.zeros(cout, np.int32), "bz"),
             nh.from_array(rng.integers(-1000, 1000, size=cout).astype(np.int32), "bq")]
    nodes, src, attrs = [], "x", dict(kernel_shape=[k, k], strides=[2, 2], pads=[pad] * 4)
    if kind == "pad4":
        c4 = (cin + 3) // 4 * 4
        w = np.concatenate([w, np.zeros((cout, c4 - cin, k, k), np.int8)], axis=1)
        inits.append(nh.from_array(np.array([0, 0, 0, 0, 0, c4 - cin, 0, 0], np.int64), "pads"))
        nodes.append(h.make_node("Pad", ["x", "pads", "xz"], ["xp"]))
        src = "xp"
    elif kind == "s2d":
        outputs = (size + 2 * pad - k) // 2 + 1
        blocks = (k + 1) // 2
        end = 2 * (outputs + blocks - 1) - size - pad
        w8 = np.zeros((cout, cin, 2 * blocks, 2 * blocks), np.int8)
        w8[:, :, :k, :k] = w
        # channel (py * 2 + px) * cin + c, tap (a, b) = original tap (2a + py, 2b + px)
        w = np.ascontiguousarray(w8.reshape(cout, cin, blocks, 2, blocks, 2).transpose(0, 3, 5, 1, 2, 4)
                                 .reshape(cout, 4 * cin, blocks, blocks))
        inits.append(nh.from_array(np.array([0, 0, pad, pad, 0, 0, end, end], np.int64), "pads"))
        nodes += [h.make_node("Pad", ["x", "pads", "xz"], ["xp"]),
                  h.make_node("SpaceToDepth", ["xp"], ["xb"], blocksize=2)]
        src, attrs = "xb", dict(kernel_shape=[blocks, blocks], strides=[1, 1], pads=[0] * 4)
    inits.append(nh.from_array(w, "wq"))
    nodes += [h.make_node("DequantizeLinear", [src, "xs", "xz"], ["xf"]),
              h.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wf"], axis=0),
              h.make_node("DequantizeLinear", ["bq", "bs", "bz"], ["bf"], axis=0),
              h.make_node("Conv", ["xf", "wf", "bf"], ["yf"], **attrs),
              h.make_node("QuantizeLinear", ["yf", "ys", "yz"], ["y"])]
    g = h.make_graph(nodes, "stem", [h.make_tensor_value_info("x", T.UINT8, [None, cin, size, size])],
                     [h.make_tensor_value_info("y", T.UINT8, None)], inits)
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def main():
    print("| Cin -> Cout, kernel, input | " + " | ".join(f"{t}x{b} direct / pad4 / s2d ms" for t in (1, 2) for b in (1, 16))
          + " | s2d / direct |")
    print("|---|" + "---:|" * 5)
    rng = np.random.default_rng(1)
    for cin, cout, size, k in ((1, 16, 224, 7), (1, 32, 112, 5), (2, 32, 224, 7), (3, 16, 224, 7), (3, 64, 224, 7),
                               (3, 32, 112, 5)):
        models = {kind: build(kind, cin, cout, size, k) for kind in KINDS}
        cells, ratios = [], []
        for threads in (1, 2):
            for batch in (1, 16):
                x = rng.integers(0, 256, size=(batch, cin, size, size), dtype=np.uint8)
                outs = {kind: ort_sessions.session(m, threads).run(None, {"x": x})[0] for kind, m in models.items()}
                assert all(np.array_equal(o, outs["direct"]) for o in outs.values()), "forms disagree"
                t = ort_sessions.time_rounds(models, {"x": x}, threads, rounds=5, warmup=3, runs=20 if batch == 1 else 4)
                cells.append(" / ".join(f"{t[kind]['min_ms']:.3f}" for kind in KINDS))
                ratios.append(f"{t['s2d']['min_ms'] / t['direct']['min_ms']:.2f}")
        print(f"| {cin} -> {cout}, {k}x{k} s2, {size}x{size} | " + " | ".join(cells) + " | " + ", ".join(ratios) + " |",
              flush=True)


if __name__ == "__main__":
    main()
