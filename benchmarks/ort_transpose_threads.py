#!/usr/bin/env python3
"""ONNX Runtime's uint8 Transpose to NHWC (perm 0, 2, 3, 1) on one and two intra-op threads.

Why it matters (s39, docs/export.md "Space-to-depth stems"): ORT converts every INT8 Conv to
NHWC and transposes the uint8 input of the first one; after a SpaceToDepth the tensor has 4 x Cin
channels, and for some channel counts ORT's transpose runs several times slower on two threads
than on one. That is what keeps 3-channel stems (12 block channels) off the space-to-depth form.
One single-node model per shape; min and median of 30 runs after 5 warm-up runs, in ms.

    /work/venv/bin/python benchmarks/ort_transpose_threads.py
"""
import os
import sys
import time

import numpy as np
from onnx import TensorProto as T, helper as h

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ort_sessions  # noqa: E402


def model(shape):
    g = h.make_graph([h.make_node("Transpose", ["x"], ["y"], perm=[0, 2, 3, 1])], "nhwc",
                     [h.make_tensor_value_info("x", T.UINT8, shape)], [h.make_tensor_value_info("y", T.UINT8, None)])
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 17)])
    m.ir_version = 8
    return m


print("| shape | 1 thread min / median ms | 2 threads min / median ms |")
print("|---|---:|---:|")
for shape in ([16, 1, 224, 224], [16, 3, 224, 224], [16, 4, 115, 115], [16, 8, 115, 115], [16, 12, 115, 115],
              [16, 16, 115, 115], [1, 12, 115, 115]):
    x = np.random.default_rng(0).integers(0, 256, size=shape, dtype=np.uint8)
    cells = []
    for threads in (1, 2):
        s = ort_sessions.session(model(shape), threads)
        for _ in range(5):
            s.run(None, {"x": x})
        ts = []
        for _ in range(30):
            t = time.perf_counter()
            s.run(None, {"x": x})
            ts.append((time.perf_counter() - t) * 1e3)
        cells.append(f"{min(ts):.3f} / {float(np.median(ts)):.3f}")
        del s
    print(f"| {shape} | " + " | ".join(cells) + " |", flush=True)
