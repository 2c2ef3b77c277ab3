#!/usr/bin/env python3
"""ONNX Runtime's cost of one SiLU on uint8 codes in the forms a QDQ export can give it.

Issue 14's detector: every SiLU of mpq's export runs in ORT as QLinearSigmoid + QLinearMul
(ORT's own quantize_static model does the same). Would another placement be cheaper? This
times, for one SiLU alone on a few detector-like shapes (2 threads, min of 5 x 50 runs):
  qlinear    QLinearSigmoid + QLinearMul (com.microsoft), what mpq exports;
  quickgelu  DequantizeLinear -> QuickGelu(alpha = 1) -> QuantizeLinear (float SiLU, fused op);
  float      DequantizeLinear -> Sigmoid -> Mul -> QuantizeLinear (what ORT may fuse).
It also prints how many output codes differ between the first two (the runtime would have
to model the float form instead). Results: benchmarks/README.md, s11-lead.

    /work/venv/bin/python benchmarks/silu_forms_ort.py
"""
import time

import numpy as np
from onnx import TensorProto as T, helper as h

import ort_sessions


def model(kind, shape):
    x = h.make_tensor_value_info("x", T.UINT8, shape)
    y = h.make_tensor_value_info("y", T.UINT8, shape)
    inits = [h.make_tensor("s", T.FLOAT, [], [0.05]), h.make_tensor("z", T.UINT8, [], [60]),
             h.make_tensor("s2", T.FLOAT, [], [0.04]), h.make_tensor("z2", T.UINT8, [], [10]),
             h.make_tensor("s3", T.FLOAT, [], [1/256.]), h.make_tensor("z3", T.UINT8, [], [0])]
    if kind == "qlinear":
        nodes = [h.make_node("QLinearSigmoid", ["x","s","z","s3","z3"], ["sg"], domain="com.microsoft"),
                 h.make_node("QLinearMul", ["x","s","z","sg","s3","z3","s2","z2"], ["y"], domain="com.microsoft")]
    elif kind == "quickgelu":
        nodes = [h.make_node("DequantizeLinear", ["x","s","z"], ["f"]),
                 h.make_node("QuickGelu", ["f"], ["g"], domain="com.microsoft", alpha=1.0),
                 h.make_node("QuantizeLinear", ["g","s2","z2"], ["y"])]
    else:  # float sigmoid*mul between DQ/Q (ORT may fuse to QuickGelu)
        nodes = [h.make_node("DequantizeLinear", ["x","s","z"], ["f"]),
                 h.make_node("Sigmoid", ["f"], ["sg"]), h.make_node("Mul", ["f","sg"], ["g"]),
                 h.make_node("QuantizeLinear", ["g","s2","z2"], ["y"])]
    g = h.make_graph(nodes, "g", [x], [y], inits)
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 17), h.make_opsetid("com.microsoft", 1)])
    m.ir_version = 8
    return m.SerializeToString()
rng = np.random.default_rng(0)
for shape in ([1,16,64,64],[1,32,32,32],[1,64,16,16],[16,16,64,64]):
    xs = rng.integers(0,256,size=shape,dtype=np.uint8)
    sess = {}
    for k in ("qlinear","quickgelu","float"):
        sess[k] = ort_sessions.session(model(k, shape), 2)
    best = {k: 1e9 for k in sess}
    outs = {k: sess[k].run(None, {"x": xs})[0] for k in sess}
    for r in range(5):
        for k, s in sess.items():
            for _ in range(3): s.run(None, {"x": xs})
            t = time.perf_counter()
            for _ in range(50): s.run(None, {"x": xs})
            best[k] = min(best[k], (time.perf_counter()-t)/50*1e6)
    d = np.abs(outs["qlinear"].astype(int)-outs["quickgelu"].astype(int))
    print(shape, {k: round(v,1) for k,v in best.items()}, "us; qlinear vs quickgelu max diff", d.max(), "count", int((d>0).sum()))
