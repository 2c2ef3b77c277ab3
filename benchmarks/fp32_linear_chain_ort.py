#!/usr/bin/env python3
"""The chain of benchmarks/fp32_linear_chain.c in ONNX Runtime: PAIRS x (MatMul [K, N], MatMul
[N, K]), each with its own constant weights, one session, intra_op_num_threads THREADS.

    /work/venv/bin/python benchmarks/fp32_linear_chain_ort.py M K N THREADS REPS PAIRS
"""
import sys
import time

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

m, k, n, threads, reps, pairs = map(int, sys.argv[1:7])
rng = np.random.default_rng(1)
nodes, inits, x = [], [], "a"
for p in range(pairs):
    inits += [numpy_helper.from_array((rng.random((k, n), dtype=np.float32) - .5) * .1, f"B1_{p}"),
              numpy_helper.from_array((rng.random((n, k), dtype=np.float32) - .5) * .1, f"B2_{p}")]
    nodes += [helper.make_node("MatMul", [x, f"B1_{p}"], [f"h{p}"]), helper.make_node("MatMul", [f"h{p}", f"B2_{p}"], [f"o{p}"])]
    x = f"o{p}"
graph = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("a", TensorProto.FLOAT, [m, k])],
                          [helper.make_tensor_value_info(x, TensorProto.FLOAT, [m, k])], inits)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
model.ir_version = 8
so = ort.SessionOptions()
so.intra_op_num_threads = threads
s = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
a = rng.random((m, k), dtype=np.float32) - .5
for _ in range(3):
    s.run(None, {"a": a})
ts = []
for _ in range(reps):
    t = time.perf_counter()
    s.run(None, {"a": a})
    ts.append(time.perf_counter() - t)
ts.sort()
print(f"ort chain {pairs} pairs {m}x{k}x{n} threads {threads}: min {ts[0] * 1e3:.3f} med {ts[reps // 2] * 1e3:.3f} ms "
      f"{4 * m * k * n * pairs / ts[reps // 2] / 1e9:.1f} GFLOP/s")
