#!/usr/bin/env python3
"""Per-node cost of a runtime's run loop, kernels aside: a 200-node Relu/Neg chain on [N, 16]
and a 100 x (8-channel 1x1 Conv + Relu) chain on [N, 8, 4, 4], timed in ONNX Runtime (2 intra-op
threads) and in mpq (`mpq-bench model`, FP32 and all-INT8), batch 1 and 16, minima.
    /work/venv/bin/python benchmarks/per_node_cost.py --bin .build/release [--runs 3000]"""
import argparse
import os
import subprocess
import tempfile
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper


def eltwise_chain(path):
    nodes, prev = [], "x"
    for i in range(200):
        nodes.append(helper.make_node("Relu" if i % 2 == 0 else "Neg", [prev], [f"v{i}"], name=f"n{i}"))
        prev = f"v{i}"
    g = helper.make_graph(nodes, "eltwise200", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 16])],
                          [helper.make_tensor_value_info(prev, TensorProto.FLOAT, ["N", 16])])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), path)
    return (16,)


def conv_chain(path):
    rng = np.random.default_rng(0)
    nodes, inits, prev = [], [], "x"
    for i in range(100):
        inits += [numpy_helper.from_array((rng.standard_normal((8, 8, 1, 1)) * 0.3).astype(np.float32), f"w{i}"),
                  numpy_helper.from_array((rng.standard_normal(8) * 0.1).astype(np.float32), f"b{i}")]
        nodes += [helper.make_node("Conv", [prev, f"w{i}", f"b{i}"], [f"c{i}"], name=f"conv{i}"),
                  helper.make_node("Relu", [f"c{i}"], [f"r{i}"], name=f"relu{i}")]
        prev = f"r{i}"
    g = helper.make_graph(nodes, "conv100", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8, 4, 4])],
                          [helper.make_tensor_value_info(prev, TensorProto.FLOAT, ["N", 8, 4, 4])], inits)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), path)
    return (8, 4, 4)


def ort_min_ms(path, shape, batch, runs):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).random((batch,) + shape).astype(np.float32)
    for _ in range(50):
        s.run(None, {"x": x})
    best = 1e9
    for _ in range(runs):
        t0 = time.perf_counter()
        s.run(None, {"x": x})
        best = min(best, time.perf_counter() - t0)
    return best * 1e3


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=".build/release", help="folder holding mpq-bench")
    ap.add_argument("--runs", type=int, default=3000)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        print("| model | batch | nodes | ORT ms | mpq FP32 ms | mpq INT8 (ort scheme) ms | mpq FP32 us/node | ORT us/node |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for name, make, nodes in [("eltwise200", eltwise_chain, 200), ("conv100", conv_chain, 200)]:
            model = os.path.join(d, name + ".onnx")
            shape = make(model)
            calib = os.path.join(d, name + ".npz")
            np.savez(calib, x=np.random.default_rng(2).random((32,) + shape).astype(np.float32))
            env = dict(os.environ, MPQ_BENCH_RUNS=str(a.runs), MPQ_BENCH_BATCHES="1,16")
            out = subprocess.run([f"{a.bin}/mpq-bench", "model", f"m={model},{calib}"], env=env, check=True,
                                 capture_output=True, text=True).stdout
            rows = {int(l.split()[1]): l.split() for l in out.splitlines() if l.startswith("m ")}
            for batch in (1, 16):
                r = rows[batch]
                o = ort_min_ms(model, shape, batch, a.runs)
                print(f"| {name} | {batch} | {nodes} | {o:.3f} | {float(r[2]):.3f} | {float(r[6]):.3f} | "
                      f"{float(r[2]) * 1e3 / nodes:.2f} | {o * 1e3 / nodes:.2f} |")


if __name__ == "__main__":
    main()
