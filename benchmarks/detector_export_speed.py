#!/usr/bin/env python3
"""Detector export speed in ONNX Runtime: FP32 vs mpq's all-INT8 `--scheme ort` export vs ORT's
own `quantize_static` QDQ model, side by side in one run (issue 14's acceptance: export <= 0.65x
FP32 and within 1.1x of quantize_static's model).

A benchmark, not a test: it asserts nothing about time. Steps:

1. mpq (release binary): `calibrate --scheme ort` on the calibration split, `export --format qdq
   --scheme ort` of the all-INT8 map (every quantizable node of `inspect --json`), or of
   `--map FILE` (a search's answer) when given;
2. ORT `quantize_static` on the same calibration data, with the settings of
   benchmarks/scheme_speed.py (QDQ, per-channel int8 weights, uint8 activations, MinMax, after
   quant_pre_process); and, as a diagnostic, the same with the nodes that mpq's export leaves in
   float excluded (`qstatic_like_mpq`): if that model runs as fast as mpq's export, the whole
   difference between mpq and quantize_static is those nodes;
3. ORT's optimized graph of every model (SessionOptions.optimized_model_filepath,
   ORT_ENABLE_ALL): op-type counts, and the op types whose counts differ between the export and
   quantize_static's model;
4. latency, round-robin (each round runs every model once, so load drift hits all alike), at
   batch 1 and 16, intra-op threads 1 and 2: median and min ms, ratios to FP32 and to
   quantize_static, and whether the acceptance holds on the medians.

    swift build -c release --product mpq
    /work/venv/bin/python benchmarks/detector_export_speed.py
    /work/venv/bin/python benchmarks/detector_export_speed.py --rounds 40 --threads 1

Results also go to WORK/detector_export_speed.json (default WORK: out/bench/detector, git-ignored).
"""
import argparse
import collections
import json
import os
import sys
import time

import numpy as np
import onnx

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scheme_speed as S  # noqa: E402  (sh, session, op_counts, latency, Reader, cpu_summary)

DET = "Tests/Fixtures/detection/shapes_det"


def export_mpq(mpq, model, calib, d, map_path=None):
    info = json.loads(S.sh([mpq, "inspect", model, "--json"]))
    layers = [r["name"] for r in info["nodes"] if r["quantizable"]]
    if map_path is None:
        map_path = f"{d}/all_int8.json"
        with open(map_path, "w") as f:
            json.dump({"layers": {n: "int8" for n in layers}}, f)
    S.sh([mpq, "calibrate", model, "--data", calib, "--scheme", "ort", "--out", f"{d}/calib.json"])
    S.sh([mpq, "export", model, "--precision", map_path, "--format", "qdq", "--scheme", "ort",
          "--calibration", f"{d}/calib.json", "--out", f"{d}/mpq_ort.onnx"])
    return {"quantizable_layers": len(layers), "macs": info["total_macs"], "map": map_path}


def float_nodes_of_export(model, export):
    """Names of the original model's compute nodes that run in float in mpq's export: a node
    whose inputs are not all fed by a DequantizeLinear (or constants) in the QDQ graph as written."""
    m = onnx.load(export)
    produced_by = {o: n for n in m.graph.node for o in n.output}
    inits = {i.name for i in m.graph.initializer}
    names = {n.name for n in onnx.load(model).graph.node}
    skip = {"QuantizeLinear", "DequantizeLinear", "Constant", "Shape", "Reshape", "Transpose", "Concat",
            "Split", "Slice", "Gather", "Unsqueeze", "Squeeze", "Flatten", "Resize", "MaxPool", "Identity"}
    out = []
    for n in m.graph.node:
        if n.name not in names or n.op_type in skip:
            continue
        feeds = [i for i in n.input if i and i not in inits]
        if any(produced_by.get(i) is None or produced_by[i].op_type != "DequantizeLinear" for i in feeds):
            out.append(n.name)
    return out


def quantize_static(model, calib, name, out, exclude=None):
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static as qs
    from onnxruntime.quantization.shape_inference import quant_pre_process
    pre = out + ".pre.onnx"
    quant_pre_process(model, pre, skip_symbolic_shape=True)
    x = np.load(calib)[name]
    qs(pre, out, S.Reader(x, name), quant_format=QuantFormat.QDQ, per_channel=True,
       activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax,
       nodes_to_exclude=exclude or [])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mpq", default=".build/release/mpq")
    ap.add_argument("--model", default=f"{DET}.onnx")
    ap.add_argument("--calib", default=f"{DET}_calib.npz")
    ap.add_argument("--holdout", default=f"{DET}_holdout.npz")
    ap.add_argument("--map", default=None, help="precision map to export (default: all-INT8)")
    ap.add_argument("--work", default="out/bench/detector")
    ap.add_argument("--batches", default="1,16")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=30)
    args = ap.parse_args()
    os.chdir(S.ROOT)
    d = args.work
    os.makedirs(d, exist_ok=True)
    res = {"cpu": S.cpu_summary(), "command": " ".join(sys.argv),
           "started_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "loadavg_start": os.getloadavg()}
    name, _ = S.input_name(args.model)
    res["mpq"] = export_mpq(args.mpq, args.model, args.calib, d, args.map)
    quantize_static(args.model, args.calib, name, f"{d}/qstatic.onnx")
    floats = float_nodes_of_export(args.model, f"{d}/mpq_ort.onnx")
    res["float_nodes_in_export"] = floats
    quantize_static(args.model, args.calib, name, f"{d}/qstatic_like_mpq.onnx", exclude=floats)
    paths = {"fp32": args.model, "mpq_ort": f"{d}/mpq_ort.onnx", "qstatic": f"{d}/qstatic.onnx",
             "qstatic_like_mpq": f"{d}/qstatic_like_mpq.onnx"}

    res["ops"] = {k: S.op_counts(p, d, k) for k, p in paths.items()}
    a, b = res["ops"]["mpq_ort"], res["ops"]["qstatic"]
    res["ops_differ"] = {k: [a.get(k, 0), b.get(k, 0)] for k in sorted(set(a) | set(b)) if a.get(k, 0) != b.get(k, 0)}

    x = np.load(args.holdout)[name]
    res["latency"] = {}
    for t in [int(v) for v in args.threads.split(",")]:
        for bsz in [int(v) for v in args.batches.split(",")]:
            print(f"latency: threads {t}, batch {bsz}", flush=True)
            lat = S.latency(paths, name, x, t, bsz, args.warmup, args.rounds)
            for v in lat.values():
                v.pop("runs")
            res["latency"][f"{t}x{bsz}"] = lat
    res["loadavg_end"] = os.getloadavg()
    res["finished_utc"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    json.dump(res, open(f"{d}/detector_export_speed.json", "w"), indent=1)

    print(f"\nCPU: {res['cpu'].get('model_name', '')}  load average {res['loadavg_start'][0]:.1f} -> {res['loadavg_end'][0]:.1f}")
    print(f"model {args.model}, map {res['mpq']['map']}; export's float nodes: {', '.join(floats) or 'none'}\n")
    print("| threads x batch | FP32 ms | mpq export ms | quantize_static ms | qstatic excluding mpq's float nodes ms "
          "| export/FP32 | qstatic/FP32 | export/qstatic | acceptance (<= 0.65, <= 1.1) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for key, lat in res["latency"].items():
        m = {k: v["median_ms"] for k, v in lat.items()}
        mn = {k: v["min_ms"] for k, v in lat.items()}
        e, q = m["mpq_ort"] / m["fp32"], m["qstatic"] / m["fp32"]
        ok = e <= 0.65 and m["mpq_ort"] / m["qstatic"] <= 1.1
        print(f"| {key} | {m['fp32']:.3f} ({mn['fp32']:.3f}) | {m['mpq_ort']:.3f} ({mn['mpq_ort']:.3f}) "
              f"| {m['qstatic']:.3f} ({mn['qstatic']:.3f}) | {m['qstatic_like_mpq']:.3f} ({mn['qstatic_like_mpq']:.3f}) "
              f"| **{e:.2f}** ({mn['mpq_ort'] / mn['fp32']:.2f}) | {q:.2f} ({mn['qstatic'] / mn['fp32']:.2f}) "
              f"| {m['mpq_ort'] / m['qstatic']:.2f} ({mn['mpq_ort'] / mn['qstatic']:.2f}) | {'met' if ok else 'not met'} |")
    print("\nORT optimized graph, op counts:")
    for k, c in res["ops"].items():
        print(f"  {k:17s} {sum(c.values()):4d} nodes: " + ", ".join(f"{o} {n}" for o, n in c.items()))
    print("ops that differ (mpq export, quantize_static): " + json.dumps(res["ops_differ"]))


if __name__ == "__main__":
    main()
