#!/usr/bin/env python3
"""Where a model's time goes against ONNX Runtime, stage by stage, without either profiler.

ORT's profiler adds several microseconds per node (the detector at batch 1, one thread: a
0.87 ms profiled run for a 0.46 ms plain one), which swamps small nodes, and no profiler sees
what one runtime does in a node that the other does between nodes (reorders, fused
activations). This script instead cuts the model after each chosen node (`onnx.utils.Extractor`:
the prefix that computes that node's output, the output becoming the graph's) and times every
prefix end to end in both runtimes, plain runs, minima over `--runs` runs in each of `--rounds`
interleaved rounds. A stage's cost is its prefix's time minus the previous prefix's; the last
row is the whole model. Both runtimes see the same prefixes, so what differs per stage is what
the runtimes do there (ORT's python call overhead, ~7-11 us, cancels in the differences).

    /work/venv/bin/python benchmarks/stages_vs_ort.py MODEL.onnx DATA.npz \\
        [--cut-after 'Mul$'] [--batch 1] [--threads 1] [--rounds 3] [--runs 2000] [--bin .build/release]

`--cut-after` is a regular expression on node names (default: every Conv, or the last node of
its fused SiLU/Relu when one follows, as the runtimes fuse them). With `--threads 1` both run
pinned to CPU 0 (taskset). s29: the detector at batch 1, one thread, showed mpq 8% over ORT up
to its neck, then 24 us more on the neck's Resize + Concat + fused Conv stage and 10 us on the
decode tail (benchmarks/README.md "s29").
"""
import argparse
import os
import re
import subprocess
import tempfile
import time

import numpy as np
import onnx
import onnx.utils
import onnxruntime as ort


def stage_outputs(model, pattern):
    """Names of the outputs to cut after: nodes matching `pattern`, or by default each Conv's
    output moved past a directly following Sigmoid + Mul (SiLU) or Relu/Clip."""
    nodes = model.graph.node
    if pattern:
        rx = re.compile(pattern)
        return [n.output[0] for n in nodes if rx.search(n.name)]
    consumers = {}
    for n in nodes:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    outs = []
    for n in nodes:
        if n.op_type != "Conv":
            continue
        out, users = n.output[0], consumers.get(n.output[0], [])
        ops = sorted(u.op_type for u in users)
        if ops == ["Mul", "Sigmoid"]:
            out = next(u for u in users if u.op_type == "Mul").output[0]
        elif len(users) == 1 and users[0].op_type in ("Relu", "Clip"):
            out = users[0].output[0]
        outs.append(out)
    return outs


def ort_min_us(path, feed, threads, runs):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    for _ in range(50):
        s.run(None, feed)
    best = 1e18
    for _ in range(runs):
        t = time.perf_counter()
        s.run(None, feed)
        best = min(best, time.perf_counter() - t)
    return best * 1e6


def mpq_min_us(bench, path, data, batch, threads, runs):
    env = dict(os.environ, MPQ_BENCH_ONLY="fp32", MPQ_BENCH_RUNS=str(runs), MPQ_BENCH_BATCHES=str(batch))
    cmd = (["taskset", "-c", "0"] if threads == 1 else []) + [bench, "model", f"stage={path},{data}"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout.strip().splitlines()
    return float(out[-1].split()[2]) * 1000


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("data")
    ap.add_argument("--cut-after", default=None, help="regular expression on node names")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--runs", type=int, default=2000)
    ap.add_argument("--bin", default=".build/release")
    a = ap.parse_args()
    if a.threads == 1:
        os.sched_setaffinity(0, {0})
    model = onnx.shape_inference.infer_shapes(onnx.load(a.model))
    inputs = [i.name for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    work = tempfile.mkdtemp(prefix="stages_")
    paths = []
    for k, out in enumerate(stage_outputs(model, a.cut_after)):
        sub = onnx.utils.Extractor(model).extract_model(inputs, [out])
        path = os.path.join(work, f"stage{k}.onnx")
        onnx.save(sub, path)
        paths.append((out, path))
    paths.append(("(whole model)", a.model))
    data = np.load(a.data)
    feed = {n: (data[n] if n in data.files else data[data.files[0]])[:a.batch] for n in inputs}
    best = {p: [1e18, 1e18] for _, p in paths}
    for _ in range(a.rounds):
        for _, p in paths:
            best[p][0] = min(best[p][0], ort_min_us(p, feed, a.threads, a.runs))
            best[p][1] = min(best[p][1], mpq_min_us(f"{a.bin}/mpq-bench", p, a.data, a.batch, a.threads, a.runs))
    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    name = next((l.split(":", 1)[1].strip() for l in cpu.splitlines() if l.startswith("Model name")), "?")
    print(f"CPU: {name}; onnxruntime {ort.__version__}; batch {a.batch}, {a.threads} thread(s), "
          f"minima of {a.runs} runs x {a.rounds} rounds (us)")
    print("| cut after | ORT | mpq | ORT stage | mpq stage | mpq - ORT (stage) | mpq / ORT (prefix) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    prev = (0.0, 0.0)
    for out, p in paths:
        o, m = best[p]
        print(f"| {out} | {o:.1f} | {m:.1f} | {o - prev[0]:.1f} | {m - prev[1]:.1f} | {(m - prev[1]) - (o - prev[0]):+.1f} | {m / o:.3f} |")
        prev = (o, m)


if __name__ == "__main__":
    main()
