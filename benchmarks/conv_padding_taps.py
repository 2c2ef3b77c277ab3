#!/usr/bin/env python3
"""Share of a model's Conv multiply-adds that land on zero padding.

mpq's FP32 Conv kernels multiply every tap, padding included (fmaf(w, +0, acc): the padded
reference's bits for every input, docs/fp32-blocked-layout.md); ONNX Runtime's NCHWc kernels
clip the tap range at the borders and skip them. On 7x7 and 14x14 planes with 3x3 kernels
that is 18% and 9% of a layer's taps, so per-layer GFLOP/s counted on all taps can exceed the
core's FMA peak on ORT's side (benchmarks/README.md "s34"). This prints, per model, the
Conv MACs per image (all taps) and the share on padding, from the shapes one ORT run of the
first sample gives.

    /work/venv/bin/python benchmarks/conv_padding_taps.py MODEL.onnx,DATA.npz [...]
"""
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper


def weight_shapes(m):
    """Initializer dims by name, also under Identity and Constant outputs (PyTorch exports)."""
    dims = {i.name: list(i.dims) for i in m.graph.initializer}
    for n in m.graph.node:
        if n.op_type == "Identity" and n.input[0] in dims:
            dims[n.output[0]] = dims[n.input[0]]
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value":
                    dims[n.output[0]] = list(a.t.dims)
    return dims


def valid_taps(out, k, stride, pad, dilation, size):
    """Taps of one axis, summed over its outputs, that read inside the input."""
    return sum(0 <= o * stride - pad + t * dilation < size for o in range(out) for t in range(k))


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    for spec in sys.argv[1:]:
        path, data = spec.split(",")
        m = onnx.load(path)
        dims = weight_shapes(m)
        convs = [n for n in m.graph.node if n.op_type == "Conv"]
        have = {o.name for o in m.graph.output}
        for n in convs:
            for v in (n.input[0], n.output[0]):
                if v not in have:
                    m.graph.output.append(helper.make_tensor_value_info(v, TensorProto.FLOAT, None))
                    have.add(v)
        s = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
        d = np.load(data)
        outs = dict(zip([o.name for o in s.get_outputs()], s.run(None, {i.name: d[i.name][:1] for i in s.get_inputs()})))
        total = valid = 0
        for n in convs:
            a = {x.name: x for x in n.attribute}
            w, x, y = dims[n.input[1]], outs[n.input[0]].shape, outs[n.output[0]].shape
            if len(w) != 4:
                continue
            st = list(a["strides"].ints) if "strides" in a else [1, 1]
            p = list(a["pads"].ints) if "pads" in a else [0, 0, 0, 0]
            dl = list(a["dilations"].ints) if "dilations" in a else [1, 1]
            per_tap = w[0] * w[1]
            total += y[2] * y[3] * w[2] * w[3] * per_tap
            valid += (valid_taps(y[2], w[2], st[0], p[0], dl[0], x[2]) * valid_taps(y[3], w[3], st[1], p[1], dl[1], x[3])
                      * per_tap)
        print(f"{path}: Conv MACs per image {total / 1e6:.1f}M, on padding {100 * (1 - valid / total):.1f}%")


if __name__ == "__main__":
    main()
