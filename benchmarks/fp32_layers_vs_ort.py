#!/usr/bin/env python3
"""Per layer: mpq's runtime against ONNX Runtime, ranked by the milliseconds lost: FP32 against
ORT's FP32, or (--int8) mpq's all-INT8 `--scheme ort` runtime against ORT on mpq's own QDQ export.

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

With --int8 the model is calibrated (`mpq calibrate`, minmax) and exported all-INT8 as QDQ
(`--scheme ort`, as benchmarks/runtime_vs_ort_rounds.py does); mpq's side is
`mpq profile --precision int8 --scheme ort --calibration <that table>` (its INT8 column and the
engine each INT8 Conv/Gemm/MatMul ran, where the binary reports it), ORT's side profiles the
export, whose QLinearConv / QGemm / QLinearMatMul fusions keep the Conv's name; leftover
QuantizeLinear / DequantizeLinear nodes (`<tensor>_QuantizeLinear`) go to the layer producing
their tensor.

--per-image (batch 16 as mpq runs it: image chains, each core one image at a time through
the net, while `mpq profile` runs layer by layer): mpq is profiled at batch 1 pinned to one
core (`taskset -c 0`, so its kernels run single-threaded as inside a chain) and ORT at batch 16
on --threads, its times scaled by threads / 16: both columns are then one core's milliseconds
per image.

The two sides run one after the other (not interleaved); on a noisy host run it twice and
compare the rankings, not single numbers.

Neither profiler is free, and ORT's costs more per node: on the detector (35 nodes, one thread)
ORT's per-node sum was 0.42 ms against 0.31 ms for an unprofiled run, mpq's 0.46-0.48 against
0.45 (s13-lead). So a sum of nodes flatters mpq by about 3 us per ORT node: "mpq's nodes sum to
less than ORT's" does not mean the gap lies outside the nodes (s13-mbv2 read MobileNetV2 INT8
so; `perf` of the whole run found the Swift runtime at ~3% of its samples, the rest mostly in
kernels). Compare layers, and whole runs with runtime_vs_ort_rounds.py.
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

import ort_sessions  # benchmarks/ort_sessions.py: the ORT session every script opens

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


def mpq_profile(mpq, model, calib, batch, runs, table=None, pin=False):
    """({node: ms}, {node: MACs}, {node: engine}) from `mpq profile --json`: the FP32 column, or
    with `table` (a calibration table) the all-INT8 `--scheme ort` column."""
    cmd = (["taskset", "-c", "0"] if pin else []) + [mpq, "profile", model, "--data", calib, "--batch-size", str(batch),
                                                     "--runs", str(runs), "--json", "--quiet"]
    if table:
        cmd += ["--precision", "int8", "--scheme", "ort", "--calibration", table]
    rep = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    key = "ms" if table else "fp32_ms"
    return ({n["name"]: n[key] for n in rep["nodes"]}, {n["name"]: n["macs"] for n in rep["nodes"]},
            {n["name"]: n["engine"] for n in rep["nodes"] if n.get("engine")})


def export_all_int8(mpq, model, calib, work):
    """mpq's all-INT8 `--scheme ort` QDQ export and its calibration table (minmax)."""
    os.makedirs(work, exist_ok=True)
    base = os.path.join(work, os.path.basename(os.path.dirname(os.path.abspath(model))) + "_" +
                        os.path.splitext(os.path.basename(model))[0])
    table = base + ".calib.json"
    subprocess.run([mpq, "calibrate", model, "--data", calib, "--out", table, "--quiet"], check=True)
    info = json.loads(subprocess.run([mpq, "inspect", model, "--data", calib, "--json"], check=True,
                                     capture_output=True, text=True).stdout)
    with open(base + ".all.json", "w") as f:
        json.dump({"layers": {n["name"]: "int8" for n in info["nodes"] if n.get("quantizable")}}, f)
    out = base + ".ort.onnx"
    subprocess.run([mpq, "export", model, "--precision", base + ".all.json", "--format", "qdq", "--scheme", "ort",
                    "--calibration", table, "--out", out, "--quiet"], check=True)
    return out, table


def ort_profile(model, calib, batch, runs, warmup, threads):
    tmp = tempfile.mkdtemp()
    s = ort_sessions.session(model, threads, profile_prefix=os.path.join(tmp, "ort"))
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


# Suffixes of the nodes mpq's QDQ export adds after a tensor's name (Sources/ONNX/QDQWriter.swift).
EXPORT_SUFFIXES = ("_QuantizeLinear", "_DequantizeLinear", "_ChannelPad", "_KeepFloat")


def map_ort_node(name, layer, producer):
    if name in layer:
        return layer[name]
    base = name[: -len("_nchwc")] if name.endswith("_nchwc") else name
    for suffix in EXPORT_SUFFIXES:
        if base.endswith(suffix) and base[: -len(suffix)] in producer:
            return layer[producer[base[: -len(suffix)]]]
    if base in layer:
        return layer[base]
    if base in producer:
        return layer[producer[base]]
    best = max((n for n in layer if n and name.startswith(n)), key=len, default=None)
    return layer[best] if best else None


def compare(mpq, model_path, calib, batch, runs, threads, int8=None, per_image=False):
    """Rows per layer. `int8`: (export path, calibration table) to compare the INT8 runtimes."""
    model = onnx.load(model_path, load_external_data=False)
    layer, producer, ops = layers_of(model)
    m_nodes, macs, engines = mpq_profile(mpq, model_path, calib, 1 if per_image else batch, runs,
                                         table=int8[1] if int8 else None, pin=per_image)
    o_nodes, kinds = ort_profile(int8[0] if int8 else model_path, calib, batch, runs, 3, threads)
    if per_image:
        o_nodes = {k: v * threads / batch for k, v in o_nodes.items()}
    rows = defaultdict(lambda: {"mpq": 0.0, "ort": 0.0, "macs": 0, "ort_nodes": [], "engines": []})
    for n, ms in m_nodes.items():
        r = rows[layer.get(n, n)]
        r["mpq"] += ms
        r["macs"] += macs.get(n, 0)
        if n in engines:
            r["engines"].append(engines[n])
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
                    "lost_ms": r["mpq"] - r["ort"], "ort_ops": "+".join(sorted(set(r["ort_nodes"]))),
                    "engine": "+".join(r["engines"])})
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
    ap.add_argument("--int8", action="store_true", help="mpq all-INT8 (--scheme ort) against ORT on mpq's QDQ export")
    ap.add_argument("--per-image", action="store_true",
                    help="batch > 1 as image chains run it: mpq at batch 1 on one core, ORT's batch time x threads / batch")
    ap.add_argument("--work", default=".build/layers_vs_ort", help="where --int8 writes the export")
    a = ap.parse_args()
    int8 = export_all_int8(a.mpq, a.model, a.calib, a.work) if a.int8 else None
    everything = {}
    for b in a.batch or [1, 16]:
        rows = compare(a.mpq, a.model, a.calib, b, a.runs, a.threads, int8, a.per_image and b > 1)
        everything[b] = rows
        tm, to = sum(r["mpq_ms"] for r in rows), sum(r["ort_ms"] for r in rows)
        mode = ("INT8 vs ORT on the export" if int8 else "FP32") + (", per image on one core" if a.per_image and b > 1 else "")
        print(f"\n{os.path.basename(os.path.dirname(a.model))}/{os.path.basename(a.model)} batch {b}, {mode}: "
              f"sum of nodes mpq {tm:.3f} ms, ORT {to:.3f} ms ({tm / max(to, 1e-9):.2f}x); "
              f"load average {os.getloadavg()[0]:.2f}")
        print("| layer | op | MMACs | mpq ms | ORT ms | lost ms | mpq/ORT | mpq engine | ORT nodes |")
        print("|---|---|---:|---:|---:|---:|---:|---|---|")
        for r in rows[: a.top]:
            ratio = r["mpq_ms"] / r["ort_ms"] if r["ort_ms"] > 0 else float("inf")
            print(f"| {r['layer']} | {r['op']} | {r['macs'] / 1e6:.1f} | {r['mpq_ms']:.3f} | {r['ort_ms']:.3f} | "
                  f"{r['lost_ms']:+.3f} | {ratio:.2f} | {r['engine']} | {r['ort_ops']} |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(everything, f, indent=1)


if __name__ == "__main__":
    main()
