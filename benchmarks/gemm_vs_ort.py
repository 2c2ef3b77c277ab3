#!/usr/bin/env python3
"""mpq's INT8 GEMM against ONNX Runtime's MatMulInteger in one run (issue 13).

A benchmark, not a test: it asserts nothing about time. It times, interleaved in rounds so
that load drift on a shared machine hits every variant alike:

- `mpq-bench gemm --sizes S --threads T` (its `amx int32` / `vnni int32` / `avx2 int32` rows: u8 x s8 ->
  int32 with the zero-point correction, B packed once outside the timing), and its
  `f32+bias+relu` rows (fused dequantize);
- ORT's `MatMulInteger` (u8 A x s8 B -> int32, a_zero_point 128, B a constant initializer so
  MLAS prepacks it once at session creation, the same as mpq's packed B): a one-node model
  built with onnx.helper, `intra_op_num_threads` T;
- ORT's `MatMulIntegerToFloat` (com.microsoft: the same product, dequantized to float with
  per-column scales and a bias; what ORT turns DQ -> MatMul into) and `QLinearMatMul`
  (u8 output), same sizes and threads;

for sizes 1024 and 2048 (M = N = K) on 1 and 2 threads. GOPS = 2*M*N*K / time; best = the
fastest of the timed runs of all rounds, med = their median. It prints the CPU (lscpu model
name, ISA flags), the load average before and after, and markdown tables: GOPS per variant,
mpq / ORT MatMulInteger, and the 2-thread scaling (2-thread rate / (2 x 1-thread rate)).

    swift build -c release --product mpq-bench
    /work/venv/bin/python benchmarks/gemm_vs_ort.py [--bench .build/release/mpq-bench]
        [--sizes 1024,2048] [--threads 1,2] [--rounds 3] [--iters 5] [--json out/bench/gemm_vs_ort.json]
        [--weight-bits 7]

--weight-bits 7 draws B from [-64, 64] for both (ONNX Runtime's reduce_range): on a CPU without
VNNI, MLAS's AVX2 u8 x s8 kernel multiplies with vpmaddubsw, whose int16 pair sums saturate for
full-range weights (so its MatMulInteger is not exact there), while mpq's AVX2 path widens to
int16 unless every k pair fits (`pairs_fit_i16`); with 7-bit B both take vpmaddubsw and both are
exact, the like-for-like comparison on such a CPU. On VNNI/AMX CPUs the bits change nothing.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort

import ort_sessions  # benchmarks/ort_sessions.py: the ORT session every script opens
from onnx import TensorProto, helper, numpy_helper

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cpu_info():
    info = {}
    out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        k, _, v = line.partition(":")
        info[k.strip()] = v.strip()
    flags = set(info.get("Flags", "").split())
    return {"model_name": info.get("Model name", "?"), "cpus": info.get("CPU(s)", "?"),
            "threads_per_core": info.get("Thread(s) per core", "?"), "l2": info.get("L2 cache", "?"),
            "flags": [f for f in ("avx2", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "amx_tile", "amx_int8")
                      if f in flags],
            "onnxruntime": ort.__version__}


# ------------------------------------------------------------------ ORT one-node models

def matmul_integer_model(n, b):
    """u8 A [n,n] x s8 B [n,n] (constant) -> int32, a_zero_point 128 (mpq-bench's value)."""
    g = helper.make_graph(
        [helper.make_node("MatMulInteger", ["A", "B", "a_zp"], ["Y"])], "mmi",
        [helper.make_tensor_value_info("A", TensorProto.UINT8, [n, n])],
        [helper.make_tensor_value_info("Y", TensorProto.INT32, [n, n])],
        [numpy_helper.from_array(b, "B"), numpy_helper.from_array(np.array(128, np.uint8), "a_zp")])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])


def matmul_integer_to_float_model(n, b):
    """com.microsoft MatMulIntegerToFloat: same product, * a_scale * b_scale[col] + bias[col]."""
    inits = [numpy_helper.from_array(b, "B"), numpy_helper.from_array(np.array([0.02], np.float32), "a_scale"),
             numpy_helper.from_array(np.full(n, 0.01, np.float32), "b_scale"),
             numpy_helper.from_array(np.array([128], np.uint8), "a_zp"),
             numpy_helper.from_array(np.zeros(n, np.int8), "b_zp"),
             numpy_helper.from_array(np.full(n, 0.5, np.float32), "bias")]
    node = helper.make_node("MatMulIntegerToFloat", ["A", "B", "a_scale", "b_scale", "a_zp", "b_zp", "bias"], ["Y"],
                            domain="com.microsoft")
    g = helper.make_graph([node], "mmif", [helper.make_tensor_value_info("A", TensorProto.UINT8, [n, n])],
                          [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [n, n])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("com.microsoft", 1)])


def qlinear_matmul_model(n, b):
    """QLinearMatMul: u8 A x s8 B (per-column scales) -> u8 Y."""
    inits = [numpy_helper.from_array(np.array(0.02, np.float32), "a_scale"),
             numpy_helper.from_array(np.array(128, np.uint8), "a_zp"),
             numpy_helper.from_array(b, "B"),
             numpy_helper.from_array(np.full(n, 0.01, np.float32), "b_scale"),
             numpy_helper.from_array(np.zeros(n, np.int8), "b_zp"),
             numpy_helper.from_array(np.array(64.0, np.float32), "y_scale"),
             numpy_helper.from_array(np.array(128, np.uint8), "y_zp")]
    node = helper.make_node("QLinearMatMul", ["A", "a_scale", "a_zp", "B", "b_scale", "b_zp", "y_scale", "y_zp"], ["Y"])
    g = helper.make_graph([node], "qlmm", [helper.make_tensor_value_info("A", TensorProto.UINT8, [n, n])],
                          [helper.make_tensor_value_info("Y", TensorProto.UINT8, [n, n])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)])


ORT_VARIANTS = {"ORT MatMulInteger": matmul_integer_model,
                "ORT MatMulIntegerToFloat": matmul_integer_to_float_model,
                "ORT QLinearMatMul": qlinear_matmul_model}


def ort_session(model, threads):
    return ort_sessions.session(model, threads)


def time_ort(sess, a, warmup, iters):
    feed = {"A": a}
    for _ in range(warmup):
        sess.run(None, feed)
    out = []
    for _ in range(iters):
        t = time.perf_counter()
        sess.run(None, feed)
        out.append(time.perf_counter() - t)
    return out


# ------------------------------------------------------------------ mpq-bench gemm

PEAK = re.compile(r"^VNNI peak \((zmm|ymm) vpdpbusd, (\d+) threads?\): ([\d.]+) GOPS best")
ROW = re.compile(r"^\| (\d+) \| (\d+) \| [^|]+\| ([a-z0-9]+ [a-z0-9+]+) \| ([\d.]+) / ([\d.]+) \|")


def run_mpq(bench, size, threads, warmup, iters, bits=8):
    """mpq-bench gemm rows for one size and thread count: {path label: (best GOPS, median GOPS)}."""
    cmd = [bench, "gemm", "--sizes", str(size), "--threads", str(threads), "--warmup", str(warmup),
           "--iters", str(iters), "--reference-max", "0"] + (["--weight-bits", "7"] if bits == 7 else [])
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rows = {}
    for line in out.splitlines():
        p = PEAK.match(line)
        if p:  # the instruction-peak probe: what the cores gave at that moment, no memory traffic
            key = f"vnni peak {p.group(2)}t"
            rows[key] = (max(rows.get(key, (0, 0))[0], float(p.group(3))),) * 2
        m = ROW.match(line)
        if m and int(m.group(1)) == size and int(m.group(2)) == threads:
            rows["mpq " + m.group(3)] = (float(m.group(4)), float(m.group(5)))
    if not rows:
        raise SystemExit("no rows parsed from:\n" + out)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", default=os.path.join(ROOT, ".build/release/mpq-bench"))
    ap.add_argument("--baseline", default=None,
                    help="another mpq-bench (e.g. main's release build) timed in the same rounds, rows 'before ...'")
    ap.add_argument("--sizes", default="1024,2048")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (every variant once per round)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--iters", type=int, default=5, help="timed runs per variant per round")
    ap.add_argument("--json", default=None, help="also write the raw results here")
    ap.add_argument("--weight-bits", type=int, choices=(7, 8), default=8,
                    help="7: B in [-64, 64] for mpq and ORT alike (see above)")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    threads = [int(t) for t in args.threads.split(",")]
    cpu = cpu_info()
    load0 = os.getloadavg()
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    print(f"CPU: {cpu}\nload average at start: {load0}", flush=True)

    rng = np.random.default_rng(0)
    lo, hi = (-64, 65) if args.weight_bits == 7 else (-128, 128)
    data = {n: (rng.integers(0, 256, (n, n), dtype=np.uint8), rng.integers(lo, hi, (n, n), dtype=np.int8))
            for n in sizes}
    sessions = {(v, n, t): ort_session(make(n, data[n][1]), t)
                for v, make in ORT_VARIANTS.items() for n in sizes for t in threads}
    # mpq-bench reports GOPS (best, median) per call; ORT gives times. Keep GOPS lists.
    gops, peaks = {}, {}
    for r in range(args.rounds):
        for n in sizes:
            ops = 2.0 * n * n * n
            for t in threads:
                for prefix, bench in [("", args.bench)] + ([("before ", args.baseline)] if args.baseline else []):
                    for label, (best, med) in run_mpq(bench, n, t, args.warmup, args.iters, args.weight_bits).items():
                        if label.startswith("vnni peak"):
                            peaks.setdefault(label, []).append(best)
                            continue
                        if prefix and not label.endswith("int32"):
                            continue  # the baseline's int32 rows are enough to compare the split
                        gops.setdefault((prefix + label, n, t), []).extend([best, med])
                for v in ORT_VARIANTS:
                    times = time_ort(sessions[(v, n, t)], data[n][0], args.warmup, args.iters)
                    gops.setdefault((v, n, t), []).extend(ops / s * 1e-9 for s in times)
                print(f"round {r + 1}/{args.rounds} size {n} threads {t} done (load {os.getloadavg()[0]:.2f})",
                      flush=True)
    load1 = os.getloadavg()

    def best(k):
        return max(gops[k]) if k in gops else float("nan")

    def med(k):
        return statistics.median(gops[k]) if k in gops else float("nan")

    labels = sorted({k[0] for k in gops}, key=lambda s: (s.startswith("ORT"), s))
    print(f"\n- CPU: {cpu['model_name']}, {cpu['cpus']} CPUs ({cpu['threads_per_core']} thread per core), L2 {cpu['l2']}; "
          f"flags: {' '.join(cpu['flags'])}; onnxruntime {cpu['onnxruntime']}")
    print(f"- load average: {' '.join(f'{v:.2f}' for v in load0)} at start ({started}), "
          f"{' '.join(f'{v:.2f}' for v in load1)} at the end")
    print(f"- command: `{' '.join(sys.argv)}`; {args.rounds} interleaved rounds x {args.iters} timed runs; "
          f"B: {'7-bit [-64, 64]' if args.weight_bits == 7 else '8-bit [-128, 127]'}")
    print("\nGOPS best / median (mpq-bench's rows: best and median of each call, pooled over rounds)\n")
    print("| size | threads | " + " | ".join(labels) + " |")
    print("|---:|---:|" + "---:|" * len(labels))
    for n in sizes:
        for t in threads:
            print(f"| {n} | {t} | " + " | ".join(f"{best((l, n, t)):.1f} / {med((l, n, t)):.1f}" for l in labels) + " |")
    # The fastest engine mpq-bench timed: AMX tiles where the CPU has them (s8-amx), else VNNI.
    mpq_int32 = next((l for l in labels if l.startswith("mpq") and l.endswith("int32") and "amx" in l), None) or \
        next((l for l in labels if l.startswith("mpq") and l.endswith("int32") and "vnni" in l), None) or \
        next(l for l in labels if l.startswith("mpq") and l.endswith("int32"))
    mpq_f32 = mpq_int32.replace("int32", "f32+bias+relu")
    print(f"\nRatios (best, median): {mpq_int32} / ORT MatMulInteger, {mpq_f32} / ORT MatMulIntegerToFloat; "
          "2-thread scaling = 2-thread GOPS / (2 x 1-thread GOPS) of the same variant\n")
    before = next((l for l in ("before " + mpq_int32, "before mpq vnni int32") if l in labels), None)
    print("| size | threads | mpq int32 / ORT MatMulInteger | mpq f32 / ORT MatMulIntegerToFloat |"
          + (" before int32 / ORT MatMulInteger |" if before else ""))
    print("|---:|---:|---:|---:|" + ("---:|" if before else ""))
    for n in sizes:
        for t in threads:
            a = (mpq_int32, n, t)
            b = ("ORT MatMulInteger", n, t)
            c = (mpq_f32, n, t)
            d = ("ORT MatMulIntegerToFloat", n, t)
            extra = f" {best((before, n, t)) / best(b):.2f}x, {med((before, n, t)) / med(b):.2f}x |" if before else ""
            print(f"| {n} | {t} | {best(a) / best(b):.2f}x, {med(a) / med(b):.2f}x | {best(c) / best(d):.2f}x, {med(c) / med(d):.2f}x |"
                  + extra)
    if 1 in threads and 2 in threads:
        print("\n| size | " + " | ".join(f"{l} 2-thread scaling" for l in labels) + " |")
        print("|---:|" + "---:|" * len(labels))
        for n in sizes:
            cells = [f"{100 * best((l, n, 2)) / (2 * best((l, n, 1))):.0f}% / {100 * med((l, n, 2)) / (2 * med((l, n, 1))):.0f}%"
                     for l in labels]
            print(f"| {n} | " + " | ".join(cells) + " |")
    if peaks:
        print("\nVNNI instruction-peak probe (mpq-bench, no memory traffic), best per call: " +
              "; ".join(f"{k}: {' '.join(f'{v:.0f}' for v in vs)}" for k, vs in sorted(peaks.items())))
        if "vnni peak 1t" in peaks and "vnni peak 2t" in peaks:
            print(f"2-thread probe / (2 x 1-thread probe), best: "
                  f"{100 * max(peaks['vnni peak 2t']) / (2 * max(peaks['vnni peak 1t'])):.0f}% "
                  "(below 100%: the second core was not free for the whole run)")
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        json.dump({"cpu": cpu, "weight_bits": args.weight_bits, "load_start": load0, "load_end": load1, "started_utc": started,
                   "gops": {f"{k[0]}|{k[1]}|{k[2]}": v for k, v in gops.items()},
                   "vnni_peak_probe": peaks}, open(args.json, "w"), indent=1)


if __name__ == "__main__":
    main()
