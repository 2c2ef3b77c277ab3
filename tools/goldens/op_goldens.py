"""Golden generator for mpq's op tests: runs single-node models in ONNX Runtime and prints
Swift `OpGolden` literals.

    /opt/mpqvenv/bin/python tools/goldens/op_goldens.py tools/goldens/pool_cases.py [out.txt]
"""
# Golden generator for mpq's op tests: runs single-node models in ONNX Runtime and
# prints Swift `OpGolden` literals. X-like inputs use the formula shared with the tests:
# v[i] = ((i*37) % 23) / 4 - 2.
import sys, numpy as np, onnx, onnxruntime as ort
from onnx import helper as h, TensorProto as T

def gen(shape):
    n = int(np.prod(shape)) if shape else 1
    return (((np.arange(n) * 37) % 23) / 4 - 2).astype(np.float32).reshape(shape)

def fmt_f(v):
    if np.isnan(v): return ".nan"
    r = repr(float(np.float32(v)))
    return r

def swift_attr(v):
    if isinstance(v, bool): v = int(v)
    if isinstance(v, int): return f".int({v})"
    if isinstance(v, float): return f".float({fmt_f(v)})"
    if isinstance(v, str): return f'.string("{v}")'
    if isinstance(v, list) and all(isinstance(e, int) for e in v): return f".ints({v})"
    if isinstance(v, list): return ".floats([" + ", ".join(fmt_f(e) for e in v) + "])"
    raise ValueError(v)

def case(name, op, opset, inputs, attrs, nout=1):
    """inputs: list of ('x', shape) | ('f', list) | ('i', list) | None"""
    feeds, vis, names, sw = {}, [], [], []
    for k, inp in enumerate(inputs):
        if inp is None: names.append(""); sw.append("nil"); continue
        nm = f"i{k}"; names.append(nm)
        kind, val = inp
        if kind == 'x':
            arr = gen(val); sw.append(f".x({list(val)})")
        elif kind == 'f':
            arr = np.array(val, np.float32); sw.append(".f([" + ", ".join(fmt_f(e) for e in val) + "])")
        elif kind == 'i':
            arr = np.array(val, np.int64); sw.append(f".i({list(val)})")
        feeds[nm] = arr
        vis.append(h.make_tensor_value_info(nm, T.INT64 if kind == 'i' else T.FLOAT, arr.shape))
    outs = [h.make_tensor_value_info(f"o{k}", T.FLOAT, None) for k in range(nout)]
    node = h.make_node(op, names, [f"o{k}" for k in range(nout)], **attrs)
    m = h.make_model(h.make_graph([node], "g", vis, outs), opset_imports=[h.make_opsetid("", opset)])
    m.ir_version = 8
    s = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    res = s.run(None, feeds)
    y = res[0]
    at = "[" + ", ".join(f'"{k}": {swift_attr(v)}' for k, v in attrs.items()) + "]" if attrs else "[:]"
    vals = ", ".join(fmt_f(v) for v in y.flatten())
    print(f'        OpGolden("{name}", "{op}", opset: {opset}, inputs: [{", ".join(sw)}], attributes: {at},')
    print(f'                 shape: {list(y.shape)}, values: [{vals}]),')

sys.stdout = open(sys.argv[2], "w") if len(sys.argv) > 2 else sys.stdout
exec(open(sys.argv[1]).read())
