#!/usr/bin/env python3
"""Speed-aware search on a depthwise-heavy CNN: `mpq search --objective latency` on the
MobileNetV2 shape, and the ORT latency of its export next to FP32 and quantize_static (issue 14).

A benchmark, not a test: it asserts nothing about time. It

1. generates the MobileNetV2-shaped model of benchmarks/models/resnet_shaped.py (random
   weights, generated images; --size, default 224) and splits its images into calibration,
   search and holdout files;
2. runs `mpq search --objective latency --scheme ort` with a loose budget on a metric that
   needs no labels (default: cosine to FP32, 5 points; the weights are random, so accuracy
   only guards against a broken map), then `mpq export --format qdq` of the map, and of the
   all-INT8 map for comparison (`mpq calibrate --scheme ort` + a map of every layer);
3. builds ORT's own quantize_static QDQ model exactly as benchmarks/scheme_speed.py does;
4. times, in one process and round-robin (each round runs every model once, in turn), FP32,
   quantize_static, mpq's all-INT8 export and the latency map's export in ONNX Runtime
   (intra_op_num_threads 1, like scheme_speed.py's single-thread rows), batch 1 and 16;
5. prints the CPU (lscpu model name) and a markdown table, and writes WORK/latency_objective.json.

    swift build -c release --product mpq
    /work/venv/bin/python benchmarks/latency_objective.py --work out/bench

With --trained DIR the model is a trained one with labelled splits instead (s24: the
MobileNetV2 of benchmarks/models/train_mobilenetv2_digits.py, trained on scikit-learn's digits),
searched on its top-1 under a real budget, and every model's top-1 in ORT is scored on DIR's
holdout:

    /work/venv/bin/python benchmarks/models/train_mobilenetv2_digits.py --out out/bench/mobilenetv2_digits
    /work/venv/bin/python benchmarks/latency_objective.py --work out/bench --trained out/bench/mobilenetv2_digits \
        --metric top1 --budget 1 --weight-bits 7 --threads 2

What `--objective latency` optimises is mpq's own runtime (Sources/Search/LatencyProbe.swift),
not ORT's: the table shows how far that choice carries over to ORT on this machine.
"""
import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from scheme_speed import (ROOT, cpu_summary, float_compute, input_name, latency, op_counts,  # noqa: E402
                          quantize_static, run_all, session, sh)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mpq", default=".build/release/mpq")
    ap.add_argument("--work", default="out/bench")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--images", type=int, default=16, help="images per split (calibration, search, holdout)")
    ap.add_argument("--trained", metavar="DIR",
                    help="a trained model instead of the random-weight one: DIR/model.onnx with labelled "
                         "DIR/calib.npz, DIR/search.npz and DIR/holdout.npz (benchmarks/models/"
                         "train_mobilenetv2_digits.py writes them); use with --metric top1 --budget 1")
    ap.add_argument("--metric", default="cosine", choices=["cosine", "agreement", "top1"])
    ap.add_argument("--budget", default="5")
    ap.add_argument("--batches", default="1,16")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--iters", type=int, default=9)
    ap.add_argument("--weight-bits", type=int, choices=[8, 7], default=8,
                    help="the search's and exports' weight range; 7 also gives quantize_static reduce_range "
                         "(both exact and fast in ORT on AVX2 CPUs without VNNI)")
    args = ap.parse_args()
    os.chdir(ROOT)
    cpu = cpu_summary()
    print("CPU:", json.dumps(cpu))
    labels = None
    if args.trained:
        # A trained model: its own labelled splits; ORT is timed and scored on the holdout.
        d = args.trained
        model = f"{d}/model.onnx"
        name, _ = input_name(model)
        hold = np.load(f"{d}/holdout.npz")
        x = held = hold[name]  # timed batches and scores: the whole holdout
        labels = hold["labels"].reshape(-1)
        splits = ["--calibration", f"{d}/calib.npz", "--search", f"{d}/search.npz", "--holdout", f"{d}/holdout.npz"]
    else:
        d = f"{args.work}/latency_objective_mobilenetv2_{args.size}"
        os.makedirs(d, exist_ok=True)
        model = f"{d}/model.onnx"
        if not os.path.exists(model):
            sh([sys.executable, "benchmarks/models/resnet_shaped.py", "--arch", "mobilenetv2", "--out", d,
                "--size", str(args.size), "--calib", str(args.images), "--holdout", str(2 * args.images)])
        name, _ = input_name(model)
        # The generator writes calibration and holdout images; the holdout's two halves become
        # the search and holdout splits (disjoint, same distribution).
        hold = np.load(f"{d}/holdout.npz")
        x = hold[name]
        held = x[args.images:]
        np.savez(f"{d}/search.npz", **{name: x[:args.images]})
        np.savez(f"{d}/holdout_half.npz", **{name: x[args.images:]})
        splits = ["--calibration", f"{d}/calib.npz", "--search", f"{d}/search.npz", "--holdout", f"{d}/holdout_half.npz"]

    t = time.time()
    rc_search = 0
    try:
        sh([args.mpq, "search", model, *splits, "--metric", args.metric, "--budget", args.budget,
            "--objective", "latency", "--scheme", "ort", "--strategy", "greedy", "--batch-size", "16",
            "--weight-bits", str(args.weight_bits), "--out", f"{d}/latency.map.json"])
    except SystemExit as e:      # exit 3 (budget not met) still writes the best map
        if not os.path.exists(f"{d}/latency.map.json"):
            raise
        rc_search = str(e)
    search_s = time.time() - t
    doc = json.load(open(f"{d}/latency.map.json"))
    sh([args.mpq, "export", model, "--precision", f"{d}/latency.map.json", "--format", "qdq",
        "--out", f"{d}/latency_map.onnx", "--quiet"])
    info = json.loads(sh([args.mpq, "inspect", model, "--json"]))
    layers = [r["name"] for r in info["nodes"] if r["quantizable"]]
    json.dump({"layers": {n: "int8" for n in layers}}, open(f"{d}/all.json", "w"))
    sh([args.mpq, "calibrate", model, "--data", f"{d}/calib.npz", "--scheme", "ort", "--out", f"{d}/calib.json"])
    sh([args.mpq, "export", model, "--precision", f"{d}/all.json", "--format", "qdq", "--scheme", "ort",
        "--weight-bits", str(args.weight_bits), "--calibration", f"{d}/calib.json", "--out", f"{d}/all_int8.onnx", "--quiet"])
    quantize_static({"model": model, "calib": f"{d}/calib.npz"}, d, name, reduce_range=args.weight_bits == 7)

    paths = {"fp32": model, "qstatic": f"{d}/qstatic.onnx", "all_int8": f"{d}/all_int8.onnx",
             "latency_map": f"{d}/latency_map.onnx"}
    res = {"cpu": cpu, "command": " ".join(sys.argv), "model": model, "size": args.size, "search_seconds": round(search_s, 1),
           "search_exit": rc_search, "map": {
               "int8_layers": doc["int8_layers"], "layers": len(doc["layers"]),
               "fp32_layers": [l["name"] for l in doc["layers"] if l["precision"] == "fp32"],
               "holdout": doc["result"]["holdout"], "latency_mpq": doc.get("latency"),
               "budget_met": doc["budget_met"]}}
    outs = {k: run_all(session(p, 2), name, held, 8) for k, p in paths.items()}
    f = outs["fp32"].reshape(len(outs["fp32"]), -1).astype(np.float64)
    res["score"], res["ops"] = {}, {}
    for k in paths:
        o = outs[k].reshape(len(f), -1)
        cos = (o * f).sum(1) / np.maximum(np.linalg.norm(o, axis=1) * np.linalg.norm(f, axis=1), 1e-30)
        res["score"][k] = {"cosine": float(cos.mean() * 100), "agreement": float((o.argmax(1) == f.argmax(1)).mean() * 100)}
        if labels is not None:
            res["score"][k]["top1"] = float((o.argmax(1) == labels).mean() * 100)
        res["ops"][k] = float_compute(op_counts(paths[k], d, k))
    res["latency"] = {}
    for b in [int(v) for v in args.batches.split(",")]:
        print(f"latency: threads {args.threads}, batch {b}", flush=True)
        res["latency"][f"{args.threads}x{b}"] = latency(paths, name, x, args.threads, b, args.warmup, args.iters)
    res["finished_utc"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    out_json = f"{args.work}/latency_objective{'_trained' if args.trained else ''}.json"
    json.dump(res, open(out_json, "w"), indent=1)

    print(f"\nCPU: {cpu['model_name']} ({cpu['cpus']} CPUs, load {cpu['loadavg'][0]:.1f}), onnxruntime {cpu['onnxruntime']}")
    m = res["map"]
    print(f"map: {m['int8_layers']}/{m['layers']} layers INT8; FP32: {', '.join(m['fp32_layers']) or 'none'}; "
          f"holdout {doc['metric']} drop {m['holdout']['drop']} (budget {args.budget}); mpq latency {m['latency_mpq']}; "
          f"search {search_s:.0f} s")
    print("\n| threads x batch | FP32 ms | quantize_static ms | mpq all-INT8 ms | latency map ms | map / FP32 | map / quantize_static |")
    print("|---|---|---|---|---|---|---|")
    for key, r in res["latency"].items():
        med = {k: r[k]["median_ms"] for k in paths}
        print(f"| {key} | {med['fp32']:.2f} | {med['qstatic']:.2f} ({med['qstatic'] / med['fp32']:.2f}x) | "
              f"{med['all_int8']:.2f} ({med['all_int8'] / med['fp32']:.2f}x) | {med['latency_map']:.2f} | "
              f"{med['latency_map'] / med['fp32']:.2f}x | {med['latency_map'] / med['qstatic']:.2f}x |")
    print("\nscores vs FP32 in ORT (holdout half):", json.dumps(res["score"]))
    print("float compute ops left in ORT's optimized graphs:", json.dumps(res["ops"]))


if __name__ == "__main__":
    main()
