#!/usr/bin/env python3
"""Goldens for FP32 islands under `--scheme ort`: ONNX Runtime's values at the island inputs.

Under the ort scheme an INT8 Conv requantizes its output whatever reads it, so an FP32 layer
reading it gets DequantizeLinear of uint8 codes and ORT runs the Conv as QLinearConv
(docs/int8-chains.md, "FP32 readers"). This script exports the digits CNN with two FP32
islands whose inputs come from INT8 Conv that no INT8 op reads (`/block/conv2/Conv` reads
`/block/conv1`'s output, `/pw/pw.0/Conv` reads `/dw/dw.0`'s), runs the export in ONNX Runtime
with every FP32 island's input (the `<tensor>_KeepFloat` guard, docs/export.md) added as a
graph output, and records those values and the logits. `IslandParityTests` runs the same map
in mpq and compares: the island inputs come from integer arithmetic on both sides, so they
must be equal bit for bit.

    swift build -c release --product mpq
    /work/venv/bin/python tools/goldens/island_goldens.py --mpq .build/release/mpq --out Tests/Fixtures/islands

Writes (under --out):
  digits_island.map.json   the bare map (5 INT8 / 2 FP32 layers; parameters from the table below)
  digits_island.calib.json `mpq calibrate --scheme ort` of Tests/Fixtures/digits_calib.npz (minmax)
  digits_island.qdq.onnx   `mpq export --format qdq --calibration digits_island.calib.json`
  digits_island_ort.npz    `rows` (how many holdout rows), `logits`, one array per island
                           (`island_<n>`, ORT's input of the n-th FP32 layer in `islands`), `islands`
                           (the FP32 layer names, bytes of a comma-separated string) and `fused` (op
                           counts of ORT's optimized graph, bytes of "Op:count,..." )
Deterministic: the export is mpq's (same inputs, same bytes), ORT runs on one thread.
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np
import onnx

from ort_optimized import run_optimized

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODEL = "Tests/Fixtures/digits_cnn.onnx"
CALIB = "Tests/Fixtures/digits_calib.npz"
HOLDOUT = "Tests/Fixtures/digits_holdout.npz"
ROWS = 16
ISLANDS = ["/block/conv2/Conv", "/pw/pw.0/Conv"]
LAYERS = ["/stem/stem.0/Conv", "/block/conv1/Conv", "/block/conv2/Conv", "/dw/dw.0/Conv", "/pw/pw.0/Conv",
          "/conv3/conv3.0/Conv", "/fc/Gemm"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mpq", required=True, help="the mpq binary whose export is recorded")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    os.chdir(ROOT)
    os.makedirs(a.out, exist_ok=True)
    map_path = os.path.join(a.out, "digits_island.map.json")
    with open(map_path, "w") as f:
        json.dump({"layers": {n: ("fp32" if n in ISLANDS else "int8") for n in LAYERS}}, f, indent=2, sort_keys=True)
        f.write("\n")
    table = os.path.join(a.out, "digits_island.calib.json")
    subprocess.run([a.mpq, "calibrate", MODEL, "--data", CALIB, "--scheme", "ort", "--out", table, "--quiet"], check=True)
    qdq = os.path.join(a.out, "digits_island.qdq.onnx")
    subprocess.run([a.mpq, "export", MODEL, "--precision", map_path, "--format", "qdq", "--scheme", "ort",
                    "--calibration", table, "--out", qdq, "--quiet"], check=True)

    m = onnx.load(qdq)
    nodes = {n.name: n for n in m.graph.node}
    guards = []
    for name in ISLANDS:
        x = nodes[name].input[0]
        producer = next(n for n in m.graph.node if x in n.output)
        if producer.op_type != "Max":
            sys.exit(f"{name} reads {x} from a {producer.op_type}, not the KeepFloat guard: not an island behind a requantized tensor")
        guards.append(x)
        m.graph.output.append(onnx.helper.make_tensor_value_info(x, onnx.TensorProto.FLOAT, None))

    x = np.load(HOLDOUT)["input"][:ROWS]
    outs, counts = run_optimized(m, {"input": x})
    arrays = {"rows": np.array(ROWS, dtype=np.int64), "logits": outs[0].astype(np.float32),
              "islands": np.frombuffer(",".join(ISLANDS).encode(), dtype=np.uint8),
              "fused": np.frombuffer(",".join(f"{k}:{v}" for k, v in sorted(counts.items())).encode(), dtype=np.uint8)}
    for i, v in enumerate(outs[1:]):
        arrays[f"island_{i}"] = v.astype(np.float32)
    np.savez(os.path.join(a.out, "digits_island_ort.npz"), **arrays)
    print("ORT optimized graph:", counts)
    print("wrote", a.out)


if __name__ == "__main__":
    main()
