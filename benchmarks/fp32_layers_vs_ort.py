#!/usr/bin/env python3
"""Per layer: mpq's FP32 runtime against ONNX Runtime's FP32, ranked by the milliseconds lost.

mpq's side is `mpq profile MODEL --data CALIB --batch-size N --json` (per node, median of the
runs; nodes fused into a Conv report 0). ORT's side is its own profiler
(`SessionOptions.enable_profiling`, intra_op_num_threads = --threads), median per node over the
runs after the warm-ups. The graphs differ: ORT fuses Conv + BatchNorm/Relu/Clip/Add, turns
Sigmoid * x into QuickGelu, renames an NCHWc Conv after its output tensor (`<tensor>_nchwc`)
and adds ReorderInput/ReorderOutput nodes. So both sides are mapped onto *layers* of the
original graph: a layer is a Conv/Gemm/MatMul (or any other node) together with the
elementwise nodes that follow it (BatchNormalization, Relu, Clip, Sigmoid, Mul, Add, ...). An
ORT node is mapped by name, by output-tensor name (after dropping `_nchwc`), or by the
longest original node name it starts with (`/Slice_2/GatherSliceToSplitFusion`); what maps to
nothing (the reorders) is listed as ORT-only layout work.

    /work/venv/bin/python benchmarks/fp32_layers_vs_ort.py --mpq .build/release/mpq \\
        --batch 1 --batch 16 MODEL.onnx CALIB.npz [--json out.json]

The two sides run one after the other (not interleaved); on a noisy host run it twice and
compare the rankings, not single numbers.
"""
import argparse
import json
import os
import statistics
import subprocess
import tempfile
from collections import defaultdict

import numpy as np
import onnx
import onnxruntime as ort

# Nodes that join the layer of the node producing their input (ORT fuses them or runs them cheaply).
FOLLOWERS = {"BatchNormalization", "Relu", "Clip", "Sigmoid", "Mul", "Add", "LeakyRelu", "HardSigmoid",
             "HardSwish", "Tanh", "Sum"}
ANCHORS = {"Conv", "ConvTranspose", "Gemm", "MatMul"}


def layers_of(model):
    """{node name: layer name}: anchors start a layer, followers join their input's anchor layer."""
    producer, layer, ops = {}, {}, {}
    for n in model.graph.node:
        ops[n.name] = n.op_type
        joined = None
        if n.op_type in FOLLOWERS:
            for t in n.input:
                p = producer.get(t)
                if p is not None and ops.get(layer[p]) in ANCHORS:
                    joined = layer[p]
                    break
        layer[n.name] = joined or n.name
        for t in n.output:
            producer[t] = n.name
    return layer, producer, ops


def mpq_profile(mpq, model, calib, batch, runs):
    out = subprocess.run([mpq, "profile", model, "--data", calib, "--batch-size", str(batch), "--runs", str(runs),
                          "--json", "--quiet"], check=True, capture_output=True, text=True).stdout
    rep = json.loads(out)
    return {n["name"]: n["fp32_ms"] for n in rep["nodes"]}, {n["name"]: n["macs"] for n in rep["nodes"]}


def ort_profile(model, calib, batch, runs, warmup, threads):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.log_severity_level = 3
    so.enable_profiling = True
    tmp = tempfile.mkdtemp()
    so.profile_file_prefix = os.path.join(tmp, "ort")
    s = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    data = np.load(calib)
    feeds = {}
    for i in s.get_inputs():
        a = data[i.name] if i.name in data.files else data[data.files[0]]
        feeds[i.name] = a[:batch]
    for _ in range(warmup + runs):
        s.run(None, feeds)
    path = s.end_profiling()
    with open(path) as f:
        events = json.load(f)
    os.remove(path)
    times = defaultdict(list)
    kinds = {}
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            name = e["name"][: -len("_kernel_time")]
            times[name].append(e["dur"] / 1e3)
            kinds[name] = e.get("args", {}).get("op_name", "?")
    return {k: statistics.median(v[warmup:] or v) for k, v in times.items()}, kinds


def map_ort_node(name, layer, producer):
    if name in layer:
        return layer[name]
    base = name[: -len("_nchwc")] if name.endswith("_nchwc") else name
    if base in layer:
        return layer[base]
    if base in producer:
        return layer[producer[base]]
    best = max((n for n in layer if n and name.startswith(n)), key=len, default=None)
    return layer[best] if best else None


def compare(mpq, model_path, calib, batch, runs, threads):
    model = onnx.load(model_path, load_external_data=False)
    layer, producer, ops = layers_of(model)
    m_nodes, macs = mpq_profile(mpq, model_path, calib, batch, runs)
    o_nodes, kinds = ort_profile(model_path, calib, batch, runs, 3, threads)
    rows = defaultdict(lambda: {"mpq": 0.0, "ort": 0.0, "macs": 0, "ort_nodes": []})
    for n, ms in m_nodes.items():
        r = rows[layer.get(n, n)]
        r["mpq"] += ms
        r["macs"] += macs.get(n, 0)
    ort_only = 0.0
    for n, ms in o_nodes.items():
        l = map_ort_node(n, layer, producer)
        if l is None:
            ort_only += ms
            l = "(ORT only) " + kinds[n]
        rows[l]["ort"] += ms
        rows[l]["ort_nodes"].append(kinds[n])
    out = []
    for l, r in rows.items():
        out.append({"layer": l, "op": ops.get(l, "-"), "macs": r["macs"], "mpq_ms": r["mpq"], "ort_ms": r["ort"],
                    "lost_ms": r["mpq"] - r["ort"], "ort_ops": "+".join(sorted(set(r["ort_nodes"])))})
    out.sort(key=lambda r: -r["lost_ms"])
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("calib")
    ap.add_argument("--mpq", default=".build/release/mpq")
    ap.add_argument("--batch", type=int, action="append", help="repeatable; default 1 and 16")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("--json", help="write all rows here")
    a = ap.parse_args()
    everything = {}
    for b in a.batch or [1, 16]:
        rows = compare(a.mpq, a.model, a.calib, b, a.runs, a.threads)
        everything[b] = rows
        tm, to = sum(r["mpq_ms"] for r in rows), sum(r["ort_ms"] for r in rows)
        print(f"\n{os.path.basename(os.path.dirname(a.model))}/{os.path.basename(a.model)} batch {b}: "
              f"sum of nodes mpq {tm:.3f} ms, ORT {to:.3f} ms ({tm / max(to, 1e-9):.2f}x); "
              f"load average {os.getloadavg()[0]:.2f}")
        print("| layer | op | MMACs | mpq ms | ORT ms | lost ms | mpq/ORT | ORT nodes |")
        print("|---|---|---:|---:|---:|---:|---:|---|")
        for r in rows[: a.top]:
            ratio = r["mpq_ms"] / r["ort_ms"] if r["ort_ms"] > 0 else float("inf")
            print(f"| {r['layer']} | {r['op']} | {r['macs'] / 1e6:.1f} | {r['mpq_ms']:.3f} | {r['ort_ms']:.3f} | "
                  f"{r['lost_ms']:+.3f} | {ratio:.2f} | {r['ort_ops']} |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(everything, f, indent=1)


if __name__ == "__main__":
    main()
