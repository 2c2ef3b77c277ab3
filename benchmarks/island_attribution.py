#!/usr/bin/env python3
"""Where mpq's FP32 islands differ from ONNX Runtime's (issue 14, FP32-island element
differences; benchmarks/README.md, section s8-split).

For every FP32 island layer of a `--scheme ort` map (a Conv followed by SiLU, as in the
detector), records the island's values in both runtimes and splits the difference into its
causes:

- `conv`: the island Conv's float output (before its activation): mpq's FP32 Conv against
  ORT's (MLAS NCHWc by default, or MLAS's plain Conv under ORT_ENABLE_EXTENDED);
- `act`: the island's output after the SiLU; and the SiLU alone: ORT's SiLU (`Sigmoid` +
  `Mul`, which ORT fuses into QuickGelu, MlasComputeLogistic) run on *mpq's* Conv output,
  against mpq's SiLU of the same values;
- `codes`: what reaches the next INT8 op: both sides' island outputs quantized with the
  export's QuantizeLinear parameters (round half to even, as both runtimes do), and how
  many codes differ because of the Conv's summation order alone and the SiLU alone.

mpq's intermediate values come from `mpq eval --save-outputs` on a copy of the model whose
first graph output is the tensor in question (an FP32 island tensor is never requantized, so
the plan is the same). ORT runs mpq's QDQ export with those tensors added as graph outputs.

    /work/venv/bin/python benchmarks/island_attribution.py --mpq .build/release/mpq \\
        --model Tests/Fixtures/detection/shapes_det.onnx --calib Tests/Fixtures/detection/shapes_det_calib.npz \\
        --data Tests/Fixtures/detection/shapes_det_holdout.npz --map ISLAND.map.json --work /tmp/attr \\
        --island /down1/down1.0/Conv:/down1/down1.2/Mul_output_0 ... [--rows 64]

`--island CONV:OUT[:QUANTIZED]`: the island Conv, the island's output tensor (after its
activation), and the tensor whose QuantizeLinear takes it back to INT8 (default OUT; a
Resize/Concat in between only moves values). `--activation relu` for islands whose Conv
carries a (folded BatchNormalization and a) Relu: exact in both runtimes, so only the island
output is compared (the Conv's own output is not a tensor of the export).
"""
import argparse
import json
import os
import subprocess

import numpy as np
import onnx
import onnxruntime as ort

import ort_sessions  # benchmarks/ort_sessions.py: the ORT session every script opens
from onnx import helper


def ort_run(model, feeds, level=None, outputs=None):
    s = ort_sessions.session(model, 1, level=level)
    return dict(zip([o.name for o in s.get_outputs()], s.run(outputs, feeds)))


def with_outputs(model, names):
    m = onnx.ModelProto()
    m.CopyFrom(model)
    have = {o.name for o in m.graph.output}
    for n in names:
        if n not in have:
            m.graph.output.append(helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None))
    return m


def first_output(model, name):
    """The model with `name` as its first graph output (the one `mpq eval --save-outputs` writes)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    rest = [o for o in m.graph.output if o.name != name]
    del m.graph.output[:]
    m.graph.output.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    m.graph.output.extend(rest)
    return m


def silu_ort(x):
    """ORT's SiLU of `x`: Sigmoid then Mul, as the export's float island runs it (fused into
    QuickGelu by ORT's optimizer)."""
    g = helper.make_graph([helper.make_node("Sigmoid", ["x"], ["s"]), helper.make_node("Mul", ["x", "s"], ["y"])], "silu",
                          [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, None)],
                          [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    return ort_run(m, {"x": x})["y"]


def quantize(x, scale, zp):
    return np.clip(np.rint(x.astype(np.float32) / np.float32(scale)) + zp, 0, 255).astype(np.int32)


def bits_differ(a, b):
    return int(np.sum(a.astype(np.float32).view(np.uint32) != b.astype(np.float32).view(np.uint32)))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mpq", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--calib", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--map", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--island", action="append", required=True)
    p.add_argument("--rows", type=int, default=0, help="first rows of --data only (0: all)")
    p.add_argument("--activation", choices=["silu", "relu"], default="silu")
    p.add_argument("--json-out")
    a = p.parse_args()
    os.makedirs(a.work, exist_ok=True)
    model = onnx.load(a.model)
    data = dict(np.load(a.data))
    if a.rows:
        data = {k: v[:a.rows] for k, v in data.items()}
    rows_path = os.path.join(a.work, "rows.npz")
    np.savez(rows_path, **data)
    feeds = {i.name: data[i.name] for i in model.graph.input if i.name in data}

    qdq_path = os.path.join(a.work, "island.qdq.onnx")
    subprocess.run([a.mpq, "export", a.model, "--precision", a.map, "--format", "qdq", "--out", qdq_path, "--quiet"], check=True)
    qdq = onnx.load(qdq_path)
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in qdq.graph.initializer}

    islands = []
    for spec in a.island:
        parts = spec.split(":")
        conv, out = parts[0], parts[1]
        quantized = parts[2] if len(parts) > 2 else out
        conv_out = next((n.output[0] for n in model.graph.node if n.name == conv), None)
        q = next((n for n in qdq.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == quantized), None)
        if q is None:
            raise SystemExit(f"no QuantizeLinear reads {quantized} in the export")
        islands.append((conv, conv_out, out, float(inits[q.input[1]]), int(inits[q.input[2]])))

    def mpq_values(tensor):
        path = os.path.join(a.work, "m_%s.onnx" % tensor.strip("/").replace("/", "_"))
        onnx.save(first_output(model, tensor), path)
        saved = os.path.join(a.work, "m_%s.npz" % tensor.strip("/").replace("/", "_"))
        subprocess.run([a.mpq, "eval", path, "--data", rows_path, "--precision", a.map, "--calibration", a.calib,
                        "--metric", "agreement", "--save-outputs", saved], check=True, stdout=subprocess.DEVNULL)
        z = np.load(saved)
        return z[tensor] if tensor in z.files else z[z.files[0]]

    silu = a.activation == "silu"
    names = [t for i in islands for t in ((i[1], i[2]) if silu else (i[2],))]
    exported = with_outputs(qdq, names)
    ort_full = ort_run(exported, feeds)
    ort_ext = ort_run(exported, feeds, level=ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED)

    report = []
    for conv, conv_out, out, scale, zp in islands:
        m_act = mpq_values(out).reshape(ort_full[out].shape)
        o_act, e_act = ort_full[out], ort_ext[out]
        cm, co, ce = quantize(m_act, scale, zp), quantize(o_act, scale, zp), quantize(e_act, scale, zp)
        r = {
            "island": conv, "elements": int(m_act.size), "scale": scale, "zero_point": zp,
            "act_bits_differ_mpq_ort": bits_differ(m_act, o_act),
            "act_bits_differ_ort_ort": bits_differ(e_act, o_act),
            "codes_differ_mpq_ort": int(np.sum(cm != co)),
            "codes_differ_ort_ort": int(np.sum(ce != co)),
            "codes_max_step": int(np.max(np.abs(cm - co))) if cm.size else 0,
        }
        if silu:
            m_conv = mpq_values(conv_out).reshape(ort_full[conv_out].shape)
            o_conv, e_conv = ort_full[conv_out], ort_ext[conv_out]
            silu_of_mpq_conv = silu_ort(m_conv)
            cs = quantize(silu_of_mpq_conv, scale, zp)
            r.update({
                "conv_bits_differ_mpq_ort": bits_differ(m_conv, o_conv),
                "conv_bits_differ_ort_ort": bits_differ(e_conv, o_conv),
                "conv_max_rel_diff_mpq_ort": float(np.max(np.abs(m_conv - o_conv)) / max(np.max(np.abs(o_conv)), 1e-30)),
                "silu_only_bits_differ": bits_differ(silu_of_mpq_conv, m_act),
                "codes_differ_silu_only": int(np.sum(cs != cm)),
                "codes_differ_conv_only": int(np.sum(cs != co)),
            })
        report.append(r)
        print(json.dumps(r))
    if a.json_out:
        with open(a.json_out, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
