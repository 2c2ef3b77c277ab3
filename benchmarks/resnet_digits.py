#!/usr/bin/env python3
"""Issue 14 on a trained ResNet-18-shaped CNN at 224x224: mpq's exports in ONNX Runtime.

A benchmark, not a test: it asserts nothing about time. The model is the committed fixture
Tests/Fixtures/resnet/resnet_digits.onnx (tools/fixtures/generate_resnet.py: torchvision's
ResNet-18 layout at base width 16, trained on scikit-learn digits, a nearest Resize to
224x224 as its first node). In one run it

1. runs the mpq release binary under `--scheme ort`: `search --budget 1` (the 1-point
   search) and `search --budget 100` (all-INT8, every layer INT8), both validated on the
   holdout; an FP32-island map from the all-INT8 one (tools/crosscheck/island_map.py: every
   third layer FP32) scored by `mpq eval`; `export --format qdq` of all three maps;
2. builds ORT's own `quantize_static` model (benchmarks/scheme_speed.py's settings: QDQ,
   per-channel, u8 activations / s8 weights, MinMax, quant_pre_process first);
3. scores every export in ORT on the holdout (top-1) next to mpq's prediction of it (the
   map's `result.holdout.mixed`, or `mpq eval` for the island map), counts the op types of
   ORT's optimized graph, and measures ORT latency round-robin (scheme_speed.latency:
   warm-up, then rounds that run every model once each) on 1 and 2 threads at batch 1
   and 16: FP32, mpq all-INT8, mpq 1-point map, quantize_static.

    swift build -c release --product mpq
    /work/venv/bin/python benchmarks/resnet_digits.py [--iters 15] [--work out/bench/resnet_digits]
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scheme_speed as S  # noqa: E402  (ORT sessions, latency rounds, op counts, quantize_static)

ROOT = S.ROOT
F = "Tests/Fixtures/resnet"
CASE = dict(model=f"{F}/resnet_digits.onnx", calib=f"{F}/resnet_digits_calib.npz",
            search=f"{F}/resnet_digits_search.npz", holdout=f"{F}/resnet_digits_holdout.npz")
VARIANTS = {"fp32": "FP32", "int8": "mpq all-INT8", "search": "mpq 1-point map", "island": "mpq FP32-island map",
            "qstatic": "ORT quantize_static"}
TIMED = ["fp32", "int8", "search", "qstatic"]


def mpq_search(mpq, d, name, budget):
    t = time.time()
    r = subprocess.run([mpq, "search", CASE["model"], "--calibration", CASE["calib"], "--search", CASE["search"],
                        "--holdout", CASE["holdout"], "--metric", "top1", "--budget", str(budget), "--scheme", "ort",
                        "--out", f"{d}/{name}.map.json"], cwd=ROOT, capture_output=True, text=True)
    if r.returncode not in (0, 3):
        sys.stderr.write(r.stdout + r.stderr)
        raise SystemExit(f"mpq search --budget {budget} failed ({r.returncode})")
    doc = json.load(open(f"{ROOT}/{d}/{name}.map.json"))
    return {"wall_s": time.time() - t, "exit": r.returncode, "stdout": r.stdout, "result": doc.get("result"),
            "layers": len(doc["layers"]), "int8_layers": sum(l["precision"] == "int8" for l in doc["layers"]),
            "fp32_layers": [l["name"] for l in doc["layers"] if l["precision"] != "int8"]}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mpq", default=".build/release/mpq")
    ap.add_argument("--work", default="out/bench/resnet_digits")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--batches", default="1,16")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--iters", type=int, default=15)
    ap.add_argument("--reuse", action="store_true",
                    help="keep the maps, exports, scores and op counts of the last run in --work; time again")
    args = ap.parse_args()
    os.chdir(ROOT)
    d = args.work
    os.makedirs(d, exist_ok=True)
    cpu = S.cpu_summary()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print("CPU:", json.dumps(cpu), flush=True)
    name, _ = S.input_name(CASE["model"])
    res = {"cpu": cpu, "started_utc": started, "command": " ".join(sys.argv)}
    if args.reuse and os.path.exists(f"{d}/resnet_digits.json"):
        old = json.load(open(f"{d}/resnet_digits.json"))
        res.update({k: v for k, v in old.items() if k not in res and k not in ("latency", "finished_utc")})
        timings(res, args, d, name)
        return
    inspect = json.loads(S.sh([args.mpq, "inspect", CASE["model"], "--json"]))
    res["macs"], res["quantizable_macs"] = inspect["total_macs"], inspect["quantizable_macs"]

    res["search"] = mpq_search(args.mpq, d, "search", 1)
    res["int8"] = mpq_search(args.mpq, d, "int8", 100)
    S.sh([sys.executable, "tools/crosscheck/island_map.py", f"{d}/int8.map.json", f"{d}/island.map.json"])
    isl = json.loads(S.sh([args.mpq, "eval", CASE["model"], "--data", CASE["holdout"], "--precision",
                           f"{d}/island.map.json", "--calibration", CASE["calib"], "--metric", "top1", "--json"]))
    predicted = {"int8": res["int8"]["result"]["holdout"]["mixed"], "search": res["search"]["result"]["holdout"]["mixed"],
                 "island": isl["score"]}
    for v in ("int8", "search", "island"):
        S.sh([args.mpq, "export", CASE["model"], "--precision", f"{d}/{v}.map.json", "--format", "qdq",
              "--out", f"{d}/{v}.onnx", "--quiet"])
    S.quantize_static(CASE, d, name)
    paths = {"fp32": CASE["model"], "int8": f"{d}/int8.onnx", "search": f"{d}/search.onnx",
             "island": f"{d}/island.onnx", "qstatic": f"{d}/qstatic.onnx"}

    hold = np.load(CASE["holdout"])
    x, labels = hold[name], hold["labels"]
    res["score"], res["ops"] = {}, {}
    for v, p in paths.items():
        out = S.run_all(S.session(p, 2), name, x, 16)
        res["score"][v] = float((out.argmax(1) == labels).mean() * 100)
        res["ops"][v] = S.op_counts(p, d, v)
    res["predicted"] = predicted
    timings(res, args, d, name)


def timings(res, args, d, name):
    paths = {"fp32": CASE["model"], "int8": f"{d}/int8.onnx", "search": f"{d}/search.onnx", "qstatic": f"{d}/qstatic.onnx"}
    x = np.load(CASE["holdout"])[name]
    res["latency"] = {}
    for t in [int(v) for v in args.threads.split(",")]:
        for b in [int(v) for v in args.batches.split(",")]:
            print(f"latency: threads {t}, batch {b}", flush=True)
            res["latency"][f"{t}x{b}"] = S.latency({k: paths[k] for k in TIMED}, name, x, t, b, args.warmup, args.iters)
    res["finished_utc"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    json.dump(res, open(f"{d}/resnet_digits.json", "w"), indent=1)
    report(res)


def report(res):
    cpu = res["cpu"]
    print(f"\n- CPU: {cpu['model_name']} ({cpu['cpus']} CPUs); flags: {' '.join(cpu['flags'])}; onnxruntime "
          f"{cpu['onnxruntime']}; load average at start {' '.join(f'{v:.2f}' for v in cpu['loadavg'])}")
    print(f"- command: `{res['command']}` ({res['started_utc']} to {res['finished_utc']})")
    print(f"- model: {res['macs'] / 1e6:.0f}M MACs per image ({res['quantizable_macs'] / 1e6:.0f}M in Conv/Gemm)")
    for v in ("search", "int8"):
        s = res[v]
        h = s["result"]["holdout"]
        print(f"- mpq search --budget {'1' if v == 'search' else '100'}: exit {s['exit']}, {s['wall_s']:.0f} s, "
              f"{s['int8_layers']}/{s['layers']} layers INT8, FP32 layers {s['fp32_layers'] or 'none'}; holdout FP32 "
              f"{h['fp32']:.2f}, all-INT8 {h['int8_all']:.2f}, map {h['mixed']:.2f}" if 'int8_all' in h else
              f"- mpq search ({v}): {json.dumps(s['result'])[:400]}")
    for line in res["search"]["stdout"].splitlines():
        if line.startswith("speed in mpq's runtime"):
            print(f"- mpq's own runtime (the search's closing line, 2 threads): {line[len('speed in '):]}")
    print("\n| threads x batch | FP32 ms | mpq all-INT8 ms | mpq 1-point map ms | quantize_static ms | all-INT8 / FP32 | "
          "1-point map / FP32 | quantize_static / FP32 | all-INT8 / quantize_static |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for key, lat in res["latency"].items():
        med = {k: lat[k]["median_ms"] for k in TIMED}
        mn = {k: lat[k]["min_ms"] for k in TIMED}
        cells = [f"{med[k]:.2f} ({mn[k]:.2f})" for k in TIMED]
        r = [f"{med[a] / med[b]:.2f}x ({mn[a] / mn[b]:.2f}x)" for a, b in
             (("int8", "fp32"), ("search", "fp32"), ("qstatic", "fp32"), ("int8", "qstatic"))]
        print(f"| {key} | " + " | ".join(cells) + " | " + " | ".join(r) + " |")
    print("\n| model | holdout top-1 in ORT | mpq's prediction | ORT - mpq | QLinearConv | QGemm/other integer | "
          "QuantizeLinear | DequantizeLinear | float Conv/Gemm |")
    print("|---|---:|---:|---:|---:|---|---:|---:|---:|")
    for v, label in VARIANTS.items():
        c = res["ops"][v]
        other = {k: n for k, n in c.items() if k.startswith(S.QUANT_OPS) and k != "QLinearConv"}
        fl = sum(c.get(k, 0) for k in ("Conv", "FusedConv", "NchwcConv", "Gemm", "FusedGemm"))
        p = res["predicted"].get(v)
        pred = "" if p is None else f"{p:.2f}"
        diff = "" if p is None else f"{res['score'][v] - p:+.2f}"
        print(f"| {label} | {res['score'][v]:.2f} | {pred} | {diff} | {c.get('QLinearConv', 0)} | "
              f"{', '.join(f'{k} {n}' for k, n in other.items())} | {c.get('QuantizeLinear', 0)} | "
              f"{c.get('DequantizeLinear', 0)} | {fl} |")


if __name__ == "__main__":
    main()
