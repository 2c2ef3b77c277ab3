#!/usr/bin/env python3
"""Cross-check an `mpq export --format qdq` model in ONNX Runtime.

Given the original model, the precision map `mpq search` wrote, the exported QDQ model
and the holdout split, this script

1. runs `onnx.checker.check_model(full_check=True)` on the QDQ model and checks that its
   `mpq.map_sha256` metadata is the map file's SHA-256;
2. scores the QDQ model in ONNX Runtime (default session options) on the holdout with the
   map's metric (top1, top5, agreement or cosine; the last two against the original model
   run in ORT) and compares it with mpq's measured holdout score `result.holdout.mixed`;
   fails when they differ by more than --tolerance points (default 0.1);
3. with --ort-exclude CONFIG --calibration C.npz: runs ORT's own `quantize_static` with the
   options `mpq export --format ort-exclude` wrote (the map's FP32 layers in
   `nodes_to_exclude`), calibrated on C.npz, scores that model the same way and fails when
   it is more than --ort-exclude-tolerance points (default 0.5) from mpq's score.

Prints one JSON object (also written to --json-out) and exits 0 when every check passes,
1 when a check fails, 2 on bad input. Needs onnx, onnxruntime and numpy.
"""
import argparse
import hashlib
import json
import os
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort


def fail_input(msg):
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(2)


def load_npz(path, session):
    """Feeds for every model input (a single-input model also accepts `input`) and labels."""
    if not os.path.exists(path):
        fail_input(f"file not found: {path}")
    data = np.load(path)
    feeds = {}
    inputs = session.get_inputs()
    for i in inputs:
        if i.name in data.files:
            feeds[i.name] = data[i.name]
        elif len(inputs) == 1 and "input" in data.files:
            feeds[i.name] = data["input"]
        else:
            fail_input(f"input '{i.name}' is missing from {path} (arrays there: {', '.join(sorted(data.files))})")
    labels = data["labels"] if "labels" in data.files else None
    return feeds, labels


def run(model_path_or_bytes, feeds):
    """First output as [rows, width], ORT default session options, CPU."""
    sess = ort.InferenceSession(model_path_or_bytes, providers=["CPUExecutionProvider"])
    out = sess.run(None, feeds)[0]
    return out.reshape(out.shape[0], -1).astype(np.float32)


def run_unblocked(model_path, feeds):
    """First output with ORT_ENABLE_EXTENDED: every QDQ fusion, but no NCHWc layout, so an FP32
    Conv runs MLAS's plain float Conv instead of its NCHWc kernels (another summation order)."""
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    out = ort.InferenceSession(model_path, so, providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    return out.reshape(out.shape[0], -1).astype(np.float32)


def ort_self_comparison(model_path, feeds, full):
    """ORT against itself: its default run (`full`) against ORT_ENABLE_EXTENDED. With FP32 islands
    the two differ where an island's float sums, ordered differently, meet a requantization at a
    rounding tie: the floor any other runtime's float Conv can be held to."""
    return compare_outputs(run_unblocked(model_path, feeds), full)


FLOAT_LAYER_OPS = ["Conv", "FusedConv", "NchwcConv", "Gemm", "FusedGemm", "MatMul", "FusedMatMul"]
INTEGER_LAYER_OPS = ["QLinearConv", "QGemm", "QLinearMatMul", "MatMulIntegerToFloat", "MatMulInteger",
                     "ConvInteger", "DynamicQuantizeMatMul"]


def optimized_op_counts(model_path):
    """Op types of the graph ORT's CPU optimizer produces (default session options)."""
    with tempfile.TemporaryDirectory() as tmp:
        so = ort.SessionOptions()
        so.log_severity_level = 3
        so.optimized_model_filepath = os.path.join(tmp, "optimized.onnx")
        ort.InferenceSession(model_path, so, providers=["CPUExecutionProvider"])
        counts = {}
        for n in onnx.load(so.optimized_model_filepath).graph.node:
            counts[n.op_type] = counts.get(n.op_type, 0) + 1
        return dict(sorted(counts.items()))


def compare_outputs(mine, theirs):
    """Element by element: a difference above 1e-5 of the output's magnitude is one a
    rounding tie (one quantization step somewhere upstream) produced."""
    d = np.abs(mine - theirs)
    tol = 1e-5 * max(float(np.max(np.abs(theirs))), 1e-30)
    differing = int(np.sum(d > tol))
    return {"elements": int(d.size), "max_abs_diff": float(d.max()), "differing": differing,
            "share": differing / max(d.size, 1), "tolerance": tol}


def argmax_first(rows):
    return np.argmax(rows, axis=1)          # first index on ties, as mpq's Outputs.argmax


def greedy_ctc(rows, classes, blank=0):
    """Greedy CTC decoding (docs/metrics.md): arg-max per time step, repeats collapsed,
    blanks dropped; rows are [N, T * classes] flattened from [N, T, classes]."""
    out = []
    for best in rows.reshape(rows.shape[0], -1, classes).argmax(axis=-1):
        seq, prev = [], None
        for c in best:
            if c != prev and c != blank:
                seq.append(int(c))
            prev = c
        out.append(seq)
    return out


def score(metric, outputs, labels, reference, classes=None):
    """mpq's metrics (Sources/Search/Metric.swift), in points. `classes`: the last
    dimension of the output (the CTC metrics decode per time step)."""
    if metric == "ctc-exact":
        want = [[int(v) for v in row if v != -100] for row in labels]     # the default --ignore-index
        return 100.0 * float(np.mean([d == w for d, w in zip(greedy_ctc(outputs, classes), want)]))
    if metric == "ctc-agreement":
        return 100.0 * float(np.mean([a == b for a, b in zip(greedy_ctc(outputs, classes),
                                                             greedy_ctc(reference, classes))]))
    if metric == "top1":
        return 100.0 * float(np.mean(argmax_first(outputs) == labels))
    if metric == "top5":
        # mpq: the 5 largest, ties to the lower index (a stable sort of -x).
        top = np.argsort(-outputs, axis=1, kind="stable")[:, :5]
        return 100.0 * float(np.mean([labels[i] in top[i] for i in range(len(labels))]))
    if metric == "agreement":
        return 100.0 * float(np.mean(argmax_first(outputs) == argmax_first(reference)))
    if metric == "cosine":
        a = outputs.astype(np.float64)
        b = reference.astype(np.float64)
        na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
        cos = np.where((na == 0) & (nb == 0), 1.0,
                       np.where((na == 0) | (nb == 0), 0.0, np.sum(a * b, axis=1) / np.maximum(na * nb, 1e-300)))
        return 100.0 * float(np.mean(cos))
    fail_input(f"unknown metric '{metric}'")


class NpzReader:
    """quantize_static's CalibrationDataReader over an .npz, one sample per batch (as the
    fixtures' reference QDQ models were calibrated)."""

    def __init__(self, path, session):
        feeds, _ = load_npz(path, session)
        n = len(next(iter(feeds.values())))
        self.items = iter([{k: v[i:i + 1] for k, v in feeds.items()} for i in range(n)])

    def get_next(self):
        return next(self.items, None)

    def rewind(self):
        pass


def ort_exclude(model, config_path, calibration, holdout_feeds):
    from onnxruntime.quantization import (CalibrationMethod, QuantFormat, QuantType, quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with open(config_path) as f:
        cfg = json.load(f)
    with tempfile.TemporaryDirectory() as tmp:
        # ORT's documented pre-processing first: it folds BatchNormalization into the Conv
        # weights as mpq does. Without it quantize_static quantizes the unfolded weights and
        # each Conv's pre-BN output, another model (the ResNet fixture with 7-bit weights:
        # one holdout sample of 96 apart from mpq; the same with it).
        # Below opset 13 the pre-processed model's per-channel bias DequantizeLinear would be
        # invalid (quantize_static upgrades only the original's opset): such models go as they are.
        opset = max((o.version for o in onnx.load(model).opset_import if o.domain in ("", "ai.onnx")), default=0)
        pre = os.path.join(tmp, "pre.onnx")
        if opset >= 13:
            quant_pre_process(model, pre, skip_symbolic_shape=True)
        else:
            pre = model
        sess = ort.InferenceSession(pre, providers=["CPUExecutionProvider"])
        out = os.path.join(tmp, "ort_static.onnx")
        quantize_static(
            pre, out, NpzReader(calibration, sess),
            quant_format=QuantFormat[cfg.get("quant_format", "QDQ")],
            per_channel=cfg.get("per_channel", True),
            reduce_range=cfg.get("reduce_range", False),
            activation_type=QuantType[cfg.get("activation_type", "QUInt8")],
            weight_type=QuantType[cfg.get("weight_type", "QInt8")],
            nodes_to_exclude=cfg.get("nodes_to_exclude", []),
            op_types_to_quantize=cfg.get("op_types_to_quantize") or None,
            calibrate_method=CalibrationMethod[cfg.get("calibrate_method", "MinMax")],
            extra_options=cfg.get("extra_options", {}))
        q = onnx.load(out)
        ops = sorted({n.op_type for n in q.graph.node})
        return run(out, holdout_feeds), ops


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="the original ONNX model")
    p.add_argument("--map", required=True, help="the precision map mpq search wrote")
    p.add_argument("--qdq", required=True, help="the model mpq export --format qdq wrote")
    p.add_argument("--holdout", required=True, help="the holdout split (.npz) the map was validated on")
    p.add_argument("--tolerance", type=float, default=0.1, help="points allowed between ORT's and mpq's score")
    p.add_argument("--ort-exclude", help="the options mpq export --format ort-exclude wrote")
    p.add_argument("--calibration", help="calibration split (.npz) for --ort-exclude")
    p.add_argument("--ort-exclude-tolerance", type=float, default=0.5)
    p.add_argument("--mpq-outputs", help="mpq eval --save-outputs of the map on the holdout: compared element by element")
    p.add_argument("--max-differing", type=float, default=0.001,
                   help="ort scheme: largest share of output elements allowed to differ from ORT (default 0.1%%)")
    p.add_argument("--predicted", type=float,
                   help="mpq's score of the map on the holdout (`mpq eval --precision MAP`), for a map that holds "
                        "no search result (island_map.py); default: the map's result.holdout.mixed")
    p.add_argument("--json-out", help="also write the result JSON here")
    a = p.parse_args()

    for path in [a.model, a.map, a.qdq, a.holdout]:
        if not os.path.exists(path):
            fail_input(f"file not found: {path}")
    if a.ort_exclude and not a.calibration:
        fail_input("--ort-exclude needs --calibration C.npz")
    with open(a.map, "rb") as f:
        map_bytes = f.read()
    try:
        doc = json.loads(map_bytes)
        metric = doc["metric"]
        predicted = a.predicted if a.predicted is not None else float(doc["result"]["holdout"]["mixed"])
    except (ValueError, KeyError) as e:
        fail_input(f"{a.map} is not a precision map written by mpq search (needs metric and result.holdout.mixed, "
                   f"or --predicted): {e}")

    result = {"model": a.model, "map": a.map, "qdq": a.qdq, "metric": metric,
              "int8_layers": [l["name"] for l in doc.get("layers", []) if l.get("precision") == "int8"],
              "fp32_layers": [l["name"] for l in doc.get("layers", []) if l.get("precision") == "fp32"]}
    ok = True

    try:
        onnx.checker.check_model(a.qdq, full_check=True)
        result["checker"] = "ok"
    except Exception as e:  # noqa: BLE001 - report whatever the checker raises
        result["checker"] = f"failed: {e}"
        ok = False
    qm = onnx.load(a.qdq)
    meta = {p.key: p.value for p in qm.metadata_props}
    sha = hashlib.sha256(map_bytes).hexdigest()
    result["map_sha256_matches"] = meta.get("mpq.map_sha256") == sha
    ok &= result["map_sha256_matches"]
    result["qdq_ops"] = {op: sum(1 for n in qm.graph.node if n.op_type == op)
                         for op in ["QuantizeLinear", "DequantizeLinear"]}
    result["opset"] = next((o.version for o in qm.opset_import if o.domain in ("", "ai.onnx")), None)

    fp32_sess = ort.InferenceSession(a.model, providers=["CPUExecutionProvider"])
    feeds, labels = load_npz(a.holdout, fp32_sess)
    classes = fp32_sess.get_outputs()[0].shape[-1]
    if metric in ("top1", "top5", "ctc-exact") and labels is None:
        fail_input(f"metric {metric} needs labels: {a.holdout} has no 'labels' array")
    reference = run(a.model, feeds)
    qdq_out = run(a.qdq, feeds)
    ort_score = score(metric, qdq_out, labels, reference, classes)
    result.update({"samples": int(qdq_out.shape[0]),
                   "ort_fp32": round(score(metric, reference, labels, reference, classes), 4),
                   "ort_qdq": round(ort_score, 4), "mpq_mixed": predicted,
                   "diff": round(ort_score - predicted, 4) + 0.0, "tolerance": a.tolerance})
    result["qdq_within_tolerance"] = abs(ort_score - predicted) <= a.tolerance + 1e-9
    ok &= result["qdq_within_tolerance"]

    # What ORT's optimizer made of the export: under the ort scheme an all-INT8 map must
    # leave no float Conv/Gemm/MatMul (every INT8 layer fused into its QLinear form).
    result["scheme"] = doc.get("scheme", "inputs")
    result["ort_optimized_ops"] = optimized_op_counts(a.qdq)
    float_layers = sum(result["ort_optimized_ops"].get(op, 0) for op in FLOAT_LAYER_OPS)
    int_layers = sum(result["ort_optimized_ops"].get(op, 0) for op in INTEGER_LAYER_OPS)
    result["ort_float_layer_ops"], result["ort_integer_layer_ops"] = float_layers, int_layers
    if result["scheme"] == "ort" and result["int8_layers"]:
        result["fused_as_expected"] = int_layers >= 1 and (float_layers == 0 or bool(result["fp32_layers"]))
        ok &= result["fused_as_expected"]

    if a.mpq_outputs:
        mine = np.load(a.mpq_outputs)
        m = mine[mine.files[0]].reshape(qdq_out.shape[0], -1).astype(np.float32)
        if m.shape != qdq_out.shape:
            fail_input(f"{a.mpq_outputs} holds {m.shape}, ORT's output is {qdq_out.shape}")
        result["elementwise"] = compare_outputs(m, qdq_out)
        if result["fp32_layers"]:
            result["ort_self"] = ort_self_comparison(a.qdq, feeds, qdq_out)
        if result["scheme"] == "ort":
            result["elementwise_ok"] = result["elementwise"]["share"] <= a.max_differing
            ok &= result["elementwise_ok"]

    if a.ort_exclude:
        out, ops = ort_exclude(a.model, a.ort_exclude, a.calibration, feeds)
        s = score(metric, out, labels, reference, classes)
        result.update({"ort_exclude": round(s, 4), "ort_exclude_diff": round(s - predicted, 4) + 0.0,
                       "ort_exclude_tolerance": a.ort_exclude_tolerance, "ort_exclude_ops": ops})
        result["ort_exclude_within_tolerance"] = abs(s - predicted) <= a.ort_exclude_tolerance + 1e-9
        ok &= result["ort_exclude_within_tolerance"]

    result["ok"] = bool(ok)
    text = json.dumps(result, indent=1, sort_keys=True)
    print(text)
    if a.json_out:
        with open(a.json_out, "w") as f:
            f.write(text + "\n")
    print(f"{os.path.basename(a.qdq)}: checker {result['checker']}; {metric} ORT {ort_score:.4f} vs mpq {predicted:.4f} "
          f"(diff {round(ort_score - predicted, 4) + 0.0:+.4f}, tolerance {a.tolerance})"
          + (f"; ort-exclude quantize_static {result['ort_exclude']:.4f} (diff {result['ort_exclude_diff']:+.4f}, "
             f"tolerance {a.ort_exclude_tolerance})" if a.ort_exclude else "")
          + ("  OK" if ok else "  FAIL"), file=sys.stderr)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
