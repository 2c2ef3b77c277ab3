#!/usr/bin/env python3
"""Check the exported conformance cases load back and ONNX Runtime reproduces them.

    /opt/mpqvenv/bin/python tools/conformance/verify.py Tests/Fixtures/conformance

For each <case>/model.onnx: onnx.checker.check_model(full_check=True), then run
ONNX Runtime on test_data_set_*/input_*.pb and compare with output_*.pb using
the ONNX runner tolerance (rtol/atol from manifest.json). Reports the cases ORT
cannot load or run (e.g. types it lacks) separately; they are not failures of
the export.
"""
from __future__ import annotations

import glob
import json
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper


def load_pb(path: str):
    t = onnx.TensorProto()
    with open(path, "rb") as f:
        t.ParseFromString(f.read())
    return numpy_helper.to_array(t)


def main(root: str) -> int:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.log_severity_level = 4
    bad, ok, ort_fail, check_fail = [], 0, [], []
    for sub in ("node", "light"):
        d = os.path.join(root, sub)
        if not os.path.isdir(d):
            continue
        manifest = json.load(open(os.path.join(d, "manifest.json")))
        for name in sorted(manifest):
            case = os.path.join(d, name)
            model = onnx.load(os.path.join(case, "model.onnx"))
            try:
                onnx.checker.check_model(model, full_check=True)
            except Exception as e:  # noqa: BLE001
                check_fail.append((name, str(e).splitlines()[0][:120]))
            try:
                sess = ort.InferenceSession(model.SerializeToString(), so,
                                            providers=["CPUExecutionProvider"])
            except Exception as e:  # noqa: BLE001
                ort_fail.append((name, str(e).splitlines()[0][:120]))
                continue
            inits = {i.name for i in model.graph.initializer}
            in_names = [vi.name for vi in model.graph.input if vi.name not in inits]
            rtol, atol = manifest[name]["rtol"], manifest[name]["atol"]
            for ds in sorted(glob.glob(os.path.join(case, "test_data_set_*"))):
                try:
                    n_in = len(glob.glob(os.path.join(ds, "input_*.pb")))
                    feeds = {in_names[i]: load_pb(os.path.join(ds, f"input_{i}.pb"))
                             for i in range(n_in)}
                    outs = sess.run(None, feeds)
                except Exception as e:  # noqa: BLE001
                    ort_fail.append((name, str(e).splitlines()[0][:120]))
                    break
                good = True
                for i, o in enumerate(outs):
                    ref = load_pb(os.path.join(ds, f"output_{i}.pb"))
                    try:
                        if ref.dtype.kind in "fc":
                            np.testing.assert_allclose(np.asarray(o).astype(ref.dtype), ref,
                                                       rtol=rtol, atol=atol)
                        else:
                            np.testing.assert_array_equal(o, ref)
                    except AssertionError as e:
                        bad.append((name, i, str(e).strip().splitlines()[2:4]))
                        good = False
                if good:
                    ok += 1
    print(f"data sets matching ORT: {ok}")
    print(f"checker failures: {len(check_fail)}")
    for x in check_fail:
        print("  ", *x)
    print(f"ORT cannot load/run: {len(ort_fail)}")
    for x in ort_fail:
        print("  ", *x)
    print(f"ORT differs from recorded output: {len(bad)}")
    for x in bad:
        print("  ", *x)
    return 1 if check_fail else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "Tests/Fixtures/conformance"))
