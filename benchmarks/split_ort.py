#!/usr/bin/env python3
"""ONNX Runtime latency of mpq's `--scheme ort` export of YOLOv8-style C2f blocks (Conv 1x1 ->
Split -> bottleneck -> Concat -> Conv 1x1), before and after Split became a multi-output INT8
op (QuantPlan rule 5; benchmarks/README.md, section s8-split).

Before, the Split ran in float: DequantizeLinear -> Split -> one QuantizeLinear per INT8 reader
(each with the Split output's own range), so ORT ran a float Split between a DQ and Qs. After,
every Split output is requantized on its input's grid and ORT runs a uint8 Split
(SplitQDQRules), the DQ/Q pairs gone. The random-weight model and data are made here; both
binaries export the same all-INT8 map with their own calibration of the same data.

    /work/venv/bin/python benchmarks/split_ort.py --before /work/baseline/mpq --after .build/release/mpq \\
        --work /tmp/split_ort [--size 80 --channels 64 --blocks 2 --batch 1 --threads 1 --rounds 30]

Prints ORT's optimized op counts of each export, then min / median ms per batch of FP32,
before and after, timed round-robin in one process (the ratio to FP32 next to each).
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ort_sessions  # noqa: E402  (one ORT session open at a time)
import scheme_speed as S  # noqa: E402  (the ORT session and op-count helpers)


def c2f_model(size, ch, blocks):
    rng = np.random.default_rng(8)
    nodes, inits, layers = [], [], []

    def conv(x, cin, cout, k, out):
        name = f"conv{len(layers)}"
        w = (rng.standard_normal((cout, cin, k, k)) * np.sqrt(2.0 / (cin * k * k))).astype(np.float32)
        b = (rng.standard_normal(cout) * 0.1).astype(np.float32)
        inits.extend([numpy_helper.from_array(w, f"{name}.w"), numpy_helper.from_array(b, f"{name}.b")])
        nodes.append(helper.make_node("Conv", [x, f"{name}.w", f"{name}.b"], [f"{name}_y"], name=name, pads=[k // 2] * 4))
        nodes.append(helper.make_node("Relu", [f"{name}_y"], [out], name=f"{name}_relu"))
        layers.append(name)
        return out

    h = ch // 2
    inits.append(numpy_helper.from_array(np.array([h, h], dtype=np.int64), "halves"))
    x = "input"
    for i in range(blocks):
        t = conv(x, ch, ch, 1, f"b{i}_cv1")
        nodes.append(helper.make_node("Split", [t, "halves"], [f"b{i}_a", f"b{i}_b"], name=f"b{i}_split", axis=1))
        m = conv(f"b{i}_b", h, h, 3, f"b{i}_m1")
        m = conv(m, h, h, 3, f"b{i}_m2")
        nodes.append(helper.make_node("Add", [m, f"b{i}_b"], [f"b{i}_res"], name=f"b{i}_add"))
        nodes.append(helper.make_node("Concat", [f"b{i}_a", f"b{i}_b", f"b{i}_res"], [f"b{i}_cat"], name=f"b{i}_cat", axis=1))
        x = conv(f"b{i}_cat", 3 * h, ch, 1, f"b{i}_out")
    nodes.append(helper.make_node("Neg", [x], ["y"], name="neg"))
    g = helper.make_graph(nodes, "c2f", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", ch, size, size])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    return m, layers


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--before", required=True)
    p.add_argument("--after", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--size", type=int, default=80)
    p.add_argument("--channels", type=int, default=64)
    p.add_argument("--blocks", type=int, default=2)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=30)
    a = p.parse_args()
    os.makedirs(a.work, exist_ok=True)
    model, layers = c2f_model(a.size, a.channels, a.blocks)
    fp32 = os.path.join(a.work, "c2f.onnx")
    onnx.save(model, fp32)
    calib = os.path.join(a.work, "calib.npz")
    np.savez(calib, input=np.random.default_rng(0).standard_normal((8, a.channels, a.size, a.size)).astype(np.float32))
    mp = os.path.join(a.work, "int8.map.json")
    with open(mp, "w") as f:
        json.dump({"layers": {n: "int8" for n in layers}}, f)
    paths = {"fp32": fp32}
    for tag, mpq in (("before", a.before), ("after", a.after)):
        table = os.path.join(a.work, f"{tag}.calib.json")
        subprocess.run([mpq, "calibrate", fp32, "--data", calib, "--scheme", "ort", "--out", table, "--quiet"], check=True)
        out = os.path.join(a.work, f"{tag}.qdq.onnx")
        subprocess.run([mpq, "export", fp32, "--precision", mp, "--format", "qdq", "--scheme", "ort", "--calibration", table,
                        "--out", out, "--quiet"], check=True)
        paths[tag] = out
        print(tag, S.op_counts(out, a.work, tag))
    x = np.random.default_rng(1).standard_normal((a.batch, a.channels, a.size, a.size)).astype(np.float32)
    # One session open at a time (ort_sessions.time_rounds): idle sessions' spinning workers
    # inflated round-robin timings with two or more threads.
    times = {k: r["runs"] for k, r in ort_sessions.time_rounds(paths, {"input": x}, a.threads, rounds=a.rounds,
                                                                  warmup=3, runs=1).items()}
    base = min(times["fp32"])
    print(f"load average {os.getloadavg()[0]:.2f}; {a.blocks} C2f blocks, {a.channels} ch, {a.size}x{a.size}, "
          f"batch {a.batch}, {a.threads} thread(s), {a.rounds} rounds")
    for k, v in times.items():
        print(f"{k:7s} min {min(v):8.3f} ms ({min(v) / base:.2f}x FP32)  median {np.median(v):8.3f} ms")


if __name__ == "__main__":
    main()
