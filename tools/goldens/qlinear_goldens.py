#!/usr/bin/env python3
"""Goldens for the `ort` scheme's INT8 region ops: ONNX Runtime's fused QLinear kernels.

For each case a tiny QDQ model is written (uint8 inputs -> DequantizeLinear -> op ->
QuantizeLinear -> uint8 output), ONNX Runtime's optimizer fuses it into the QLinear form
(QLinearAdd, QLinearMul, QLinearSigmoid, QLinearLeakyRelu, QLinearConcat,
QLinearAveragePool, QLinearGlobalAveragePool; MaxPool/Resize/Reshape/Transpose/Slice/Gather drop the pair
and run on uint8), and its uint8 output is recorded. `QLinearGoldenTests` runs the same
model through mpq (the float op on dequantized values, then requantized: how mpq executes a
region op) and compares the bytes.

    /work/venv/bin/python tools/goldens/qlinear_goldens.py Tests/Fixtures/qlinear

Writes <case>.onnx (the QDQ model) and <case>.npz (inputs `a`, `b`..., ORT's output `y`, and
the op types of ORT's optimized graph as `fused` (bytes of a comma-separated string)).
Deterministic: fixed seeds, one thread.
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto as T
from onnx import helper as h

from ort_optimized import run_optimized

RNG = np.random.default_rng(20261202)


def qdq_model(name, op, inputs, out_scale, out_zp, out_shape, attrs=None, extra_inits=(), extra_inputs=()):
    """inputs: [(name, shape, scale, zp)] uint8 graph inputs, dequantized then fed to `op`."""
    nodes, inits, graph_inputs, op_inputs = [], [], [], []
    for n, shape, s, z in inputs:
        graph_inputs.append(h.make_tensor_value_info(n, T.UINT8, shape))
        inits += [h.make_tensor(f"{n}_s", T.FLOAT, [], [s]), h.make_tensor(f"{n}_z", T.UINT8, [], [z])]
        nodes.append(h.make_node("DequantizeLinear", [n, f"{n}_s", f"{n}_z"], [f"{n}_f"], name=f"{n}_dq"))
        op_inputs.append(f"{n}_f")
    inits += list(extra_inits)
    nodes.append(h.make_node(op, op_inputs + list(extra_inputs), ["r"], name=name, **(attrs or {})))
    inits += [h.make_tensor("y_s", T.FLOAT, [], [out_scale]), h.make_tensor("y_z", T.UINT8, [], [out_zp])]
    nodes.append(h.make_node("QuantizeLinear", ["r", "y_s", "y_z"], ["y"], name="y_q"))
    g = h.make_graph(nodes, name, graph_inputs, [h.make_tensor_value_info("y", T.UINT8, out_shape)], inits)
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 17)], producer_name="qlinear_goldens")
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


def run(model, feeds):
    outs, counts = run_optimized(model, feeds)
    return outs[0], sorted(counts)


def i64(name, values):
    return h.make_tensor(name, T.INT64, [len(values)], values)


def u8(shape):
    return RNG.integers(0, 256, size=shape, dtype=np.uint8)


def cases():
    x4 = [2, 8, 9, 11]
    yield "add", "Add", [("a", x4, 0.031, 121), ("b", x4, 0.047, 98)], 0.055, 110, x4, {}
    yield "add_broadcast", "Add", [("a", x4, 0.02, 128), ("b", [1, 8, 1, 1], 0.01, 30)], 0.025, 100, x4, {}
    yield "add_relu_range", "Add", [("a", x4, 0.03, 0), ("b", x4, 0.05, 0)], 0.04, 0, x4, {}
    yield "mul", "Mul", [("a", x4, 0.021, 128), ("b", x4, 0.0039, 0)], 0.012, 77, x4, {}
    yield "sigmoid", "Sigmoid", [("a", x4, 0.09, 131)], 1 / 255, 0, x4, {}
    yield "leakyrelu", "LeakyRelu", [("a", x4, 0.05, 140)], 0.04, 120, x4, {"alpha": 0.1}
    yield "concat", "Concat", [("a", [2, 3, 5, 5], 0.02, 100), ("b", [2, 4, 5, 5], 0.07, 12)], 0.05, 40, [2, 7, 5, 5], {"axis": 1}
    yield "avgpool", "AveragePool", [("a", x4, 0.03, 15)], 0.028, 14, [2, 8, 5, 6], {
        "kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}
    yield "avgpool_count_pad", "AveragePool", [("a", x4, 0.03, 15)], 0.03, 15, [2, 8, 5, 6], {
        "kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1], "count_include_pad": 1}
    yield "globalavgpool", "GlobalAveragePool", [("a", x4, 0.04, 3)], 0.035, 2, [2, 8, 1, 1], {}
    yield "maxpool", "MaxPool", [("a", x4, 0.03, 20)], 0.03, 20, [2, 8, 4, 5], {"kernel_shape": [2, 2], "strides": [2, 2]}
    yield "transpose", "Transpose", [("a", x4, 0.03, 20)], 0.03, 20, [2, 9, 11, 8], {"perm": [0, 2, 3, 1]}
    # Appended after the first cases, so their inputs (one shared generator) stay the same.
    # Slice and Gather: ORT drops the DQ/Q pair (equal parameters) and runs them on uint8.
    yield "slice", "Slice", [("a", x4, 0.03, 20)], 0.03, 20, [2, 8, 6, 5], {}, (
        [i64("starts", [1, 2]), i64("ends", [7, 11]), i64("axes", [2, 3]), i64("steps", [1, 2])], ["starts", "ends", "axes", "steps"])
    yield "gather", "Gather", [("a", x4, 0.03, 20)], 0.03, 20, [2, 4, 9, 11], {"axis": 1}, ([i64("indices", [0, 3, 5, 3])], ["indices"])
    # QLinearAveragePool: a kernel over the whole unpadded input runs the global (integer) kernel;
    # ceil_mode with count_include_pad divides by the kernel size; 1-D windows.
    yield "avgpool_whole_kernel", "AveragePool", [("a", x4, 0.03, 15)], 0.028, 14, [2, 8, 1, 1], {"kernel_shape": [9, 11]}
    yield "avgpool_ceil_count_pad", "AveragePool", [("a", x4, 0.021, 133)], 0.017, 128, [2, 8, 5, 6], {
        "kernel_shape": [2, 2], "strides": [2, 2], "pads": [0, 0, 1, 1], "ceil_mode": 1, "count_include_pad": 1}
    yield "avgpool_1d", "AveragePool", [("a", [2, 8, 20], 0.05, 128)], 0.045, 120, [2, 8, 7], {
        "kernel_shape": [4], "strides": [3], "pads": [1, 2]}


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "Tests/Fixtures/qlinear"
    os.makedirs(out, exist_ok=True)
    for name, op, inputs, s, z, shape, attrs, *extra in cases():
        inits, extra_inputs = extra[0] if extra else ((), ())
        m = qdq_model(name, op, inputs, s, z, shape, attrs, extra_inits=inits, extra_inputs=extra_inputs)
        feeds = {n: u8(sh) for n, sh, _, _ in inputs}
        y, ops = run(m, feeds)
        assert list(y.shape) == shape, (name, y.shape, shape)
        onnx.save(m, os.path.join(out, f"{name}.onnx"))
        np.savez(os.path.join(out, f"{name}.npz"), y=y, fused=np.frombuffer(",".join(ops).encode(), dtype=np.uint8), **feeds)
        print(f"{name}: ORT ran {', '.join(ops)}")


if __name__ == "__main__":
    main()
