#!/usr/bin/env python3
"""Two mpq binaries' all-INT8 `--scheme ort` exports of the same models, side by side in ONNX
Runtime: are their outputs the same bytes, and which runs faster (against the FP32 model)?

For an export change that must not change a number (s39: space-to-depth stems), this is the
A/B: both binaries calibrate and export the same all-INT8 map from the same calibration split;
ORT runs both exports on the holdout rows (outputs compared element for element) and times
FP32, export A and export B round-robin (one session open at a time, ort_sessions.time_rounds),
at each threads x batch. A benchmark, not a test: nothing about time is asserted.

    /work/venv/bin/python benchmarks/export_ab.py --a /tmp/mpq_base --b .build/release/mpq \\
        rd=Tests/Fixtures/resnet/resnet_digits.onnx,Tests/Fixtures/resnet/resnet_digits_calib.npz,Tests/Fixtures/resnet/resnet_digits_holdout.npz

Each model is NAME=MODEL,CALIB,HOLDOUT. Results: the table printed, WORK/export_ab.json.
"""
import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ort_sessions  # noqa: E402
import scheme_speed as S  # noqa: E402  (sh, input_name, op_counts, latency, cpu_summary)


def export(mpq, model, calib, d, tag):
    info = json.loads(S.sh([mpq, "inspect", model, "--json"]))
    map_path = f"{d}/all_int8.json"
    with open(map_path, "w") as f:
        json.dump({"layers": {r["name"]: "int8" for r in info["nodes"] if r["quantizable"]}}, f)
    S.sh([mpq, "calibrate", model, "--data", calib, "--scheme", "ort", "--out", f"{d}/calib_{tag}.json"])
    out = f"{d}/export_{tag}.onnx"
    S.sh([mpq, "export", model, "--precision", map_path, "--format", "qdq", "--scheme", "ort",
          "--calibration", f"{d}/calib_{tag}.json", "--out", out])
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", required=True, help="mpq binary A (before)")
    ap.add_argument("--b", default=".build/release/mpq", help="mpq binary B (after)")
    ap.add_argument("--work", default="out/bench/export_ab")
    ap.add_argument("--batches", default="1,16")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--parity-rows", type=int, default=64)
    ap.add_argument("models", nargs="+", help="NAME=MODEL,CALIB,HOLDOUT")
    args = ap.parse_args()
    res = {"cpu": S.cpu_summary(), "command": " ".join(sys.argv),
           "started_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "loadavg_start": os.getloadavg(), "models": {}}
    rows = []
    for spec in args.models:
        key, files = spec.split("=", 1)
        model, calib, holdout = files.split(",")
        d = f"{args.work}/{key}"
        os.makedirs(d, exist_ok=True)
        paths = {"fp32": model, "A": export(args.a, model, calib, d, "a"), "B": export(args.b, model, calib, d, "b")}
        r = {"ops": {k: S.op_counts(p, d, k) for k, p in paths.items()}}
        name, _ = S.input_name(model)
        x = np.load(holdout)[name]
        feed = {name: x[:args.parity_rows]}
        outs = {k: ort_sessions.session(paths[k], 2).run(None, feed) for k in ("A", "B")}
        r["outputs_identical"] = all(np.array_equal(a, b) for a, b in zip(outs["A"], outs["B"]))
        r["max_abs_diff"] = max(float(np.abs(a.astype(np.float64) - b).max()) for a, b in zip(outs["A"], outs["B"]))
        r["latency"] = {}
        for t in [int(v) for v in args.threads.split(",")]:
            for bsz in [int(v) for v in args.batches.split(",")]:
                lat = S.latency(paths, name, x, t, bsz, 3, args.rounds)
                for v in lat.values():
                    v.pop("runs")
                r["latency"][f"{t}x{bsz}"] = lat
                m = {k: v["median_ms"] for k, v in lat.items()}
                mn = {k: v["min_ms"] for k, v in lat.items()}
                rows.append(f"| {key} | {t}x{bsz} | {m['fp32']:.3f} | {m['A']:.3f} | {m['B']:.3f} | {m['A'] / m['fp32']:.2f} "
                            f"| **{m['B'] / m['fp32']:.2f}** | {m['B'] / m['A']:.2f} ({mn['B'] / mn['A']:.2f}) "
                            f"| {'same bytes' if r['outputs_identical'] else 'DIFFER max ' + str(r['max_abs_diff'])} |")
                print(rows[-1], flush=True)
        res["models"][key] = r
    res["loadavg_end"] = os.getloadavg()
    json.dump(res, open(f"{args.work}/export_ab.json", "w"), indent=1)
    print(f"\nCPU: {res['cpu'].get('model_name', '')}  load average {res['loadavg_start'][0]:.1f} -> {res['loadavg_end'][0]:.1f}")
    print("| model | threads x batch | FP32 ms | export A ms | export B ms | A / FP32 | B / FP32 | B / A median (min) | ORT outputs A vs B |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---|")
    print("\n".join(rows))
    for key, r in res["models"].items():
        a, b = r["ops"]["A"], r["ops"]["B"]
        print(f"{key}: ops that differ (A, B): " + json.dumps({k: [a.get(k, 0), b.get(k, 0)] for k in sorted(set(a) | set(b)) if a.get(k, 0) != b.get(k, 0)}))


if __name__ == "__main__":
    main()
