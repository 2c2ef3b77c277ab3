"""One way to open an ONNX Runtime CPU session for every benchmark script.

The scripts compare mpq with ORT, so ORT must run the same way in all of them: the CPU
provider, `intra_op_num_threads` = the thread count under test, one inter-op thread and
sequential execution (the graph is a chain; parallel execution would only add scheduling),
warnings off. `model` is a path, serialized bytes or an `onnx.ModelProto`.
"""
import gc
import statistics
import time

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


def time_rounds(models, feed, threads, rounds=3, warmup=2, runs=5):
    """Latency of each model in ONNX Runtime, in ms: {key: {"median_ms", "min_ms", "runs"}}.

    Each round opens one session per model in turn, warms it up, times `runs` runs and closes
    it before the next model's session opens, so only one ORT thread pool exists at a time.
    Why: with two or more intra-op threads, an idle session's workers keep spinning after its
    run (ORT's default `allow_spinning`), on the cores the next session runs on. Timed
    round-robin with all sessions open, a MobileNetV2 that runs 5.1 ms alone read 24 ms
    (s21, this 2-core host), and a graph with more nodes lost more. Rounds over the models
    (not all runs of one model, then the next) spread slow drift of the machine over all.
    """
    times = {k: [] for k in models}
    for _ in range(rounds):
        for k, m in models.items():
            s = session(m, threads)
            for _ in range(warmup):
                s.run(None, feed)
            for _ in range(runs):
                t = time.perf_counter()
                s.run(None, feed)
                times[k].append((time.perf_counter() - t) * 1e3)
            del s
            gc.collect()
    return {k: {"median_ms": statistics.median(v), "min_ms": min(v), "runs": v} for k, v in times.items()}
