#!/usr/bin/env python3
"""Writes Tests/Fixtures/fuzz/: the smallest files reproducing each distinct failure that
tools/fuzz/fuzz.py found (docs/fuzzing.md), read by Tests/CLITests/FuzzRegressionTests.swift.
Deterministic: same onnx and numpy, same bytes.

    python3 tools/fuzz/make_regressions.py [OUT_DIR]

Mutants of the 19 KB tabular_mlp (Gemm/Relu/Tanh/Sigmoid, input 'features' [N,30], output
'logits' [N,2]; data: Tests/Fixtures/breast_cancer_holdout.npz), except where a Conv or pool
is needed: there a 1 KB `tiny_conv` (input [N,1,4,4] -> Conv 3x3 pad 1 -> MaxPool 2x2 ->
Flatten -> Gemm -> logits [N,2]) with its data `tiny_conv.npz` (4 samples). The external-data
cases live in ext/ beside a copy of tabular_mlp's weights, tabular_mlp.weights.

Each file's name is the fuzzer's mutation kind; the header comment of each function says
what the fuzzer saw (signal, or exit 0 on a certainly invalid model).
"""
import os
import shutil
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "Tests", "Fixtures", "fuzz")
TAB = os.path.join(ROOT, "Tests", "Fixtures", "tabular_mlp.onnx")


def tab():
    return onnx.load(TAB)


def save(m, name):
    onnx.save(m, os.path.join(OUT, name))


def node(m, name):
    return next(n for n in m.graph.node if n.name == name)


def init(m, name):
    return next(t for t in m.graph.initializer if t.name == name)


def set_attr(n, attr):
    for a in list(n.attribute):
        if a.name == attr.name:
            n.attribute.remove(a)
    n.attribute.append(attr)


def inject(m, nodes, inits, name):
    """`nodes` read 'features' and write `name`, which replaces 'features' for the first Gemm."""
    node(m, "/0/Gemm").input[0] = name
    m.graph.initializer.extend(inits)
    for n in reversed(nodes):
        m.graph.node.insert(0, n)
    return m


def i64(name, v):
    return numpy_helper.from_array(np.array(v, dtype=np.int64), name)


def f32(name, v):
    return numpy_helper.from_array(np.array(v, dtype=np.float32), name)


def tiny_conv():
    rng = np.random.default_rng(10)
    w = f32("conv.weight", rng.standard_normal((2, 1, 3, 3)).round(2))
    fc = f32("fc.weight", rng.standard_normal((2, 8)).round(2))
    fb = f32("fc.bias", [0.1, -0.1])
    nodes = [
        helper.make_node("Conv", ["input", "conv.weight"], ["c"], name="conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                         strides=[1, 1], dilations=[1, 1], group=1),
        helper.make_node("MaxPool", ["c"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "fc.weight", "fc.bias"], ["logits"], name="fc", transB=1),
    ]
    g = helper.make_graph(nodes, "tiny_conv", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 4, 4])],
                          [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 2])], [w, fc, fb])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], producer_name="make_regressions")
    m.ir_version = 8
    return m


def main():
    os.makedirs(OUT, exist_ok=True)
    os.makedirs(os.path.join(OUT, "ext"), exist_ok=True)

    # The base tiny model and its data (valid: exit 0).
    save(tiny_conv(), "tiny_conv.onnx")
    rng = np.random.default_rng(11)
    np.savez(os.path.join(OUT, "tiny_conv.npz"), input=rng.random((4, 1, 4, 4), dtype=np.float32).round(2),
             labels=np.array([0, 1, 1, 0], dtype=np.int64))

    # init_dims_huge (signal 4, integer overflow): dims [2^63-1, 2^63-1] on 0.weight.
    m = tab(); t = init(m, "0.weight"); del t.dims[:]; t.dims.extend([2**63 - 1, 2**63 - 1]); save(m, "init_dims_huge.onnx")
    # init_nonfinite (exit 0): +inf in 3.weight.
    m = tab(); t = init(m, "3.weight"); a = numpy_helper.to_array(t).copy(); a[0, 0] = np.inf
    t.CopyFrom(numpy_helper.from_array(a, "3.weight")); save(m, "init_nonfinite.onnx")
    # attr_type (exit 0): /0/Gemm alpha given as ints [2]: the op used its default, 1.0.
    m = tab(); set_attr(node(m, "/0/Gemm"), helper.make_attribute("alpha", [2])); save(m, "attr_type_alpha_ints.onnx")
    # attr_type (exit 0): MaxPool ceil_mode given as strings.
    m = tiny_conv(); set_attr(node(m, "pool"), helper.make_attribute("ceil_mode", [b"1", b"2"])); save(m, "attr_type_ceil_mode_strings.onnx")
    # attr_unknown (exit 0): an attribute no ONNX schema defines, on Tanh.
    m = tab(); node(m, "/4/Tanh").attribute.append(helper.make_attribute("fuzz_attr", 1)); save(m, "attr_unknown.onnx")
    # node_domain_other (exit 0): /1/Relu in the com.microsoft domain.
    m = tab(); node(m, "/1/Relu").domain = "com.microsoft"; save(m, "node_domain_com_microsoft.onnx")
    # opset_missing, opset_v999, opset_other_domain_only (exit 0).
    m = tab(); del m.opset_import[:]; save(m, "opset_missing.onnx")
    m = tab(); m.opset_import[0].version = 999; save(m, "opset_v999.onnx")
    m = tab(); del m.opset_import[:]; m.opset_import.append(helper.make_opsetid("com.example.fuzz", 1)); save(m, "opset_other_domain_only.onnx")
    # dtype_graph_output (exit 0): 'logits' declared int32 (the Gemm writes float).
    m = tab(); m.graph.output[0].type.tensor_type.elem_type = TensorProto.INT32; save(m, "dtype_graph_output.onnx")
    # dtype_graph_input (exit 0): 'features' declared with element type 99 (no such type).
    m = tab(); m.graph.input[0].type.tensor_type.elem_type = 99; save(m, "dtype_graph_input.onnx")
    # Conv attributes (signal 4 / out of memory): dilations 2^62, pads 2^31 and 2^62.
    m = tiny_conv(); set_attr(node(m, "conv"), helper.make_attribute("dilations", [2**62, 1])); save(m, "conv_dilations_huge.onnx")
    m = tiny_conv(); set_attr(node(m, "conv"), helper.make_attribute("pads", [1, 2**31, 1, 1])); save(m, "conv_pads_2e31.onnx")
    m = tiny_conv(); set_attr(node(m, "conv"), helper.make_attribute("pads", [0, 0, 2**62, 0])); save(m, "conv_pads_2e62.onnx")
    # Shape ops with absurd constants, between 'features' and the first Gemm (signals 4, 6, 11).
    save(inject(tab(), [helper.make_node("ConstantOfShape", ["cos.shape"], ["cos"], name="fuzz_constantofshape"),
                        helper.make_node("Add", ["features", "cos"], ["x"], name="fuzz_add")],
                [i64("cos.shape", [2**31, 2**31])], "x"), "inject_constantofshape.onnx")
    save(inject(tab(), [helper.make_node("Expand", ["features", "fuzz.shape"], ["x"], name="fuzz_expand")],
                [i64("fuzz.shape", [2**32, 1, 1])], "x"), "inject_expand.onnx")
    save(inject(tab(), [helper.make_node("Pad", ["features", "fuzz.pads"], ["x"], name="fuzz_pad")],
                [i64("fuzz.pads", [0, 2**31, 0, 0])], "x"), "inject_pad.onnx")
    save(inject(tab(), [helper.make_node("Reshape", ["features", "fuzz.shape"], ["x"], name="fuzz_reshape")],
                [i64("fuzz.shape", [2**62, 2**62])], "x"), "inject_reshape.onnx")
    save(inject(tab(), [helper.make_node("Resize", ["features", "fuzz.roi", "fuzz.scales"], ["x"], name="fuzz_resize", mode="nearest")],
                [f32("fuzz.roi", []), f32("fuzz.scales", [1.0, 1e30])], "x"), "inject_resize.onnx")
    save(inject(tab(), [helper.make_node("Tile", ["features", "fuzz.repeats"], ["x"], name="fuzz_tile")],
                [i64("fuzz.repeats", [1, 2**40])], "x"), "inject_tile.onnx")
    # dtype_initializer (exit 0, seed 2028 case 9881 on the text encoder): an int32 tensor added to
    # a float one (ONNX's Add has one type T); mpq converted the integers silently.
    save(inject(tab(), [helper.make_node("Add", ["features", "fuzz.offset"], ["x"], name="fuzz_add")],
                [numpy_helper.from_array(np.arange(30, dtype=np.int32), "fuzz.offset")], "x"), "add_int32_to_float.onnx")
    # inject_range_absurd (signal 4): Range 0..3e38 (and 0..inf) as an extra graph output.
    for tag, limit in (("3e38", 3e38), ("inf", np.inf)):
        m = tab()
        m.graph.initializer.extend([f32("r.start", 0.0), f32("r.limit", limit), f32("r.delta", 1.0)])
        m.graph.node.insert(0, helper.make_node("Range", ["r.start", "r.limit", "r.delta"], ["range"], name="fuzz_range"))
        m.graph.output.append(helper.make_tensor_value_info("range", TensorProto.FLOAT, None))
        save(m, f"inject_range_{tag}.onnx")

    # External data: tabular_mlp with every initializer in ext/tabular_mlp.weights.
    ext = os.path.join(OUT, "ext")
    m = tab()
    onnx.save(m, os.path.join(ext, "tabular_mlp_ext.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
              location="tabular_mlp.weights", size_threshold=0)
    base = onnx.load(os.path.join(ext, "tabular_mlp_ext.onnx"), load_external_data=False)

    def ext_mutant(name, tensor, key, value):
        m = onnx.ModelProto(); m.CopyFrom(base)
        t = init(m, tensor)
        for e in t.external_data:
            if e.key == key:
                e.value = value
        onnx.save(m, os.path.join(ext, name))

    # ext_offset_float (exit 0: read as 0): offset '1.5'; and the other offsets the fuzzer tried.
    ext_mutant("ext_offset_float.onnx", "3.bias", "offset", "1.5")
    ext_mutant("ext_offset_minus1.onnx", "3.bias", "offset", "-1")
    ext_mutant("ext_offset_u64max.onnx", "3.bias", "offset", str(2**64 - 1))
    ext_mutant("ext_location_dot.onnx", "3.bias", "location", ".")
    ext_mutant("ext_location_outside.onnx", "3.bias", "location", "../tabular_mlp.onnx")
    os.remove(os.path.join(ext, "tabular_mlp_ext.onnx"))
    onnx.save(base, os.path.join(ext, "tabular_mlp_ext.onnx"))
    for f in sorted(os.listdir(OUT)) + ["ext/" + f for f in sorted(os.listdir(ext))]:
        p = os.path.join(OUT, f)
        if os.path.isfile(p):
            assert os.path.getsize(p) < 100_000, f
            print(f"{os.path.getsize(p):7d}  {f}")


if __name__ == "__main__":
    main()
