#!/usr/bin/env python3
"""ONNX Runtime latency of mpq's all-INT8 QDQ exports, --scheme ort vs --scheme inputs (issue 14).

A benchmark, not a test: it asserts nothing about time. For every model case it

1. runs the mpq release binary: `calibrate --scheme ort`, `export --format qdq` of the
   all-INT8 map under both schemes, and `eval --save-outputs` of both schemes on the holdout;
2. builds ONNX Runtime's own `quantize_static` QDQ model as the reference (QuantFormat.QDQ,
   per-channel, uint8 activations / int8 weights, MinMax on the same calibration data; the
   model goes through `quant_pre_process` first, as ORT recommends);
3. for FP32, the inputs export, the ort export and quantize_static measures, side by side in
   one process: ORT CPU latency (intra_op_num_threads 2 and 1, two batch sizes, warm-up, then
   rounds that run every model once each, in turn; median and min), the op types of ORT's
   optimized graph (SessionOptions.optimized_model_filepath, default ORT_ENABLE_ALL), ORT's
   score on the holdout, and max |ORT - mpq| between ORT's output on each export and
   mpq's saved output of the same scheme;
4. prints the CPU (lscpu model name, ISA flags that matter, OPENBLAS_CORETYPE) and markdown
   tables: latency with ratios to FP32, optimized-graph op counts, accuracy and parity.

    swift build -c release --product mpq
    /work/venv/bin/python benchmarks/scheme_speed.py                       # all cases
    /work/venv/bin/python benchmarks/scheme_speed.py --cases digits,det --iters 20

Generated models and data go to --work (default out/bench, git-ignored). Results are also
written to WORK/scheme_speed.json.
"""
import argparse
import collections
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort

import ort_sessions  # benchmarks/ort_sessions.py: the ORT session every script opens

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VARIANTS = ["fp32", "inputs", "ort", "qstatic"]
LABEL = {"fp32": "FP32", "inputs": "mpq --scheme inputs", "ort": "mpq --scheme ort",
         "qstatic": "ORT quantize_static"}


def case_table(work):
    det = "Tests/Fixtures/detection"
    return {
        "digits": dict(model="Examples/digits_cnn.onnx", calib="Examples/digits_calib.npz",
                       holdout="Examples/digits_holdout.npz", metric="top1", batches=[1, 64]),
        "det": dict(model=f"{det}/shapes_det.onnx", calib=f"{det}/shapes_det_calib.npz",
                    holdout=f"{det}/shapes_det_holdout.npz", metric="cosine", extra_metric="map50",
                    batches=[1, 16]),
        "resnet18": dict(generate="resnet18", model=f"{work}/resnet18/model.onnx", calib=f"{work}/resnet18/calib.npz",
                         holdout=f"{work}/resnet18/holdout.npz", metric="agreement", batches=[1, 16]),
        "mobilenetv2": dict(generate="mobilenetv2", model=f"{work}/mobilenetv2/model.onnx",
                            calib=f"{work}/mobilenetv2/calib.npz", holdout=f"{work}/mobilenetv2/holdout.npz",
                            metric="agreement", batches=[1, 16]),
    }


def sh(cmd, **kw):
    print("$ " + " ".join(cmd), flush=True)
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        sys.stderr.write(r.stdout + r.stderr)
        raise SystemExit(f"failed ({r.returncode}): {' '.join(cmd)}")
    return r.stdout


def cpu_summary():
    info = {}
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            k, _, v = line.partition(":")
            info[k.strip()] = v.strip()
    except OSError:
        pass
    flags = set(info.get("Flags", "").split())
    keep = [f for f in ["avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx_vnni",
                        "avx512_bf16", "amx_int8"] if f in flags]
    return {
        "model_name": info.get("Model name", platform.processor()),
        "family_model": f"family {info.get('CPU family', '?')} model {info.get('Model', '?')}",
        "cpus": info.get("CPU(s)", str(os.cpu_count())),
        "hypervisor": info.get("Hypervisor vendor", "none"),
        "flags": keep,
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE", "<unset>"),
        "OPENBLAS_L2_SIZE": os.environ.get("OPENBLAS_L2_SIZE", "<unset>"),
        "onnxruntime": ort.__version__,
        "onnx": onnx.__version__,
        "numpy": np.__version__,
        "loadavg": os.getloadavg(),
    }


def input_name(model_path):
    m = onnx.load(model_path, load_external_data=False)
    inits = {i.name for i in m.graph.initializer}
    names = [i.name for i in m.graph.input if i.name not in inits]
    assert len(names) == 1, names
    return names[0], m.graph.output[0].name


# ---------------------------------------------------------------- mpq steps

def mpq_steps(mpq, case, d):
    """calibrate (ort), all-INT8 map, exports under both schemes, eval --save-outputs of both."""
    info = json.loads(sh([mpq, "inspect", case["model"], "--json"]))
    layers = [r["name"] for r in info["nodes"] if r["quantizable"]]
    with open(f"{d}/all.json", "w") as f:
        json.dump({"layers": {n: "int8" for n in layers}}, f)
    sh([mpq, "calibrate", case["model"], "--data", case["calib"], "--scheme", "ort", "--out", f"{d}/calib.json"])
    res = {"quantizable_layers": len(layers), "macs": info["total_macs"], "quantizable_macs": info["quantizable_macs"]}
    for scheme in ["inputs", "ort"]:
        sh([mpq, "export", case["model"], "--precision", f"{d}/all.json", "--format", "qdq", "--scheme", scheme,
            "--calibration", f"{d}/calib.json", "--out", f"{d}/{scheme}.onnx"])
        t = time.time()
        out = sh([mpq, "eval", case["model"], "--data", case["holdout"], "--metric", case["metric"],
                  "--precision", f"{d}/all.json", "--calibration", f"{d}/calib.json", "--scheme", scheme,
                  "--save-outputs", f"{d}/mpq_{scheme}.npz", "--json"])
        res[f"mpq_{scheme}"] = json.loads(out)
        res[f"mpq_{scheme}"]["wall"] = time.time() - t
        if "extra_metric" in case:  # mpq's score only (ORT's raw outputs are compared with mpq's instead)
            res[f"mpq_{scheme}_{case['extra_metric']}"] = json.loads(sh(
                [mpq, "eval", case["model"], "--data", case["holdout"], "--metric", case["extra_metric"],
                 "--precision", f"{d}/all.json", "--calibration", f"{d}/calib.json", "--scheme", scheme, "--json"]))
    for m in [case["metric"]] + ([case["extra_metric"]] if "extra_metric" in case else []):
        res["mpq_fp32" + ("" if m == case["metric"] else "_" + m)] = json.loads(
            sh([mpq, "eval", case["model"], "--data", case["holdout"], "--metric", m, "--json"]))
    return res


# ---------------------------------------------------------------- ORT quantize_static

class Reader:
    def __init__(self, x, name, batch=8):
        self.items = iter([{name: x[i:i + batch]} for i in range(0, len(x), batch)])

    def get_next(self):
        return next(self.items, None)


def quantize_static(case, d, name, reduce_range=False):
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static as qs
    from onnxruntime.quantization.shape_inference import quant_pre_process
    pre = f"{d}/qstatic_pre.onnx"
    try:
        quant_pre_process(case["model"], pre, skip_symbolic_shape=True)
    except Exception as e:  # noqa: BLE001 - fall back to the raw model, say so
        print(f"quant_pre_process failed ({e}); quantizing the raw model")
        shutil.copy(case["model"], pre)
    x = np.load(case["calib"])[name]
    qs(pre, f"{d}/qstatic.onnx", Reader(x, name), quant_format=QuantFormat.QDQ, per_channel=True,
       activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax,
       reduce_range=reduce_range)


# ---------------------------------------------------------------- ORT measurements

def session(path, threads, optimized=None, level=ort.GraphOptimizationLevel.ORT_ENABLE_ALL):
    return ort_sessions.session(path, threads, optimized=optimized, level=level)


QUANT_OPS = ("QLinear", "QGemm", "MatMulInteger", "DynamicQuantize", "QAttention", "NhwcMaxPool", "QEmbed")
BOUNDARY = ("QuantizeLinear", "DequantizeLinear")
MOVEMENT = {"Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Constant", "Shape", "Gather",
            "Slice", "Concat", "Split", "ReorderInput", "ReorderOutput"}  # Reorder*: ORT's NCHWc layout changes


PASS_TYPE = MOVEMENT | {"Resize", "MaxPool", "NhwcMaxPool", "Upsample", "Pad", "ReorderInput", "ReorderOutput"}


def op_counts(path, d, tag):
    """Op types of ORT's optimized graph. Ops that keep their input's type (data movement, Resize,
    MaxPool) are counted as 'Op(u8)' when that input is a quantized tensor, which is found by
    following producers: QuantizeLinear and QLinear*/QGemm with an output scale give 8-bit
    tensors, DequantizeLinear and everything else float."""
    opt = f"{d}/{tag}.optimized.onnx"
    session(path, 1, optimized=opt)
    m = onnx.load(opt)
    g = m.graph
    quant = set()
    for n in g.node:
        t = n.op_type
        if t == "QuantizeLinear" or t.startswith("QLinear"):
            quant.update(n.output[:1])
        elif t == "QGemm" and len(n.input) >= 8 and n.input[7]:
            quant.update(n.output[:1])
        elif t in PASS_TYPE and n.input and n.input[0] in quant:
            quant.update(n.output)
    c = collections.Counter()
    for n in g.node:
        t = n.op_type
        if t in PASS_TYPE and n.input and n.input[0] in quant and t != "NhwcMaxPool":
            t += "(u8)"
        c[t] += 1
    return dict(sorted(c.items()))


def float_compute(counts):
    """Ops in ORT's optimized graph that compute in float (not Q/DQ, not INT8, not data movement)."""
    return {k: v for k, v in counts.items()
            if not k.startswith(QUANT_OPS) and k not in BOUNDARY and k not in MOVEMENT and not k.endswith("(u8)")}


def run_all(sess, name, x, batch):
    outs = [sess.run(None, {name: x[i:i + batch]})[0] for i in range(0, len(x), batch)]
    return np.concatenate(outs)


def latency(paths, name, x, threads, batch, warmup, iters):
    """Rounds over the models, one ORT session open at a time (ort_sessions.time_rounds: idle
    sessions' spinning workers inflated round-robin timings with two or more threads)."""
    reps = -(-batch // len(x))
    feed = np.concatenate([x] * reps)[:batch]
    rounds = 3 if iters >= 3 else 1
    return ort_sessions.time_rounds(paths, {name: feed}, threads, rounds=rounds, warmup=warmup, runs=-(-iters // rounds))


def parity(ort_out, mpq):
    if isinstance(mpq, str):
        z = np.load(mpq)
        mpq = z[z.files[0]]
    b = mpq.astype(np.float64)
    a = ort_out.reshape(len(ort_out), -1)[:len(b)].astype(np.float64)
    b = b.reshape(len(b), -1)
    if a.shape != b.shape:
        return {"error": f"shape ORT {a.shape} vs mpq {b.shape}"}
    diff = np.abs(a - b)
    scale = max(float(np.abs(a).max()), 1e-12)
    return {"max_abs_diff": float(diff.max()), "max_abs_ort": scale, "elements": int(diff.size),
            "differ_gt_1e-5_rel": int((diff > 1e-5 * scale).sum()), "differ_nonzero": int((diff > 0).sum()),
            "argmax_agreement": float((a.argmax(1) == b.argmax(1)).mean())}


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mpq", default=".build/release/mpq")
    ap.add_argument("--work", default="out/bench")
    ap.add_argument("--cases", default="digits,det,resnet18,mobilenetv2")
    ap.add_argument("--threads", default="2,1")
    ap.add_argument("--batches", default=None, help="override every case's batch sizes, e.g. 1,16")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--iters", type=int, default=7, help="timed rounds (median and min reported)")
    ap.add_argument("--iters-small", type=int, default=20, help="timed rounds for digits and det")
    ap.add_argument("--skip-mpq", action="store_true", help="reuse the exports and mpq outputs already in --work")
    args = ap.parse_args()
    os.chdir(ROOT)
    cpu = cpu_summary()
    print("CPU:", json.dumps(cpu))
    threads = [int(t) for t in args.threads.split(",")]
    table = case_table(args.work)
    results = {"cpu": cpu, "command": " ".join(sys.argv), "started_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
               "cases": {}}
    for cname in args.cases.split(","):
        case = table[cname]
        d = f"{args.work}/{cname}"
        os.makedirs(d, exist_ok=True)
        if "generate" in case and not os.path.exists(case["model"]):
            sh([sys.executable, "benchmarks/models/resnet_shaped.py", "--arch", case["generate"], "--out", d])
        name, _ = input_name(case["model"])
        print(f"\n=== {cname}: {case['model']} (input {name})", flush=True)
        res = {"model": case["model"], "metric": case["metric"]}
        if args.skip_mpq and os.path.exists(f"{d}/ort.onnx"):
            res.update(json.load(open(f"{d}/mpq.json")))
        else:
            res.update(mpq_steps(args.mpq, case, d))
            json.dump({k: v for k, v in res.items() if k not in ("model", "metric")}, open(f"{d}/mpq.json", "w"))
        if not (args.skip_mpq and os.path.exists(f"{d}/qstatic.onnx")):
            quantize_static(case, d, name)
        paths = {"fp32": case["model"], "inputs": f"{d}/inputs.onnx", "ort": f"{d}/ort.onnx",
                 "qstatic": f"{d}/qstatic.onnx"}
        hold = np.load(case["holdout"])
        x = hold[name]
        labels = hold["labels"] if "labels" in hold.files else None
        outs, res["ops"], res["score"], res["parity"] = {}, {}, {}, {}
        for k, p in paths.items():
            res["ops"][k] = op_counts(p, d, k)
            outs[k] = run_all(session(p, 2), name, x, 16)
        ref = outs["fp32"].reshape(len(x), -1).argmax(1)
        for k in paths:
            o = outs[k].reshape(len(x), -1)
            f = outs["fp32"].reshape(len(x), -1).astype(np.float64)
            cos = (o * f).sum(1) / np.maximum(np.linalg.norm(o, axis=1) * np.linalg.norm(f, axis=1), 1e-30)
            s = {"agreement": float((o.argmax(1) == ref).mean() * 100), "cosine": float(cos.mean() * 100)}
            if labels is not None:
                s["top1"] = float((o.argmax(1) == labels).mean() * 100)
            res["score"][k] = s
            if k in ("inputs", "ort"):
                res["parity"][k] = parity(outs[k], f"{d}/mpq_{k}.npz")
                # The QDQ graph as written (no fusion: DQ -> float op -> Q, ORT's reference semantics)
                ref_out = run_all(session(paths[k], 2, level=ort.GraphOptimizationLevel.ORT_DISABLE_ALL), name, x, 16)
                res["parity"][k + "_unfused"] = parity(ref_out, f"{d}/mpq_{k}.npz")
                res["parity"][k + "_fused_vs_unfused"] = parity(outs[k], ref_out)
        res["latency"] = {}
        for t in threads:
            for b in ([int(v) for v in args.batches.split(",")] if args.batches else case["batches"]):
                print(f"latency: threads {t}, batch {b}", flush=True)
                res["latency"][f"{t}x{b}"] = latency(paths, name, x, t, b, args.warmup,
                                                           args.iters_small if cname in ("digits", "det") else args.iters)
        results["cases"][cname] = res
        json.dump(results, open(f"{args.work}/scheme_speed.json", "w"), indent=1)
        print_case(cname, res)
    results["finished_utc"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    json.dump(results, open(f"{args.work}/scheme_speed.json", "w"), indent=1)
    print_summary(results)


def fmt(v, spec=".2f"):
    return "" if v is None else format(v, spec)


def print_case(cname, res):
    print(f"\n{cname}: " + json.dumps({"ops": res["ops"], "score": res["score"], "parity": res["parity"]}))


def print_summary(results):
    cpu = results["cpu"]
    print("\n## Machine")
    print(f"- CPU: {cpu['model_name']} ({cpu['family_model']}, {cpu['cpus']} CPUs, hypervisor {cpu['hypervisor']}); "
          f"flags: {' '.join(cpu['flags'])}")
    print(f"- OPENBLAS_CORETYPE={cpu['OPENBLAS_CORETYPE']} OPENBLAS_L2_SIZE={cpu['OPENBLAS_L2_SIZE']}; "
          f"onnxruntime {cpu['onnxruntime']}, onnx {cpu['onnx']}, numpy {cpu['numpy']}; load average at start "
          f"{' '.join(f'{v:.2f}' for v in cpu['loadavg'])}")
    print(f"- command: `{results['command']}` ({results['started_utc']} to {results.get('finished_utc', '?')})")

    print("\n## ORT latency, median ms per batch (min in parentheses); ratio = median / FP32 median (min / FP32 min)")
    print("\n| model | threads x batch | FP32 ms | inputs ms | ort ms | quantize_static ms | inputs/FP32 | ort/FP32 | quantize_static/FP32 | ort/quantize_static |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for cname, res in results["cases"].items():
        for key, lat in res["latency"].items():
            f = lat["fp32"]["median_ms"]
            cells = [f"{lat[v]['median_ms']:.2f} ({lat[v]['min_ms']:.2f})" for v in VARIANTS]
            fm = lat["fp32"]["min_ms"]
            ratios = [f"{lat[v]['median_ms'] / f:.2f}x ({lat[v]['min_ms'] / fm:.2f}x)" for v in ("inputs", "ort", "qstatic")]
            oq = (f"{lat['ort']['median_ms'] / lat['qstatic']['median_ms']:.2f}x "
                  f"({lat['ort']['min_ms'] / lat['qstatic']['min_ms']:.2f}x)")
            print(f"| {cname} | {key} | " + " | ".join(cells) + " | " + " | ".join(f"**{r}**" if i == 1 else r for i, r in enumerate(ratios)) + f" | {oq} |")

    print("\n## ORT's optimized graph (ORT_ENABLE_ALL): node counts")
    print("\nOp(u8): an op that keeps its input's type (data movement, Resize, MaxPool) running on a quantized "
          "tensor. Float compute = everything not Q/DQ, not quantized and not data movement.")
    print("\n| model | model variant | QLinearConv | other QLinear* / QGemm / MatMulInteger* | QuantizeLinear | DequantizeLinear | Conv + FusedConv (float) | other float compute ops | ops on 8-bit tensors |")
    print("|---|---|---:|---|---:|---:|---:|---|---|")
    for cname, res in results["cases"].items():
        for v in VARIANTS:
            c = res["ops"][v]
            q = {k: n for k, n in c.items() if k.startswith(QUANT_OPS) and k != "QLinearConv"}
            fl = {k: n for k, n in float_compute(c).items() if k not in ("Conv", "FusedConv")}
            print(f"| {cname} | {LABEL[v]} | {c.get('QLinearConv', 0)} | {', '.join(f'{k} {n}' for k, n in q.items())} | "
                  f"{c.get('QuantizeLinear', 0)} | {c.get('DequantizeLinear', 0)} | "
                  f"{c.get('Conv', 0) + c.get('FusedConv', 0)} | {', '.join(f'{k} {n}' for k, n in fl.items())} | "
                  f"{', '.join(f'{k[:-4]} {n}' for k, n in c.items() if k.endswith('(u8)'))} |")

    print("\n## Accuracy on the holdout and ORT-vs-mpq parity")
    print("\nScores in points: top1 vs labels; agreement = top-1 agreement with the FP32 model; cosine = mean "
          "per-sample cosine x 100 of the raw output to the FP32 model's. ORT's FP32 scores against ORT's FP32 "
          "outputs, mpq's against mpq's FP32 run.")
    print("\n| model | metric | mpq FP32 | mpq inputs | ORT on inputs export | mpq ort | ORT on ort export | ORT quantize_static | "
          "max \\|ORT - mpq\\| inputs (elements > 1e-5 x max) | max \\|ORT - mpq\\| ort (elements > 1e-5 x max) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---|---|")
    for cname, res in results["cases"].items():
        m = res["metric"]

        def ort_score(v):
            return fmt(res["score"][v].get(m))

        def par(v):
            p = res["parity"][v]
            if "error" in p:
                return p["error"]
            return f"{p['max_abs_diff']:.3g} of max {p['max_abs_ort']:.3g} ({p['differ_gt_1e-5_rel']} / {p['elements']})"
        print(f"| {cname} | {m} | {res['mpq_fp32']['score']:.2f} | {res['mpq_inputs']['score']:.2f} | {ort_score('inputs')} | "
              f"{res['mpq_ort']['score']:.2f} | {ort_score('ort')} | {ort_score('qstatic')} | {par('inputs')} | {par('ort')} |")
    print("\nWhere ORT and mpq differ: ORT's fused kernels against the same QDQ graph run unfused "
          "(ORT_DISABLE_ALL: DequantizeLinear -> float op -> QuantizeLinear), and mpq against that unfused run. "
          "Each cell: max |diff| of max |output| (elements > 1e-5 x max / all), argmax agreement.")
    print("\n| model | scheme | ORT fused vs mpq | ORT unfused vs mpq | ORT fused vs ORT unfused |")
    print("|---|---|---|---|---|")
    for cname, res in results["cases"].items():
        for v in ("inputs", "ort"):
            cells = []
            for k in (v, v + "_unfused", v + "_fused_vs_unfused"):
                p = res["parity"][k]
                cells.append(p.get("error") or f"{p['max_abs_diff']:.3g} of {p['max_abs_ort']:.3g} "
                             f"({p['differ_gt_1e-5_rel']} / {p['elements']}), {p['argmax_agreement'] * 100:.1f}%")
            print(f"| {cname} | {v} | " + " | ".join(cells) + " |")
    for cname, res in results["cases"].items():
        for k in res:
            if k.startswith("mpq_fp32_"):
                m = k[len("mpq_fp32_"):]
                print(f"\n{cname}, {m} (mpq only): FP32 {res[k]['score']:.2f}, inputs {res['mpq_inputs_' + m]['score']:.2f}, "
                      f"ort {res['mpq_ort_' + m]['score']:.2f}")


if __name__ == "__main__":
    main()
