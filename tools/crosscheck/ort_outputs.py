#!/usr/bin/env python3
"""Compare mpq's outputs with ONNX Runtime's on an exported QDQ model, element by element.

For models whose metric ort_crosscheck.py does not score (detectors: mAP needs the
post-processing of docs/detection-format.md), the raw outputs are compared instead: when
they agree, every score computed from them agrees. Also counts what ORT's optimizer made of
the export (QLinear* ops vs float Conv/Gemm/MatMul).

    ort_outputs.py --qdq M.qdq.onnx --data holdout.npz --mpq-outputs out.npz \
        [--max-differing 0.001] [--all-int8] [--integer-layers N] [--json-out r.json]

`out.npz` is `mpq eval --metric agreement --save-outputs` (the raw first output, one row
per sample). Exit 0 when at most --max-differing of the elements differ by more than 1e-5
of the output's magnitude (and, with --all-int8, ORT left no float Conv/Gemm/MatMul; with
--integer-layers N, ORT's graph holds exactly N integer layer ops), 1 otherwise, 2 on bad input.
`ort_self` in the JSON compares ORT with itself (ORT_ENABLE_EXTENDED, no NCHWc float Conv): what
FP32 islands alone make differ, for reference.
"""
import argparse
import json
import os
import sys

import numpy as np
import onnxruntime as ort

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ort_crosscheck import (FLOAT_LAYER_OPS, INTEGER_LAYER_OPS, compare_outputs, load_npz,  # noqa: E402
                            optimized_op_counts, ort_self_comparison)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--qdq", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--mpq-outputs", required=True)
    p.add_argument("--max-differing", type=float, default=0.001)
    p.add_argument("--all-int8", action="store_true", help="require no float Conv/Gemm/MatMul in ORT's graph")
    p.add_argument("--integer-layers", type=int, help="require exactly this many integer layer ops (QLinearConv, "
                   "QGemm, ...) in ORT's graph: one per INT8 layer of the map")
    p.add_argument("--json-out")
    a = p.parse_args()
    for path in [a.qdq, a.data, a.mpq_outputs]:
        if not os.path.exists(path):
            print(f"error: file not found: {path}", file=sys.stderr)
            sys.exit(2)
    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(a.qdq, so, providers=["CPUExecutionProvider"])
    feeds, _ = load_npz(a.data, sess)
    y = sess.run(None, feeds)[0]
    y = y.reshape(y.shape[0], -1).astype(np.float32)
    mine = np.load(a.mpq_outputs)
    m = mine[mine.files[0]].reshape(y.shape[0], -1).astype(np.float32)
    if m.shape != y.shape:
        print(f"error: {a.mpq_outputs} holds {m.shape}, ORT's output is {y.shape}", file=sys.stderr)
        sys.exit(2)
    e = compare_outputs(m, y)
    ops = optimized_op_counts(a.qdq)
    floats = sum(ops.get(o, 0) for o in FLOAT_LAYER_OPS)
    ints = sum(ops.get(o, 0) for o in INTEGER_LAYER_OPS)
    ok = e["share"] <= a.max_differing and (not a.all_int8 or (floats == 0 and ints > 0))
    ok &= a.integer_layers is None or ints == a.integer_layers
    r = {"qdq": a.qdq, "elements": e["elements"], "differing": e["differing"], "max_abs_diff": e["max_abs_diff"],
         "tolerance": e["tolerance"], "ort_optimized_ops": ops, "ort_float_layer_ops": floats,
         "ort_integer_layer_ops": ints, "ort_self": ort_self_comparison(a.qdq, feeds, y), "ok": bool(ok)}
    text = json.dumps(r, indent=1, sort_keys=True)
    print(text)
    if a.json_out:
        with open(a.json_out, "w") as f:
            f.write(text + "\n")
    print(f"{os.path.basename(a.qdq)}: {e['differing']} of {e['elements']} output elements differ from ORT "
          f"(max {e['max_abs_diff']:.3g}); ORT ops {ints} integer / {floats} float" + ("  OK" if ok else "  FAIL"),
          file=sys.stderr)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
