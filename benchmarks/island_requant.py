#!/usr/bin/env python3
"""Issue 14, before/after in one run: INT8 Conv outputs always requantized (QuantPlan rule 4)
and the channel-padded stem (docs/export.md, "Channel padding").

A benchmark, not a test: it asserts nothing about time. Given two mpq binaries (BEFORE, AFTER)
and the maps to export, it exports each map with both (`export --format qdq --scheme ort
--calibration TABLE`), then in one process and round-robin (scheme_speed.latency: warm-up, then
rounds that run every model once each) measures ONNX Runtime latency of FP32, every export and
ORT's own quantize_static model, counts the op types of ORT's optimized graph, and compares
the exports' outputs with each other (same map: any difference is the export's doing).

    /work/venv/bin/python benchmarks/island_requant.py --before /tmp/base/mpq --after .build/release/mpq \\
        --model Tests/Fixtures/detection/shapes_det.onnx --calib-npz Tests/Fixtures/detection/shapes_det_calib.npz \\
        --data Tests/Fixtures/detection/shapes_det_holdout.npz --maps int8=all.json,island=island.json --work out/bench/x
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scheme_speed as S  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", required=True)
    ap.add_argument("--after", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--calib-npz", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--maps", required=True, help="name=map.json,...")
    ap.add_argument("--work", required=True)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--batches", default="1,16")
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--qstatic", action="store_true", help="also ORT quantize_static's all-INT8 model")
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    cpu = S.cpu_summary()
    print("CPU:", cpu["model_name"], cpu["flags"], "load", cpu["loadavg"], "onnxruntime", cpu["onnxruntime"])
    table = f"{a.work}/calib.json"
    S.sh([a.after, "calibrate", a.model, "--data", a.calib_npz, "--scheme", "ort", "--out", table])
    paths = {"fp32": a.model}
    for spec in a.maps.split(","):
        name, m = spec.split("=")
        for tag, binary in (("before", a.before), ("after", a.after)):
            out = f"{a.work}/{name}_{tag}.onnx"
            S.sh([binary, "export", a.model, "--precision", m, "--format", "qdq", "--scheme", "ort",
                  "--calibration", table, "--out", out])
            paths[f"{name}_{tag}"] = out
    iname, _ = S.input_name(a.model)
    if a.qstatic:
        S.quantize_static({"model": a.model, "calib": a.calib_npz}, a.work, iname)
        paths["qstatic"] = f"{a.work}/qstatic.onnx"
    x = np.load(a.data)[iname]
    res = {"cpu": cpu, "ops": {}, "outputs": {}, "latency": {}}
    outs = {}
    for k, p in paths.items():
        c = S.op_counts(p, a.work, k)
        res["ops"][k] = {"QLinearConv": c.get("QLinearConv", 0),
                         "integer_other": sum(v for o, v in c.items() if o.startswith(S.QUANT_OPS) and o != "QLinearConv"),
                         "float_conv": c.get("Conv", 0) + c.get("FusedConv", 0),
                         "Q": c.get("QuantizeLinear", 0), "DQ": c.get("DequantizeLinear", 0), "all": c}
        outs[k] = S.run_all(S.session(p, 2), iname, x, 16).reshape(len(x), -1)
    for spec in a.maps.split(","):
        name = spec.split("=")[0]
        d = np.abs(outs[f"{name}_before"] - outs[f"{name}_after"])
        res["outputs"][name] = {"max_abs_before_vs_after": float(d.max()), "differing": int((d > 0).sum()), "elements": int(d.size)}
    for t in [int(v) for v in a.threads.split(",")]:
        for b in [int(v) for v in a.batches.split(",")]:
            print(f"latency: threads {t}, batch {b}", flush=True)
            res["latency"][f"{t}x{b}"] = S.latency(paths, iname, x, t, b, 2, a.iters)
    json.dump(res, open(f"{a.work}/island_requant.json", "w"), indent=1)
    print("\n| variant | QLinearConv | other integer ops | float Conv | Q | DQ |")
    print("|---|---:|---:|---:|---:|---:|")
    for k, o in res["ops"].items():
        print(f"| {k} | {o['QLinearConv']} | {o['integer_other']} | {o['float_conv']} | {o['Q']} | {o['DQ']} |")
    keys = list(paths)
    print("\nORT latency, min ms per batch (ratio to FP32 min; median ratio in parentheses)\n")
    print("| threads x batch | " + " | ".join(keys) + " |")
    print("|---|" + "---:|" * len(keys))
    for key, lat in res["latency"].items():
        f, fm = lat["fp32"]["min_ms"], lat["fp32"]["median_ms"]
        print(f"| {key} | " + " | ".join(
            f"{lat[k]['min_ms']:.3f} ({lat[k]['min_ms'] / f:.2f}x; {lat[k]['median_ms'] / fm:.2f}x)" for k in keys) + " |")
    print("\nSame map, before vs after export, ORT outputs:", json.dumps(res["outputs"]))
    print("load average at end", os.getloadavg())


if __name__ == "__main__":
    main()
