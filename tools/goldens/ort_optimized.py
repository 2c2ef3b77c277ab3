"""Run a model in ONNX Runtime the way every golden generator here does (one thread, the
default CPU optimizations) and report what the optimizer made of it: the fused op types
are part of what a golden records (a QDQ golden is only worth its name if ORT really ran
the QLinear op)."""
import os
import tempfile

import onnx
import onnxruntime as ort


def run_optimized(model, feeds):
    """`model` (a ModelProto): ORT's outputs on `feeds` and {op_type: count} of the graph
    ORT's optimizer produced (SessionOptions.optimized_model_filepath)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "m.onnx")
        onnx.save(model, path)
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.log_severity_level = 3
        so.optimized_model_filepath = os.path.join(tmp, "opt.onnx")
        outs = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"]).run(None, feeds)
        counts = {}
        for n in onnx.load(so.optimized_model_filepath).graph.node:
            counts[n.op_type] = counts.get(n.op_type, 0) + 1
    return outs, counts
