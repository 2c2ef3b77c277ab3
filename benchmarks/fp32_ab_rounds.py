#!/usr/bin/env python3
"""FP32 A/B of two mpq builds against ONNX Runtime FP32, in interleaved rounds.

Each round runs, model after model, `mpq-bench model` with the base build, then with the new
build (optionally with extra environment, e.g. an off switch: --new-env MPQ_FP32_CONV_CV=0),
then ORT FP32 at the same batches (15 runs after 3 warm-ups, `intra_op_num_threads` =
--threads). The table takes each column's minimum over the rounds (runtime_vs_ort_rounds.py's
rule, whose helpers this uses) and prints the load average after each round.

    /work/venv/bin/python benchmarks/fp32_ab_rounds.py --rounds 3 --base /work/s10base \\
        --new .build/release shapes_det=Tests/Fixtures/detection/shapes_det.onnx,Tests/Fixtures/detection/shapes_det_calib.npz
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from runtime_vs_ort_rounds import mpq_mins, ort_min_ms, ort_session  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+", help="NAME=MODEL.onnx,CALIB.npz")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--base", required=True, help="folder holding the base build's mpq-bench")
    ap.add_argument("--new", default=".build/release", help="folder holding the new build's mpq-bench")
    ap.add_argument("--new-env", action="append", default=[], help="KEY=VALUE for the new build's runs (repeatable)")
    a = ap.parse_args()
    extra = dict(kv.split("=", 1) for kv in a.new_env)
    cases = []
    for arg in a.models:
        name, files = arg.split("=", 1)
        model, calib = files.split(",", 1)
        data = np.load(calib)
        sess = ort_session(model, a.threads)
        inputs = sess.get_inputs()
        arr = lambda i: data[i.name] if i.name in data.files else data["input"]  # noqa: E731
        n = len(arr(inputs[0]))
        feeds = {b: {i.name: arr(i)[:b] for i in inputs} for b in sorted({1, min(16, n)})}
        cases.append((name, model, calib, sess, feeds))
    best = {}  # (name, batch) -> [base, new, ort]
    started = time.time()
    for r in range(a.rounds):
        for name, model, calib, sess, feeds in cases:
            base = mpq_mins(f"{a.base}/mpq-bench", name, model, calib, a.threads)
            saved = {k: os.environ.get(k) for k in extra}
            os.environ.update(extra)
            try:
                new = mpq_mins(f"{a.new}/mpq-bench", name, model, calib, a.threads)
            finally:
                for k, v in saved.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v
            for b, f in feeds.items():
                v = [base[b][0], new[b][0], ort_min_ms(sess, f)]
                old = best.get((name, b))
                best[(name, b)] = v if old is None else [min(x, y) for x, y in zip(old, v)]
        print(f"round {r + 1}/{a.rounds} done, {time.time() - started:.0f} s, load average {os.getloadavg()[0]:.2f}", flush=True)
    print()
    print("| model | batch | base FP32 | new FP32 | ORT FP32 | new / base | base / ORT | **new / ORT** |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for (name, b), v in best.items():
        print(f"| {name} | {b} | {v[0]:.3f} | {v[1]:.3f} | {v[2]:.3f} | {v[1] / v[0]:.2f} | {v[0] / v[2]:.2f} | {v[1] / v[2]:.2f} |")


if __name__ == "__main__":
    main()
