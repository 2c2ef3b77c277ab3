"""One way to open an ONNX Runtime CPU session for every benchmark script.

The scripts compare mpq with ORT, so ORT must run the same way in all of them: the CPU
provider, `intra_op_num_threads` = the thread count under test, one inter-op thread and
sequential execution (the graph is a chain; parallel execution would only add scheduling),
warnings off. `model` is a path, serialized bytes or an `onnx.ModelProto`.
"""
import onnxruntime as ort


def session(model, threads, optimized=None, level=None, profile_prefix=None):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3
    if level is not None:
        so.graph_optimization_level = level
    if optimized:
        so.optimized_model_filepath = optimized  # ORT writes the graph it runs (fusions visible)
    if profile_prefix:
        so.enable_profiling = True
        so.profile_file_prefix = profile_prefix
    if hasattr(model, "SerializeToString"):
        model = model.SerializeToString()
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
