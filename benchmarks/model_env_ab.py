#!/usr/bin/env python3
"""Env A/B of whole models in one binary: interleaved `mpq-bench model` runs, one per
environment setting per round, and each column's minimum per (setting, batch).

    MPQ_BENCH_ONLY=fp32 /work/venv/bin/python benchmarks/model_env_ab.py \\
        resnet18_224=out/bench/resnet18/model.onnx,out/bench/resnet18/calib.npz 3 \\
        MPQ_FP32_CV_SLICED=0 MPQ_FP32_CV_SLICED=1

SPEC is mpq-bench model's NAME=MODEL,DATA; ROUNDS the rounds; each further argument one setting
(KEY=VALUE[,KEY=VALUE...]) applied on top of the current environment. The kernels' switches are
read once per process, so each run is its own process. MPQ_BENCH_ONLY, MPQ_BENCH_BATCHES and
MPQ_BENCH_WEIGHT_BITS pass through to mpq-bench. The benchmarks/README.md tables marked "env A/B
in one binary" were made this way (s22-s24).
"""
import os
import subprocess
import sys


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    spec, rounds, settings = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    bench = os.environ.get("MPQ_BENCH", ".build/release/mpq-bench")
    name = spec.split("=")[0]
    best = {}
    for _ in range(rounds):
        for setting in settings:
            env = dict(os.environ)
            for kv in setting.split(","):
                k, v = kv.split("=", 1)
                env[k] = v
            out = subprocess.run([bench, "model", spec], capture_output=True, text=True, env=env, check=True).stdout
            for line in out.splitlines():
                f = line.split()
                if f and f[0] == name and len(f) >= 8:
                    batch = int(f[1])
                    for col, v in {"fp32": f[2], "int8_inputs": f[4], "int8_ort": f[6]}.items():
                        key = (setting, batch, col)
                        best[key] = min(best.get(key, float("inf")), float(v))
    for batch in sorted({k[1] for k in best}):
        for setting in settings:
            cols = "  ".join(f"{c} {best[(setting, batch, c)]:9.3f}" for c in ("fp32", "int8_inputs", "int8_ort"))
            print(f"b{batch:<3} {setting:40s} {cols}")


if __name__ == "__main__":
    main()
