#!/usr/bin/env python3
"""Export ONNX's own backend conformance cases in ONNX's runner layout.

Command used for the committed fixtures (from the repository root):

    /opt/mpqvenv/bin/python tools/conformance/export_node_tests.py \
        --out Tests/Fixtures/conformance --ops default --max-case-bytes 204800

Writes
  <out>/node/<case>/model.onnx
  <out>/node/<case>/test_data_set_0/input_0.pb ... output_0.pb
  <out>/node/manifest.json         (per case: op, all op types, opset, rtol, atol, dtypes)
  <out>/light/<model>/model.onnx    (onnx/backend/test/data/light/light_<model>.onnx)
  <out>/light/<model>/test_data_set_0/input_0.pb   (the runner's seeded dummy input)
  <out>/light/<model>/test_data_set_0/output_0.pb  (the recorded light_<model>_output_0.pb)
  <out>/light/manifest.json

Node cases come from `onnx.backend.test.case.node.collect_testcases(None)` (the
same generator `backend-test-tools generate-data` uses), so they match the
`onnx/backend/test/data/node` directory of an ONNX source checkout.

Case selection: a non-expanded case belongs to the op type of its single node.
A function-expanded case (`*_expanded`, `*_expanded_verNN`) belongs to the op of
its base case and is kept only when every op type in its graph (subgraphs
included) is also selected. Cases whose opset imports use a domain other than
the default ONNX domain are skipped, and so are cases larger than
--max-case-bytes (model + data).

The light models' dummy input reproduces
`onnx.backend.test.runner.Runner.generate_dummy_data(x, seed=0, random=False)`:
symbolic dims become 1 and the values are `arange(n).reshape(shape) / n` as
float32. Its expected output is the `light_<model>_output_0.pb` shipped in the
onnx wheel (the runner copies that file verbatim). Light models are compared by
the ONNX runner with rtol=1e-3, atol=1e-7.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shutil
import sys
import warnings
from collections import defaultdict

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

DEFAULT_OPS = (
    "Abs Add AveragePool BatchNormalization Cast Clip Concat Constant ConstantOfShape "
    "Conv ConvTranspose Div Dropout Equal Erf Exp Expand Flatten Gather Gemm "
    "GlobalAveragePool GlobalMaxPool Greater HardSigmoid HardSwish Identity LeakyRelu "
    "Less Log LogSoftmax MatMul Max MaxPool Min Mul Neg Pad Pow PRelu Reciprocal "
    "ReduceMax ReduceMean ReduceSum Relu Reshape Resize Shape Sigmoid Slice Softmax "
    "Split Sqrt Squeeze Sub Sum Tanh Transpose Unsqueeze Where LayerNormalization "
    "Upsample Tile Range Not And Or Sign Floor Ceil Softplus Elu Selu Gelu ArgMax "
    "ArgMin ReduceMin ReduceProd ReduceL2 ReduceSumSquare ReduceLogSumExp "
    "LRN "  # not in the original list, but 3 of the light models use it
    "InstanceNormalization Mean CumSum NonZero Size Mod "
    "SpaceToDepth DepthToSpace"  # s39: exported with --ops SpaceToDepth,DepthToSpace and merged
).split()

EXPANDED_RE = re.compile(r"_expanded(_ver\d+)?$")


def graph_op_types(graph: onnx.GraphProto) -> set[str]:
    ops: set[str] = set()
    for n in graph.node:
        ops.add(n.op_type)
        for a in n.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                ops |= graph_op_types(a.g)
            elif a.type == onnx.AttributeProto.GRAPHS:
                for g in a.graphs:
                    ops |= graph_op_types(g)
    return ops


def _serialize(value, vi: onnx.ValueInfoProto) -> bytes:
    t = vi.type
    if t.HasField("map_type"):
        return numpy_helper.from_dict(value, vi.name).SerializeToString()
    if t.HasField("sequence_type"):
        return numpy_helper.from_list(value, vi.name).SerializeToString()
    if t.HasField("optional_type"):
        return numpy_helper.from_optional(value, vi.name).SerializeToString()
    if isinstance(value, TensorProto):
        return value.SerializeToString()
    return numpy_helper.from_array(np.asarray(value), vi.name).SerializeToString()


def _type_str(vi: onnx.ValueInfoProto) -> str:
    t = vi.type
    if t.HasField("tensor_type"):
        return TensorProto.DataType.Name(t.tensor_type.elem_type).lower()
    return t.WhichOneof("value")


def export_node_cases(out_dir: str, ops: set[str] | None, max_bytes: int) -> dict:
    from onnx.backend.test.case import node as node_cases

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cases = node_cases.collect_testcases(None)
    by_name = {c.name: c for c in cases}

    if os.path.exists(out_dir):
        shutil.rmtree(out_dir)
    os.makedirs(out_dir)

    manifest = {}
    per_op: dict[str, int] = defaultdict(int)
    skipped_size = []
    total = 0
    for case in sorted(cases, key=lambda c: c.name):
        model = case.model
        if model is None or not case.data_sets:
            continue
        if any(o.domain not in ("", "ai.onnx") for o in model.opset_import):
            continue
        all_ops = graph_op_types(model.graph)
        expanded = bool(EXPANDED_RE.search(case.name))
        if expanded:
            base = by_name.get(EXPANDED_RE.sub("", case.name))
            if base is None or base.model is None:
                continue
            primary = base.model.graph.node[0].op_type
        else:
            if len(model.graph.node) != 1:
                continue
            primary = model.graph.node[0].op_type
        if ops is not None:
            if primary not in ops:
                continue
            if expanded and not all_ops <= ops:
                continue

        blobs = {"model.onnx": model.SerializeToString()}
        for i, (inputs, outputs) in enumerate(case.data_sets):
            for j, v in enumerate(inputs):
                blobs[f"test_data_set_{i}/input_{j}.pb"] = _serialize(v, model.graph.input[j])
            for j, v in enumerate(outputs):
                blobs[f"test_data_set_{i}/output_{j}.pb"] = _serialize(v, model.graph.output[j])
        size = sum(len(b) for b in blobs.values())
        if size > max_bytes:
            skipped_size.append((case.name, size))
            continue
        case_dir = os.path.join(out_dir, case.name)
        for rel, b in blobs.items():
            p = os.path.join(case_dir, rel)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, "wb") as f:
                f.write(b)
        total += size
        per_op[primary + (" (expanded)" if expanded else "")] += 1
        opset = {o.domain or "ai.onnx": o.version for o in model.opset_import}
        manifest[case.name] = {
            "op": primary,
            "expanded": expanded,
            "op_types": sorted(all_ops),
            "opset": opset.get("ai.onnx"),
            "rtol": case.rtol,
            "atol": case.atol,
            "data_sets": len(case.data_sets),
            "inputs": [[vi.name, _type_str(vi)] for vi in model.graph.input],
            "outputs": [[vi.name, _type_str(vi)] for vi in model.graph.output],
            "bytes": size,
        }
    with open(os.path.join(out_dir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")
    return {"cases": len(manifest), "bytes": total, "per_op": dict(per_op),
            "skipped_size": skipped_size}


def light_dummy_input(vi: onnx.ValueInfoProto) -> np.ndarray:
    """Exactly onnx.backend.test.runner.Runner.generate_dummy_data(random=False)."""
    assert vi.type.tensor_type.elem_type == TensorProto.FLOAT
    shape = tuple(d.dim_value if d.HasField("dim_value") else 1
                  for d in vi.type.tensor_type.shape.dim)
    n = np.prod(shape)
    return (np.arange(n).reshape(shape) / n).astype(np.float32)


def export_light(out_dir: str) -> dict:
    light_src = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light")
    if os.path.exists(out_dir):
        shutil.rmtree(out_dir)
    os.makedirs(out_dir)
    manifest = {}
    total = 0
    for model_path in sorted(glob.glob(os.path.join(light_src, "light_*.onnx"))):
        name = os.path.basename(model_path)[len("light_"):-len(".onnx")]
        model = onnx.load(model_path)
        case_dir = os.path.join(out_dir, name)
        ds = os.path.join(case_dir, "test_data_set_0")
        os.makedirs(ds)
        shutil.copy(model_path, os.path.join(case_dir, "model.onnx"))
        inits = {i.name for i in model.graph.initializer}
        real_inputs = [vi for vi in model.graph.input if vi.name not in inits]
        shapes = []
        for k, vi in enumerate(real_inputs):
            x = light_dummy_input(vi)
            shapes.append(list(x.shape))
            # the runner writes from_array(value) without a name
            with open(os.path.join(ds, f"input_{k}.pb"), "wb") as f:
                f.write(numpy_helper.from_array(x).SerializeToString())
        outs = []
        for k in range(len(model.graph.output)):
            src = os.path.splitext(model_path)[0] + f"_output_{k}.pb"
            shutil.copy(src, os.path.join(ds, f"output_{k}.pb"))
            t = onnx.TensorProto()
            with open(src, "rb") as f:
                t.ParseFromString(f.read())
            outs.append(list(t.dims))
        size = sum(os.path.getsize(p) for p in glob.glob(os.path.join(case_dir, "**"), recursive=True)
                   if os.path.isfile(p))
        total += size
        manifest[name] = {
            "source": f"onnx/backend/test/data/light/light_{name}.onnx",
            "opset": {o.domain or "ai.onnx": o.version for o in model.opset_import}.get("ai.onnx"),
            "op_types": sorted(graph_op_types(model.graph)),
            "inputs": [vi.name for vi in real_inputs],
            "input_shapes": shapes,
            "output_shapes": outs,
            "rtol": 1e-3,
            "atol": 1e-7,
            "bytes": size,
        }
    with open(os.path.join(out_dir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")
    return {"models": len(manifest), "bytes": total}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="Tests/Fixtures/conformance")
    ap.add_argument("--ops", default="default",
                    help="comma/space separated op types, 'default' (mpq's list) or 'all'")
    ap.add_argument("--max-case-bytes", type=int, default=200 * 1024)
    ap.add_argument("--no-light", action="store_true")
    ap.add_argument("--no-node", action="store_true")
    args = ap.parse_args()

    if args.ops == "all":
        ops = None
    elif args.ops == "default":
        ops = set(DEFAULT_OPS)
    else:
        ops = set(re.split(r"[,\s]+", args.ops.strip())) - {""}

    if not args.no_node:
        r = export_node_cases(os.path.join(args.out, "node"), ops, args.max_case_bytes)
        print(f"node cases (onnx {onnx.__version__}):")
        for op in sorted(r["per_op"]):
            print(f"  {op:32s} {r['per_op'][op]}")
        if ops is not None:
            missing = sorted(o for o in ops if o not in r["per_op"])
            if missing:
                print(f"  ops with no case: {' '.join(missing)}")
        for name, size in r["skipped_size"]:
            print(f"  skipped (size {size} B > {args.max_case_bytes}): {name}")
        print(f"node total: {r['cases']} cases, {r['bytes']} bytes ({r['bytes'] / 1024:.1f} KiB)")
    if not args.no_light:
        r = export_light(os.path.join(args.out, "light"))
        print(f"light total: {r['models']} models, {r['bytes']} bytes ({r['bytes'] / 1024:.1f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
