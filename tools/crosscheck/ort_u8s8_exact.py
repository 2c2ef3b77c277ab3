#!/usr/bin/env python3
"""Whether ONNX Runtime's u8 x s8 (or, with --weights uint8, u8 x u8) integer GEMM is exact here.

mpq computes QLinearConv / MatMulInteger exactly (int32 sums of u8 x s8 products). ORT's MLAS
does too on CPUs with AVX-512 VNNI, AVX-VNNI or AMX, but on AVX2-only CPUs its U8S8 kernels use
vpmaddubsw, whose pairs of products are summed in saturating int16: 255 * 127 * 2 = 64770 does
not fit, so such pairs clip at 32767 (ORT's quantization docs name the effect and advise
reduce_range). There ORT's score of a QDQ export is not the exact arithmetic mpq predicts from
(tools/crosscheck/run.sh then reports those comparisons without enforcing them).

For u8 x u8 MLAS widens both operands to int16 and sums with vpmaddwd, exact on every CPU:
that is why `mpq export --weight-type uint8` (the int8 codes + 128, zero point 128) gives ORT
scores equal to mpq's there, and run.sh exports that way where the int8 probe fails.

Probe: MatMulInteger of 255s by weights 127 (int8, or uint8 255 with zero point 128) over
K = 64, whose exact sums (2,072,640) saturate under vpmaddubsw (1,048,544). Prints one line;
exit 0 when ORT is exact, 1 when it is not.
"""
import argparse
import sys

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", choices=["int8", "uint8"], default="int8")
    args = p.parse_args()
    k = 64
    unsigned = args.weights == "uint8"
    wtype, wdtype, zp = (TensorProto.UINT8, np.uint8, 128) if unsigned else (TensorProto.INT8, np.int8, 0)
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["A", "B", "", "B_zero_point"], ["Y"])], "probe",
        [helper.make_tensor_value_info("A", TensorProto.UINT8, [4, k]),
         helper.make_tensor_value_info("B", wtype, [k, 16])],
        [helper.make_tensor_value_info("Y", TensorProto.INT32, [4, 16])],
        initializer=[helper.make_tensor("B_zero_point", wtype, [], [zp])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    a = np.full((4, k), 255, np.uint8)
    b = np.full((k, 16), 127 + zp, wdtype)
    got = session.run(None, {"A": a, "B": b})[0]
    want = a.astype(np.int64) @ (b.astype(np.int64) - zp)
    exact = bool(np.array_equal(got.astype(np.int64), want))
    kind = "u8 x u8 (zero point 128)" if unsigned else "u8 x s8"
    print(f"ORT {ort.__version__} {kind} MatMulInteger: {'exact' if exact else 'saturates'} "
          f"(255 x 127 over K = {k}: ORT {int(got[0, 0])}, exact {int(want[0, 0])})")
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main())
