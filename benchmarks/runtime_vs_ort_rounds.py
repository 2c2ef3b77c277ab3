#!/usr/bin/env python3
"""mpq's runtime against ONNX Runtime in interleaved rounds (issue 13's table on a noisy host).

benchmarks/runtime_vs_ort.sh times all of mpq first and all of ORT after; on a virtual machine
whose neighbours steal CPU for minutes at a time (measured here: 8% steal with the guest idle,
the same binary 26 vs 52 ms a minute apart) one side can land in a slow minute and the other in
a fast one. This script alternates instead: each round runs `mpq-bench model` for one model
(mpq FP32, all-INT8 `--scheme inputs`, all-INT8 `--scheme ort`; 15 runs after 3 warm-ups at
batch 1 and 16) and then ORT's FP32 model and ORT on mpq's all-INT8 `--scheme ort` export (the
same batches, runs and warm-ups; also the same export with `--weight-type uint8`, which ORT
computes exactly where its int8-weight path saturates, on AVX2 without VNNI), model after model,
round after round. The table takes each
column's minimum over the rounds, so a slow minute on one side does not decide a ratio, and
prints the CPU steal time seen during the run. Its last two columns give the spread: the two
bold ratios as measured within each round (mpq's and ORT's minima of the same round, a minute
apart at most), lowest and highest over the rounds: a table whose minima ratio reads 1.02 while
the rounds range 0.97-1.05 says the two are level on this host.

    swift build -c release
    /work/venv/bin/python benchmarks/runtime_vs_ort_rounds.py --rounds 3 \\
        digits_cnn=Examples/digits_cnn.onnx,Examples/digits_calib.npz ...

With --before DIR (another build's mpq-bench), each round also runs that build's `mpq-bench
model` right before this one's (same weight bits), and the table gains its FP32 and all-INT8 `ort`
columns and ratios: an A/B of two builds against the same ORT minima. DIR/mpq-bench may also be a
two-line wrapper that sets a runtime switch and runs this build's binary (s31:
`MPQ_INT8_AVX2_INDIRECT=0 exec .build/release/mpq-bench "$@"`): an A/B of the switch.

With --weight-bits 7 mpq's INT8 columns and both exports use 7-bit weights ([-64, 64], which
ORT's int8-weight kernels compute exactly on AVX2 too).

Needs onnxruntime and numpy. Writes the exports under --work (default .build/runtime_vs_ort).
"""
import argparse
import json
import os
import re
import subprocess
import time

import numpy as np
import onnxruntime as ort

import ort_sessions  # benchmarks/ort_sessions.py: the ORT session every script opens


def steal_ticks():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return v[7], sum(v)


def export_all_int8(mpq, name, model, calib, work, bits=8):
    """mpq's all-INT8 `--scheme ort` QDQ exports of `model` (int8 and uint8 weights), calibrated on `calib`."""
    table = f"{work}/{name}.calib.json"
    subprocess.run([mpq, "calibrate", model, "--data", calib, "--out", table, "--quiet"], check=True)
    info = json.loads(subprocess.run([mpq, "inspect", model, "--data", calib, "--json"], check=True,
                                     capture_output=True, text=True).stdout)
    layers = {n["name"]: "int8" for n in info["nodes"] if n.get("quantizable")}
    with open(f"{work}/{name}.all.json", "w") as f:
        json.dump({"layers": layers}, f)
    outs = []
    for weights in ("int8", "uint8"):
        out = f"{work}/{name}.ort.onnx" if weights == "int8" else f"{work}/{name}.ort.{weights}.onnx"
        subprocess.run([mpq, "export", model, "--precision", f"{work}/{name}.all.json", "--format", "qdq", "--scheme", "ort",
                        "--weight-type", weights, "--weight-bits", str(bits), "--calibration", table, "--out", out, "--quiet"],
                       check=True)
        outs.append(out)
    return outs


def ort_min_ms(paths, feeds, threads, warmup=3, runs=15):
    """{key: minimum ms} of each model, one ORT session open at a time (ort_sessions.time_rounds:
    idle sessions' spinning workers slowed the next session when all stayed open)."""
    return {k: r["min_ms"] for k, r in ort_sessions.time_rounds(paths, feeds, threads, rounds=1, warmup=warmup,
                                                                  runs=runs).items()}


ROW = re.compile(r"^(\S+)\s+(\d+)\s+([\d.]+)\s+[\d.]+\s+([\d.]+)\s+[\d.]+\s+([\d.]+)\s+[\d.]+")


def mpq_mins(bench, name, model, calib, threads, bits=8):
    """{batch: (fp32, int8 inputs, int8 ort)} minimum ms from one `mpq-bench model` run."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), MPQ_BENCH_WEIGHT_BITS=str(bits))
    out = subprocess.run([bench, "model", f"{name}={model},{calib}"], check=True, capture_output=True, text=True,
                         env=env).stdout
    rows = {}
    for line in out.splitlines():
        m = ROW.match(line)
        if m and m.group(1) == name:
            rows[int(m.group(2))] = tuple(float(m.group(i)) for i in (3, 4, 5))
    if not rows:
        raise SystemExit(f"no rows for {name} in mpq-bench output:\n{out}")
    return rows


def spread(ratios):
    """Lowest and highest FP32 and INT8 ratio over the rounds."""
    fp32, int8 = [r[0] for r in ratios], [r[1] for r in ratios]
    return min(fp32), max(fp32), min(int8), max(int8)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+", help="NAME=MODEL.onnx,CALIB.npz")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--bin", default=".build/release", help="folder holding mpq and mpq-bench (release build)")
    ap.add_argument("--work", default=".build/runtime_vs_ort")
    ap.add_argument("--before", help="folder of another build's mpq-bench, run before this one's in every round")
    ap.add_argument("--weight-bits", type=int, choices=[8, 7], default=8, help="mpq's INT8 and the exports' weight range")
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    mpq, bench = f"{a.bin}/mpq", f"{a.bin}/mpq-bench"
    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model_name = next((l.split(":", 1)[1].strip() for l in cpu.splitlines() if l.startswith("Model name")), "?")
    flags = next((l for l in cpu.splitlines() if l.startswith("Flags")), "")
    print(f"CPU: {model_name}, {os.cpu_count()} CPUs, amx_int8: {'amx_int8' in flags}, avx512_vnni: {'avx512_vnni' in flags}; "
          f"onnxruntime {ort.__version__}; OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', 'unset')}; "
          f"MPQ_QGEMM_AMX={os.environ.get('MPQ_QGEMM_AMX', 'unset')}; threads {a.threads}; weight bits {a.weight_bits}")
    cases = []
    for arg in a.models:
        name, files = arg.split("=", 1)
        model, calib = files.split(",", 1)
        export, export_u8 = export_all_int8(mpq, name, model, calib, a.work, a.weight_bits)
        data = np.load(calib)
        inputs = ort_sessions.session(model, 1).get_inputs()
        arr = lambda i: data[i.name] if i.name in data.files else data["input"]  # noqa: E731
        n = len(arr(inputs[0]))
        feeds = {b: {i.name: arr(i)[:b] for i in inputs} for b in sorted({1, min(16, n)})}
        cases.append((name, model, calib, (model, export, export_u8), feeds))
    best = {}  # (name, batch) -> [mpq fp32, mpq int8 inputs, mpq int8 ort, ort fp32, ort export, ort uint8 export(, before's 3)]
    per_round = {}  # (name, batch) -> [(fp32 ratio, int8 ratio) of each round]
    s0, t0 = steal_ticks()
    started = time.time()
    for r in range(a.rounds):
        for name, model, calib, onnx_paths, feeds in cases:
            before = mpq_mins(f"{a.before}/mpq-bench", name, model, calib, a.threads, a.weight_bits) if a.before else None
            rows = mpq_mins(bench, name, model, calib, a.threads, a.weight_bits)
            for b, f in feeds.items():
                o = ort_min_ms(dict(zip(("fp32", "qdq", "qdq_u8"), onnx_paths)), f, a.threads)
                v = list(rows[b]) + [o["fp32"], o["qdq"], o["qdq_u8"]] \
                    + (list(before[b]) if before else [])
                per_round.setdefault((name, b), []).append((v[0] / v[3], v[2] / v[4]))
                old = best.get((name, b))
                best[(name, b)] = v if old is None else [min(x, y) for x, y in zip(old, v)]
        print(f"round {r + 1}/{a.rounds} done, {time.time() - started:.0f} s, load average {os.getloadavg()[0]:.2f}", flush=True)
    s1, t1 = steal_ticks()
    print(f"CPU steal during the run: {100 * (s1 - s0) / max(1, t1 - t0):.1f}% of all CPU time")
    print()
    extra = (" before: mpq FP32 | FP32 now / before | before: mpq INT8 ort | before / ORT export | INT8 now / before |"
             if a.before else "")
    print("| model | batch | mpq FP32 | mpq INT8 inputs | mpq INT8 ort | ORT FP32 | ORT on export | **mpq FP32 / ORT FP32** "
          "| **mpq INT8 / ORT export** | mpq INT8 / mpq FP32 | export / ORT FP32 | uint8 export / ORT FP32 |" + extra +
          " FP32 / ORT per round | INT8 / export per round |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|" + ("---:|---:|---:|---:|---:|" if a.before else "") +
          "---:|---:|")
    for (name, b), v in best.items():
        more = (f" {v[6]:.3f} | {v[0] / v[6]:.2f} | {v[8]:.3f} | {v[8] / v[4]:.2f} | {v[2] / v[8]:.2f} |"
                if a.before else "")
        print(f"| {name} | {b} | {v[0]:.3f} | {v[1]:.3f} | {v[2]:.3f} | {v[3]:.3f} | {v[4]:.3f} | {v[0] / v[3]:.2f} | "
              f"{v[2] / v[4]:.2f} | {v[2] / v[0]:.2f} | {v[4] / v[3]:.2f} | {v[5] / v[3]:.2f} |" + more +
              " {:.2f}-{:.2f} | {:.2f}-{:.2f} |".format(*spread(per_round[(name, b)])))


if __name__ == "__main__":
    main()
