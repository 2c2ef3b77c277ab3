#!/usr/bin/env python3
"""Compare outputs mpq wrote with ONNX Runtime's, row by row.

    /opt/mpqvenv/bin/python benchmarks/models/compare_outputs.py \
        out/minilm/holdout_ort.npz out/minilm/holdout_mpq.npz [--output sentence_embedding]

Both files hold arrays named after the graph outputs, samples along dimension 0. When mpq
ran fewer rows than ORT (a prefix), only those rows are compared. Prints max |mpq - ORT|,
that over max |ORT| (the acceptance quantity, <= 1e-4), mean and min per-row cosine, and
top-1 agreement of the rows' argmax; exits 1 when the relative error is over --tolerance.
"""
import argparse
import json
import sys

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ort")
    ap.add_argument("mpq")
    ap.add_argument("--output", default=None, help="array name (default: every common name)")
    ap.add_argument("--tolerance", type=float, default=1e-4)
    args = ap.parse_args()
    ort, mpq = np.load(args.ort), np.load(args.mpq)
    names = [args.output] if args.output else sorted(set(ort.files) & set(mpq.files))
    if not names:
        sys.exit(f"no common arrays: {ort.files} vs {mpq.files}")
    worst = 0.0
    report = {}
    for k in names:
        b = mpq[k].astype(np.float64)
        a = ort[k][:len(b)].astype(np.float64)
        if a.shape != b.shape:
            sys.exit(f"{k}: shapes differ, ORT {a.shape} vs mpq {b.shape}")
        a2, b2 = a.reshape(len(a), -1), b.reshape(len(b), -1)
        diff = float(np.abs(a - b).max())
        rel = diff / max(float(np.abs(a).max()), 1e-12)
        cos = (a2 * b2).sum(1) / np.maximum(np.linalg.norm(a2, axis=1) * np.linalg.norm(b2, axis=1), 1e-30)
        report[k] = {"rows": len(b), "max_abs_diff": diff, "relative_to_max": rel,
                     "mean_cosine": float(cos.mean()), "min_cosine": float(cos.min()),
                     "argmax_agreement": float((a2.argmax(1) == b2.argmax(1)).mean())}
        worst = max(worst, rel)
    print(json.dumps(report, indent=1))
    sys.exit(0 if worst <= args.tolerance else 1)


if __name__ == "__main__":
    main()
