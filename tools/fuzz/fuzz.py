#!/usr/bin/env python3
"""Structured fuzzer for the mpq CLI (issue 10, item 5). See docs/fuzzing.md.

    python3 tools/fuzz/fuzz.py --mpq .build/release/mpq --seed 1 --runs 500 --out /tmp/fuzz
    python3 tools/fuzz/fuzz.py --seed 7 --budget-seconds 50 --jobs 2        # CI

Each case takes one committed seed (a model and the data that goes with it), applies one
mutation to the model (onnx package: dims, attributes, attribute types, domains, opsets, op
types, wiring, dtypes, external data, absurd constant inputs, NaN/Inf, raw bytes) or to the
data (.npy headers, dtypes, zip structure, labels, values, array names, special files), runs
`mpq inspect` or `mpq eval` (sometimes INT8 with --calibration) under a timeout and classifies
the exit code against the contract: 0 success, 1 internal error, 2 bad input (stderr starting
with "error:"), 3 budget not met.

Failures (any of them makes the exit status 1):
  signal        killed by a signal (trap, abort, segfault, out of memory under --memory-mb)
  timeout       still running after --timeout seconds (hang)
  exit1         internal error
  silent        exit 0 on a mutation that is certainly invalid
  exit2-format  exit 2 with stderr empty or not starting with "error:"
  unexpected    any other exit status (3 cannot happen for inspect/eval)
  rejects-valid exit 2 on an unmutated seed (control case)
Fine: ok-exit0 (exit 0 on a mutation that may be valid, or on a control), ok-exit2.

Case i of seed S is generated from random.Random("S:i") alone, so a case can be replayed
with --case i whatever the run count, job count or budget. Every failing case is kept under
--out (model, data, cmd.sh, stderr), one per (mutation kind, outcome, first stderr line).
"""
import argparse
import collections
import concurrent.futures
import hashlib
import io
import json
import math
import os
import random
import re
import resource
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
import warnings
import zlib

import numpy as np
import onnx
from onnx import AttributeProto, TensorProto, helper, numpy_helper

warnings.filterwarnings("ignore", "Duplicate name")
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FIX = os.path.join(ROOT, "Tests", "Fixtures")
EX = os.path.join(ROOT, "Examples")

HUGE_INTS = [2**31, 2**32, 2**40, 2**62, 2**63 - 1]
NEG_INTS = [-1, -2, -(2**31), -(2**62), -(2**63)]

# ---------------------------------------------------------------------------------------------
# Seeds


class Seed:
    def __init__(self, name, model, holdout, calib, classes, extra=(), weights=None, rows=24, label_key="labels", inspect=()):
        self.name, self.model, self.holdout, self.calib = name, model, holdout, calib
        self.inspect_extra = list(inspect)
        self.classes, self.extra, self.weights, self.rows, self.label_key = classes, list(extra), weights, rows, label_key
        self.model_bytes = None
        self.arrays = None      # small holdout subset: {name: ndarray}, in file order
        self.calib_arrays = None

    def load(self):
        with open(self.model, "rb") as f:
            self.model_bytes = f.read()
        self.arrays = subset(self.holdout, self.rows)
        self.calib_arrays = subset(self.calib, self.rows)
        self.proto = onnx.load_from_string(self.model_bytes)
        self.opset = max([o.version for o in self.proto.opset_import if o.domain in ("", "ai.onnx")] or [13])
        self.inputs = [i.name for i in self.proto.graph.input if i.name not in {t.name for t in self.proto.graph.initializer}]
        # Inputs used as Gather indices (token ids): a value past the table is certainly invalid.
        self.index_inputs = {n.input[1] for n in self.proto.graph.node if n.op_type == "Gather" and len(n.input) > 1}


def subset(path, rows):
    with np.load(path) as z:
        return {k: z[k][:rows].copy() for k in z.files}


SEEDS = [
    Seed("tabular_mlp", f"{FIX}/tabular_mlp.onnx", f"{FIX}/breast_cancer_holdout.npz", f"{FIX}/breast_cancer_calib.npz", 2),
    Seed("tabular_mlp_const", f"{FIX}/tabular_mlp_const.onnx", f"{FIX}/breast_cancer_holdout.npz", f"{FIX}/breast_cancer_calib.npz", 2),
    Seed("digits_cnn", f"{EX}/digits_cnn.onnx", f"{EX}/digits_holdout.npz", f"{EX}/digits_calib.npz", 10),
    Seed("digits_cnn_extdata", f"{FIX}/digits_cnn_extdata.onnx", f"{FIX}/digits_holdout.npz", f"{FIX}/digits_calib.npz", 10,
         weights=f"{FIX}/digits_cnn.weights"),
    Seed("text_encoder", f"{FIX}/text_encoder.onnx", f"{FIX}/text_encoder_holdout.npz", f"{FIX}/text_encoder_calib.npz", 4, rows=16,
         inspect=["--input-shape", "input_ids=1,32", "--input-shape", "attention_mask=1,32"]),
    Seed("shapes_det", f"{FIX}/detection/shapes_det.onnx", f"{FIX}/detection/shapes_det_holdout.npz",
         f"{FIX}/detection/shapes_det_calib.npz", None, extra=["--metric", "map50", "--detection-format", "yolo"], rows=6,
         label_key=None),
]
# How often each seed is drawn (the small models are fast: most of the runs go to them).
SEED_WEIGHTS = {"tabular_mlp": 5, "tabular_mlp_const": 2, "digits_cnn": 3, "digits_cnn_extdata": 2, "text_encoder": 1, "shapes_det": 1}


class Skip(Exception):
    """A mutation that does not apply to this seed."""


# ---------------------------------------------------------------------------------------------
# Writing .npy / .npz by hand (so headers and zip structure can be damaged)


def npy_bytes(arr, header=None, version=(1, 0), magic=b"\x93NUMPY", body=None):
    if header is None:
        descr = np.lib.format.dtype_to_descr(arr.dtype)
        header = "{'descr': %r, 'fortran_order': False, 'shape': %s, }" % (descr, repr(tuple(arr.shape)))
    h = header.encode("latin1")
    lenfmt = "<H" if version[0] == 1 else "<I"
    pre = len(magic) + 2 + struct.calcsize(lenfmt)
    pad = (64 - (pre + len(h) + 1) % 64) % 64
    h = h + b" " * pad + b"\n"
    body = np.ascontiguousarray(arr).tobytes() if body is None else body
    return magic + bytes(version) + struct.pack(lenfmt, len(h)) + h + body


def npz_bytes(entries, compress):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED) as z:
        for name, data in entries:
            z.writestr(zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0)) if not compress else _zi(name), data)
    return bytearray(buf.getvalue())


def _zi(name):
    zi = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
    zi.compress_type = zipfile.ZIP_DEFLATED
    return zi


def zip_records(data):
    """Offsets of local headers (with their data ranges), central headers and the EOCD."""
    locals_, centrals, eocd = [], [], None
    i = 0
    while True:
        j = data.find(b"PK\x03\x04", i)
        if j < 0:
            break
        nlen, xlen = struct.unpack_from("<HH", data, j + 26)
        csize = struct.unpack_from("<I", data, j + 18)[0]
        start = j + 30 + nlen + xlen
        locals_.append((j, start, start + csize))
        i = start + csize
    i = 0
    while True:
        j = data.find(b"PK\x01\x02", i)
        if j < 0:
            break
        centrals.append(j)
        i = j + 4
    eocd = data.rfind(b"PK\x05\x06")
    return locals_, centrals, eocd


# ---------------------------------------------------------------------------------------------
# A case: files in a folder, a command, and how certain it is that the input is invalid


class Case:
    def __init__(self, index, seed, kind, certain, detail):
        self.index, self.seed, self.kind, self.certain, self.detail = index, seed, kind, certain, detail
        self.dir = None
        self.model = None
        self.data = None
        self.calib = None
        self.args = None
        self.names = []   # things an exit-2 message may name (file, tensor, node, array)
        self.calib_target = False


def write_model(case, proto, name="model.onnx"):
    path = os.path.join(case.dir, name)
    with open(path, "wb") as f:
        f.write(proto.SerializeToString())
    return path


def valid_data(case, which="holdout", compress=False):
    seed = case.seed
    arrays = seed.arrays if which == "holdout" else seed.calib_arrays
    path = os.path.join(case.dir, f"{which}.npz")
    with open(path, "wb") as f:
        f.write(npz_bytes([(k + ".npy", npy_bytes(v)) for k, v in arrays.items()], compress))
    return path


def copy_weights(case):
    if case.seed.weights and not os.path.lexists(os.path.join(case.dir, os.path.basename(case.seed.weights))):
        shutil.copy(case.seed.weights, os.path.join(case.dir, os.path.basename(case.seed.weights)))


# ---------------------------------------------------------------------------------------------
# Model mutations: each takes (rng, model proto, case) and returns (kind, certain, detail)


def _pick_init(rng, m, float_only=False, min_size=1):
    inits = [t for t in m.graph.initializer
             if (not float_only or t.data_type == TensorProto.FLOAT) and math.prod(t.dims) >= min_size]
    if not inits:
        raise Skip
    return rng.choice(inits)


def _const_tensors(m, float_only=False, values=False):
    """Initializers and Constant-node values (name, TensorProto)."""
    out = [(t.name, t) for t in m.graph.initializer]
    for n in m.graph.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value":
                    out.append((n.output[0], a.t))
    if float_only:
        out = [(k, t) for k, t in out if t.data_type == TensorProto.FLOAT and math.prod(t.dims) > 0]
    if values:
        out = [(k, t) for k, t in out if t.data_location != TensorProto.EXTERNAL]
    return out


def _constant_node_names(m, name):
    """The Constant node (and its value attribute, as mpq names it: "<node>.value") whose output is
    `name`, which an error about that tensor may name instead of the output."""
    return [x for n in m.graph.node if n.op_type == "Constant" and name in n.output and n.name for x in (n.name, n.name + ".value")]


def m_init_dims(rng, m, case):
    name, t = rng.choice(_const_tensors(m) or [None]) if _const_tensors(m) else (None, None)
    if t is None:
        raise Skip
    case.names += [name] + _constant_node_names(m, name)
    sub = rng.choice(["huge", "negative", "zero", "mismatch", "extra_dim"])
    dims = list(t.dims)
    if sub == "extra_dim":
        dims.append(rng.choice([2, 3] + HUGE_INTS))
    else:
        if not dims:
            dims = [1]
        i = rng.randrange(len(dims))
        if sub == "huge":
            dims[i] = rng.choice(HUGE_INTS)
            if rng.random() < 0.4:
                dims = [rng.choice(HUGE_INTS) for _ in dims]
        elif sub == "negative":
            dims[i] = rng.choice(NEG_INTS)
        elif sub == "zero":
            dims[i] = 0
        else:
            dims[i] = dims[i] + rng.choice([1, 2, -1]) if dims[i] > 1 else dims[i] + 1
    # Data no longer matches (or a dim is negative): certainly invalid, unless the product is unchanged.
    certain = math.prod(dims) != math.prod(t.dims) or any(d < 0 for d in dims)
    del t.dims[:]
    t.dims.extend(dims)
    return f"init_dims_{sub}", certain, f"{name} dims -> {dims}"


INT_ATTRS = {"pads", "strides", "dilations", "group", "kernel_shape", "axis", "transA", "transB", "ceil_mode",
             "count_include_pad", "keepdims", "perm", "axes", "training_mode", "to", "allowzero", "center_point_box"}


def _int_attr_sites(m):
    sites = []
    for n in m.graph.node:
        for a in n.attribute:
            if a.type in (AttributeProto.INT, AttributeProto.INTS):
                sites.append((n, a))
    return sites


def m_attr_int(rng, m, case):
    sites = _int_attr_sites(m)
    if not sites:
        raise Skip
    n, a = rng.choice(sites)
    case.names += [n.name, n.op_type, a.name]
    sub = rng.choice(["huge", "huge", "negative", "small"])
    vals = list(a.ints) if a.type == AttributeProto.INTS else [a.i]
    if not vals:
        vals = [0]
    i = rng.randrange(len(vals))
    if sub == "huge":
        vals[i] = rng.choice(HUGE_INTS)
    elif sub == "negative":
        vals[i] = rng.choice(NEG_INTS)
    else:
        vals[i] = vals[i] + rng.choice([-1, 1, 2])
    if a.type == AttributeProto.INTS:
        del a.ints[:]
        a.ints.extend(vals)
    else:
        a.i = vals[0]
    # Certain: huge values of shape-like attributes (an output too large to hold, a group that cannot divide
    # the channels, an axis out of range); negative strides/dilations/kernel/group; 'to' not a dtype code.
    certain = False
    v = vals[i]
    # (A huge stride or dilation can still be valid: a 1x1 kernel, one output pixel.)
    if sub == "huge" and a.name in {"pads", "group", "kernel_shape", "axis", "perm", "axes", "to"}:
        certain = True
    if v < 0 and a.name in {"strides", "dilations", "group", "kernel_shape", "to"}:
        certain = True
    if v <= -(2**31) and a.name in {"axis", "perm", "axes", "pads"}:
        certain = True
    if sub == "small" and a.name == "group" and v <= 0:
        certain = True
    if a.name in {"strides", "dilations", "kernel_shape"} and v == 0:
        certain = True
    return f"attr_int_{sub}", certain, f"{n.name or n.op_type}.{a.name} -> {vals}"


def m_attr_type(rng, m, case):
    sites = [(n, a) for n in m.graph.node for a in n.attribute
             if a.type in (AttributeProto.INT, AttributeProto.INTS, AttributeProto.FLOAT, AttributeProto.FLOATS, AttributeProto.STRING)]
    if not sites:
        raise Skip
    n, a = rng.choice(sites)
    case.names += [n.name, n.op_type, a.name]
    old = a.type
    choices = [t for t in (AttributeProto.INT, AttributeProto.INTS, AttributeProto.FLOAT, AttributeProto.FLOATS, AttributeProto.STRING,
                           AttributeProto.STRINGS) if t != old]
    new = rng.choice(choices)
    name = a.name
    vals = list(a.ints) or [a.i] if old in (AttributeProto.INT, AttributeProto.INTS) else (list(a.floats) or [a.f]) if old in (AttributeProto.FLOAT, AttributeProto.FLOATS) else [1]
    a.Clear()
    a.name = name
    a.type = new
    if new == AttributeProto.INT:
        a.i = int(vals[0]) if isinstance(vals[0], (int, float)) and math.isfinite(vals[0]) else 1
    elif new == AttributeProto.INTS:
        a.ints.extend([int(v) if math.isfinite(v) else 1 for v in vals])
    elif new == AttributeProto.FLOAT:
        a.f = float(vals[0])
    elif new == AttributeProto.FLOATS:
        a.floats.extend([float(v) for v in vals])
    elif new == AttributeProto.STRING:
        a.s = b"fuzz"
    else:
        a.strings.extend([b"1", b"2"])
    names = {AttributeProto.INT: "int", AttributeProto.INTS: "ints", AttributeProto.FLOAT: "float", AttributeProto.FLOATS: "floats",
             AttributeProto.STRING: "string", AttributeProto.STRINGS: "strings"}
    # Every attribute of these ops has one type in the ONNX schema: any other type is invalid.
    return "attr_type", True, f"{n.name or n.op_type}.{name}: {names[old]} -> {names[new]}"


def m_attr_unknown(rng, m, case):
    n = rng.choice(list(m.graph.node))
    case.names += [n.name, n.op_type, "fuzz_attr"]
    n.attribute.append(helper.make_attribute("fuzz_attr", rng.choice([1, 2.5, "x", [1, 2]])))
    # The ONNX checker refuses attributes the schema does not define.
    return "attr_unknown", True, f"{n.name or n.op_type} + fuzz_attr"


def m_domain(rng, m, case):
    n = rng.choice(list(m.graph.node))
    case.names += [n.name, n.op_type, "com.example.fuzz"]
    n.domain = rng.choice(["com.example.fuzz", "ai.onnx.ml", "com.microsoft"])
    sub = "unknown" if n.domain == "com.example.fuzz" else "other"
    if rng.random() < 0.5:
        m.opset_import.append(helper.make_opsetid(n.domain, 1))
    # No such op in those domains (ai.onnx.ml and com.microsoft have no Conv/Gemm/Relu/...): invalid.
    return f"node_domain_{sub}", True, f"{n.name or n.op_type}.domain = {n.domain}"


def m_opset(rng, m, case):
    sub = rng.choice(["v1", "v999", "v0", "negative", "missing", "duplicate", "other_domain_only"])
    ops = [o for o in m.opset_import if o.domain in ("", "ai.onnx")]
    certain = True
    if sub == "v1":
        ops[0].version = 1
        certain = False   # a few ops existed in opset 1 with compatible attributes
    elif sub == "v999":
        ops[0].version = 999
    elif sub == "v0":
        ops[0].version = 0
    elif sub == "negative":
        ops[0].version = rng.choice([-1, -(2**62)])
    elif sub == "missing":
        for o in ops:
            m.opset_import.remove(o)
    elif sub == "duplicate":
        m.opset_import.append(helper.make_opsetid("", ops[0].version + rng.choice([-3, 1, 5])))
        certain = False   # two versions of one domain: ambiguous, but a loader may take one
    else:
        for o in ops:
            m.opset_import.remove(o)
        m.opset_import.append(helper.make_opsetid("com.example.fuzz", 1))
    case.names += ["opset", "ai.onnx"]
    return f"opset_{sub}", certain, f"opset_import -> {[(o.domain, o.version) for o in m.opset_import]}"


def m_op_type(rng, m, case):
    n = rng.choice(list(m.graph.node))
    case.names += [n.name, "FuzzOp"]
    old = n.op_type
    n.op_type = rng.choice(["FuzzOp", "", "conv", "Gemm ", old + "\x00"])
    return "op_type_unknown", True, f"{n.name or old}: {old} -> {n.op_type!r}"


def m_dangling(rng, m, case):
    nodes = [n for n in m.graph.node if any(n.input)]
    if not nodes:
        raise Skip
    n = rng.choice(nodes)
    idx = [i for i, x in enumerate(n.input) if x]
    i = rng.choice(idx)
    case.names += [n.name, "fuzz_missing"]
    old = n.input[i]
    n.input[i] = "fuzz_missing_" + str(rng.randrange(100))
    return "input_dangling", True, f"{n.name or n.op_type}.input[{i}]: {old} -> {n.input[i]}"


def m_output_renamed(rng, m, case):
    n = rng.choice(list(m.graph.node))
    i = rng.randrange(len(n.output))
    old = n.output[i]
    used = any(old in x.input for x in m.graph.node) or any(o.name == old for o in m.graph.output)
    n.output[i] = old + "_fuzz"
    case.names += [n.name, old]
    return "output_renamed", used, f"{n.name or n.op_type}.output[{i}]: {old} -> {n.output[i]}"


def m_cycle(rng, m, case):
    nodes = list(m.graph.node)
    consumers = {}
    for j, n in enumerate(nodes):
        for x in n.input:
            consumers.setdefault(x, []).append(j)
    cands = [(i, j) for i, n in enumerate(nodes) for o in n.output for j in consumers.get(o, []) if nodes[i].input]
    if not cands:
        raise Skip
    i, j = rng.choice(cands)
    sub = rng.choice(["cycle", "self_loop", "duplicate_output"])
    n = nodes[i]
    k = rng.choice([t for t, x in enumerate(n.input) if x] or [0])
    case.names += [n.name, nodes[j].name]
    if sub == "cycle":
        n.input[k] = nodes[j].output[0]
    elif sub == "self_loop":
        n.input[k] = n.output[0]
    else:
        # Two nodes write the same tensor.
        nodes[j].output[0] = n.output[0]
    return f"graph_{sub}", True, f"{n.name or n.op_type} / {nodes[j].name or nodes[j].op_type}"


def m_dtype(rng, m, case):
    sub = rng.choice(["initializer", "initializer", "graph_input", "graph_output"])
    if sub == "initializer":
        name, t = rng.choice(_const_tensors(m))
        case.names += [name] + _constant_node_names(m, name)
        old = t.data_type
        t.data_type = rng.choice([c for c in [0, 2, 3, 5, 6, 7, 8, 9, 10, 11, 16, 17, 23, 24, 99, 1000, -1] if c != old])
        return "dtype_initializer", True, f"{name}: {old} -> {t.data_type}"
    vis = m.graph.input if sub == "graph_input" else m.graph.output
    vis = [v for v in vis if v.name not in {t.name for t in m.graph.initializer}]
    v = rng.choice(vis)
    old = v.type.tensor_type.elem_type
    new = rng.choice([c for c in [0, 2, 6, 7, 9, 10, 11, 99] if c != old])
    v.type.tensor_type.elem_type = new
    case.names.append(v.name)
    # 0 is "unspecified"; 99 is no ONNX type. float <-> float16/double is a type error in ONNX, but
    # mpq computes every floating type in float32, so the scored values are the same: maybe valid.
    # A float input declared integer/bool breaks its Conv/Gemm reader (certain); an integer input
    # (the text encoder's attention_mask feeds Unsqueeze/Cast, which take any type) may be declared
    # another type and still be valid, the data's integers converting exactly.
    floats = {1, 10, 11}
    if sub == "graph_input":
        certain = new == 99 or (old in floats and new not in floats and new != 0)
    else:
        certain = new != 0 and not (old in floats and new in floats)
    return f"dtype_{sub}", certain, f"{v.name}: {old} -> {new}"


def _ext_inits(m):
    return [t for t in m.graph.initializer if t.data_location == TensorProto.EXTERNAL]


def m_external(rng, m, case):
    inits = _ext_inits(m)
    if not inits:
        raise Skip
    t = rng.choice(inits)
    case.names.append(t.name)
    kv = {e.key: e for e in t.external_data}
    weights = os.path.basename(case.seed.weights)
    size = os.path.getsize(case.seed.weights)
    field = rng.choice(["location", "offset", "length"])
    certain = True
    if field == "location":
        sub = rng.choice([".", "folder", "../outside", "abs_outside", "empty", "missing", "symlink_outside", "fifo", "devzero"])
        if sub == ".":
            loc = "."
        elif sub == "folder":
            os.mkdir(os.path.join(case.dir, "sub"))
            loc = "sub"
        elif sub == "../outside":
            # A good copy of the weights outside the model's folder: still refused.
            outside = os.path.join(os.path.dirname(case.dir), f"outside-{case.index}.weights")
            shutil.copy(case.seed.weights, outside)
            loc = f"../outside-{case.index}.weights"
        elif sub == "abs_outside":
            loc = os.path.abspath(case.seed.weights)
        elif sub == "empty":
            loc = ""
        elif sub == "missing":
            loc = "no_such.weights"
        elif sub == "symlink_outside":
            os.symlink(os.path.abspath(case.seed.weights), os.path.join(case.dir, "link.weights"))
            loc = "link.weights"
        elif sub == "fifo":
            os.mkfifo(os.path.join(case.dir, "pipe.weights"))
            loc = "pipe.weights"
        else:
            loc = "/dev/zero"
        kv["location"].value = loc
        kind = f"ext_location_{sub.strip('./')}"
        detail = f"{t.name}.location = {loc!r}"
    else:
        sub = rng.choice(["minus1", "abc", "u64max", "i64max", "past_eof", "shifted", "empty", "float", "hex", "plus"])
        cur = int(kv[field].value) if field in kv else 0
        val = {"minus1": "-1", "abc": "abc", "u64max": str(2**64 - 1), "i64max": str(2**63 - 1),
               "past_eof": str(size + 4 if field == "offset" else size + 4), "shifted": str(cur + 4), "empty": "",
               "float": "1.5", "hex": "0x10", "plus": "+" + str(cur)}[sub]
        if sub == "shifted":
            # Shifting the offset inside the file reads other (valid) floats; shifting the length does not match the dims.
            certain = field == "length" or cur + 4 + (int(kv["length"].value) if "length" in kv else 0) > size
        if sub == "plus":
            certain = False   # "+N" may be accepted as N
        if field not in kv:
            t.external_data.append(onnx.StringStringEntryProto(key=field, value=val))
        else:
            kv[field].value = val
        kind = f"ext_{field}_{sub}"
        detail = f"{t.name}.{field} = {val!r}"
    copy_weights(case)
    return kind, certain, detail


def _consumers(m, name):
    return [(n, i) for n in m.graph.node for i, x in enumerate(n.input) if x == name]


def _first_input(case, m):
    """The first float graph input, its rank (from the seed's data)."""
    for name in case.seed.inputs:
        arr = case.seed.arrays.get(name)
        if arr is not None and arr.dtype == np.float32:
            return name, arr.ndim
    raise Skip


def m_inject(rng, m, case):
    """Puts a shape op with an absurd constant between the first float input and its consumers."""
    x, rank = _first_input(case, m)
    op = rng.choice(["Tile", "Expand", "Pad", "Resize", "Reshape", "Range", "ConstantOfShape"])
    if case.seed.opset < 11 and op in ("Pad", "Resize", "Range"):
        raise Skip
    if case.seed.opset < 9 and op in ("ConstantOfShape", "Expand"):
        raise Skip
    y = "fuzz_" + op.lower()
    absurd = rng.random() < 0.85
    big = rng.choice(HUGE_INTS[:4])
    inits, nodes, certain, extra_output = [], [], absurd, None
    c = lambda n, v, dt=np.int64: inits.append(numpy_helper.from_array(np.array(v, dtype=dt), n))
    if op == "Tile":
        reps = [1] * rank
        reps[rng.randrange(rank)] = big if absurd else 1
        if absurd and rng.random() < 0.3:
            reps[rng.randrange(rank)] = -rng.choice([1, 3])
        c("fuzz_repeats", reps)
        nodes.append(helper.make_node("Tile", [x, "fuzz_repeats"], [y], name="fuzz_tile"))
        detail = f"repeats {reps}"
    elif op == "Expand":
        shape = [1] * rank
        shape[0] = big if absurd else 1
        if absurd and rng.random() < 0.3:
            shape[0] = -rng.choice([2, 5])
        c("fuzz_shape", shape)
        nodes.append(helper.make_node("Expand", [x, "fuzz_shape"], [y], name="fuzz_expand"))
        detail = f"shape {shape}"
    elif op == "Pad":
        pads = [0] * (2 * rank)
        pads[rng.randrange(1, rank) + rank * rng.randrange(2)] = big if absurd else 0
        c("fuzz_pads", pads)
        nodes.append(helper.make_node("Pad", [x, "fuzz_pads"], [y], name="fuzz_pad"))
        detail = f"pads {pads}"
    elif op == "Resize":
        scales = [1.0] * rank
        scales[-1] = rng.choice([1e6, 1e12, 1e30, float("inf"), float("nan"), -2.0]) if absurd else 1.0
        c("fuzz_roi", [], np.float32)
        c("fuzz_scales", scales, np.float32)
        nodes.append(helper.make_node("Resize", [x, "fuzz_roi", "fuzz_scales"], [y], name="fuzz_resize", mode="nearest"))
        detail = f"scales {scales}"
    elif op == "Reshape":
        if absurd:
            shape = rng.choice([[big, 4], [-1, -1], [2**62, 2**62], [-5, 3], [0, big]])
        else:
            shape = [0, -1] if rank == 2 else [0] + [-1]
            certain = False
        c("fuzz_shape", shape)
        nodes.append(helper.make_node("Reshape", [x, "fuzz_shape"], [y], name="fuzz_reshape"))
        if not absurd:
            # Flattening a 4-D input breaks the consumer: keep the rank (identity reshape for 2-D only).
            if rank != 2:
                raise Skip
        detail = f"shape {shape}"
    elif op == "Range":
        limit = rng.choice([1e12, 1e18, 3e38, float("inf"), float("nan")]) if absurd else 4.0
        c("fuzz_start", 0.0, np.float32)
        c("fuzz_limit", limit, np.float32)
        c("fuzz_delta", rng.choice([1.0, 1e-30, 0.0]) if absurd else 1.0, np.float32)
        nodes.append(helper.make_node("Range", ["fuzz_start", "fuzz_limit", "fuzz_delta"], ["fuzz_range"], name="fuzz_range"))
        extra_output = "fuzz_range"
        detail = f"limit {limit}"
        y = None
    else:
        shape = rng.choice([[2**31, 2**31], [big], [-1, 4], [2**62, 2**62, 2**62]]) if absurd else [2, 2]
        c("fuzz_cos_shape", shape)
        nodes.append(helper.make_node("ConstantOfShape", ["fuzz_cos_shape"], ["fuzz_cos"], name="fuzz_constantofshape"))
        extra_output = "fuzz_cos"
        detail = f"shape {shape}"
        y = None
    if y is not None:
        for n, i in _consumers(m, x):
            n.input[i] = y
    else:
        # Not on the path to the scored output: a runtime that prunes it may rightly succeed.
        certain = False
        m.graph.output.append(helper.make_tensor_value_info(extra_output, TensorProto.FLOAT if op == "Range" else TensorProto.FLOAT, None))
    m.graph.initializer.extend(inits)
    for n in reversed(nodes):
        m.graph.node.insert(0, n)
    # The injected constants too: a check of their values names them (tensor 'fuzz_limit').
    case.names += ["fuzz_" + op.lower(), op] + [t.name for t in inits]
    return f"inject_{op.lower()}_{'absurd' if absurd else 'benign'}", certain, detail


def m_const_input(rng, m, case):
    """Absurd values in the constant shape/scale inputs of existing Reshape/Resize/Slice/... nodes."""
    consts = dict(_const_tensors(m, values=True))
    sites = [(n, i) for n in m.graph.node if n.op_type in ("Reshape", "Resize", "Slice", "Tile", "Expand", "Pad", "Range",
                                                            "ConstantOfShape", "Gather", "Unsqueeze", "Transpose")
             for i, x in enumerate(n.input) if i > 0 and x in consts]
    if not sites:
        raise Skip
    n, i = rng.choice(sites)
    t = consts[n.input[i]]
    arr = numpy_helper.to_array(t).copy()
    if arr.size == 0:
        raise Skip
    flat = arr.reshape(-1)
    j = rng.randrange(flat.size)
    if arr.dtype.kind == "f":
        flat[j] = rng.choice([1e6, 1e12, 1e30, float("inf"), float("nan"), -1.0])
    else:
        flat[j] = rng.choice(HUGE_INTS[:4] + [-(2**62), -7])
    t.CopyFrom(numpy_helper.from_array(flat.reshape(arr.shape), t.name))
    case.names += [n.name, n.op_type, n.input[i]] + _constant_node_names(m, n.input[i])
    # Slice clamps starts/ends and Gather indices may wrap: only shape/scale inputs are certainly absurd.
    certain = n.op_type in ("Reshape", "Resize", "Tile", "Expand", "ConstantOfShape") or (n.op_type == "Gather" and abs(int(flat[j])) > 2**30)
    return f"const_input_{n.op_type.lower()}", certain, f"{n.name or n.op_type}.input[{i}] ({n.input[i]})[{j}] = {flat[j]}"


def m_nonfinite(rng, m, case):
    ext = _ext_inits(m)
    if ext and rng.random() < 0.7:
        # Into the external weights file (a copy beside the mutant).
        t = rng.choice([x for x in ext if x.data_type == TensorProto.FLOAT])
        kv = {e.key: e.value for e in t.external_data}
        copy_weights(case)
        path = os.path.join(case.dir, kv["location"])
        off = int(kv.get("offset", "0")) + 4 * rng.randrange(int(kv["length"]) // 4)
        v = rng.choice([float("nan"), float("inf"), float("-inf")])
        with open(path, "r+b") as f:
            f.seek(off)
            f.write(struct.pack("<f", v))
        case.names.append(t.name)
        return "init_nonfinite_external", True, f"{t.name} gets {v} at byte {off}"
    consts = _const_tensors(m, float_only=True, values=True)
    if not consts:
        raise Skip
    name, t = rng.choice(consts)
    arr = numpy_helper.to_array(t).copy()
    flat = arr.reshape(-1)
    v = rng.choice([float("nan"), float("inf"), float("-inf")])
    flat[rng.randrange(flat.size)] = v
    t.CopyFrom(numpy_helper.from_array(flat.reshape(arr.shape), t.name))
    case.names += [name] + _constant_node_names(m, name)
    return "init_nonfinite", True, f"{name} gets {v}"


def m_float_payload(rng, m, case):
    """Random finite values in an initializer: a valid model (control for the value checks)."""
    consts = _const_tensors(m, float_only=True, values=True)
    if not consts:
        raise Skip
    name, t = rng.choice(consts)
    arr = numpy_helper.to_array(t).copy()
    flat = arr.reshape(-1)
    flat[rng.randrange(flat.size)] = rng.choice([0.0, 1e30, -1e30, 1e-40, 3.4e38])
    t.CopyFrom(numpy_helper.from_array(flat.reshape(arr.shape), t.name))
    return "init_float_extreme", False, name


def m_raw_len(rng, m, case):
    """raw_data one element short/long, or both raw_data and float_data set."""
    inits = [t for t in m.graph.initializer if t.raw_data]
    if not inits:
        raise Skip
    t = rng.choice(inits)
    case.names.append(t.name)
    sub = rng.choice(["short", "long", "empty", "odd"])
    if sub == "short":
        t.raw_data = t.raw_data[:-4]
    elif sub == "long":
        t.raw_data = t.raw_data + b"\0" * 4
    elif sub == "empty":
        t.raw_data = b""
        if math.prod(t.dims) == 0:
            raise Skip
    else:
        t.raw_data = t.raw_data[:-1]
    return f"raw_data_{sub}", True, t.name


MODEL_MUTATIONS = [
    (m_init_dims, 4), (m_attr_int, 5), (m_attr_type, 3), (m_attr_unknown, 1), (m_domain, 2), (m_opset, 2), (m_op_type, 2),
    (m_dangling, 2), (m_output_renamed, 1), (m_cycle, 2), (m_dtype, 2), (m_external, 4), (m_inject, 5), (m_const_input, 3),
    (m_nonfinite, 2), (m_float_payload, 1), (m_raw_len, 2),
]


def byte_mutation(rng, data, certain_check):
    sub = rng.choice(["flip", "flip", "truncate"])
    data = bytearray(data)
    if sub == "flip":
        for _ in range(rng.choice([1, 1, 2, 8])):
            i = rng.randrange(len(data))
            data[i] ^= rng.choice([0x01, 0x80, 0xFF, rng.randrange(1, 256)])
    else:
        data = data[: rng.randrange(0, len(data))]
    return sub, bytes(data), certain_check(bytes(data))


def model_parse_fails(data):
    try:
        m = onnx.load_from_string(data)
    except Exception:
        return True
    return not m.HasField("graph") or len(m.graph.node) == 0


# ---------------------------------------------------------------------------------------------
# Data mutations: each returns (kind, certain, detail) and writes case.data (or case.calib)


def _label_key(case):
    if not case.seed.label_key:
        raise Skip
    return case.seed.label_key


def d_npy_header(rng, arrays, case):
    names = list(arrays)
    k = rng.choice(names)
    case.names.append(k)
    a = arrays[k]
    descr = np.lib.format.dtype_to_descr(a.dtype)
    sub = rng.choice(["shape_huge", "shape_negative", "shape_more", "shape_fewer", "descr_wrong_size", "descr_object",
                      "descr_garbage", "fortran", "not_a_dict", "bad_magic", "version3", "header_len_huge", "shape_nonint"])
    shape = list(a.shape)
    certain = True
    header, magic, version = None, b"\x93NUMPY", (1, 0)
    fmt = lambda d=descr, f=False, s=shape: "{'descr': %r, 'fortran_order': %s, 'shape': %s, }" % (d, f, repr(tuple(s)))
    if sub == "shape_huge":
        shape[rng.randrange(len(shape))] = rng.choice(HUGE_INTS)
        header = fmt()
    elif sub == "shape_negative":
        shape[rng.randrange(len(shape))] = rng.choice([-1, -(2**62)])
        header = fmt()
    elif sub == "shape_more":
        shape[0] += rng.choice([1, 7])
        header = fmt()
    elif sub == "shape_fewer":
        shape[0] -= 1
        header = fmt()
        certain = False   # numpy reads the declared count and ignores trailing bytes
    elif sub == "descr_wrong_size":
        header = fmt(d={"<f4": "<f8", "<i8": "<i4", "<f8": "<f4"}.get(descr, "<f8"))
    elif sub == "descr_object":
        header = fmt(d="|O")
    elif sub == "descr_garbage":
        header = fmt(d=rng.choice(["", "<x9", "zzz", "<U4", "V4"]))
    elif sub == "fortran":
        header = fmt(f=True)
        certain = False   # valid: the same bytes, read transposed
    elif sub == "not_a_dict":
        header = rng.choice(["[1, 2, 3]", "{'descr': '<f4'", "", "{'shape': (1,)}", "\x00" * 10])
    elif sub == "bad_magic":
        magic = b"\x93NUMPZ"
    elif sub == "version3":
        version = (3, 0)
        certain = False   # format 3.0 is valid (utf-8 header)
    elif sub == "header_len_huge":
        raw = npy_bytes(a)
        raw = raw[:8] + struct.pack("<H", 0xFFFF) + raw[10:]
        _write_npz_entries(rng, arrays, case, k, raw)
        return "npy_header_len_huge", True, f"{k}.npy header length 65535"
    else:
        header = "{'descr': %r, 'fortran_order': False, 'shape': (%s), }" % (descr, rng.choice(["'a', 30", "1.5, 30", "None,", "2**62, 1"]))
    raw = npy_bytes(a, header=header, magic=magic, version=version)
    _write_npz_entries(rng, arrays, case, k, raw)
    return f"npy_{sub}", certain, f"{k}.npy: {sub} {header!r}"[:200]


def d_npy_file(rng, arrays, case):
    """The single input as a plain .npy file (`--data X.npy`, `--calibration X.npy`), read by
    rows (Sources/ONNX/NPZStream.swift): sizes, headers and bytes that must be refused."""
    inputs = [k for k in case.seed.inputs if k in arrays]
    if len(case.seed.inputs) != 1 or not inputs:
        raise Skip
    k = inputs[0]
    case.names.append(k)
    a = arrays[k]
    descr = np.lib.format.dtype_to_descr(a.dtype)
    fmt = lambda d=descr, s=list(a.shape): "{'descr': %r, 'fortran_order': False, 'shape': %s, }" % (d, repr(tuple(s)))
    sub = rng.choice(["valid", "truncate", "extra", "shape_more", "shape_huge", "shape_scalar", "descr_wrong_size",
                      "bad_magic", "header_len_huge", "header_only", "zero_rows"])
    raw, certain = npy_bytes(a), True
    if sub == "valid":
        certain = False
    elif sub == "truncate":
        raw = raw[:len(raw) - rng.choice([1, 3, 4, len(raw) // 2])]
    elif sub == "extra":
        raw = raw + bytes(rng.choice([1, 4, 64]))
        certain = False   # numpy reads the declared count and ignores trailing bytes
    elif sub == "shape_more":
        raw = npy_bytes(a, header=fmt(s=[a.shape[0] + rng.choice([1, 7])] + list(a.shape[1:])))
    elif sub == "shape_huge":
        raw = npy_bytes(a, header=fmt(s=[rng.choice(HUGE_INTS)] + list(a.shape[1:])))
    elif sub == "shape_scalar":
        raw = npy_bytes(a, header=fmt(s=[]))
    elif sub == "descr_wrong_size":
        raw = npy_bytes(a, header=fmt(d={"<f4": "<f8", "<i8": "<i4", "<f8": "<f4"}.get(descr, "<f8")))
    elif sub == "bad_magic":
        raw = npy_bytes(a, magic=b"\x93NUMPZ")
    elif sub == "header_len_huge":
        raw = raw[:8] + struct.pack("<H", 0xFFFF) + raw[10:]
    elif sub == "header_only":
        raw = raw[:10 + struct.unpack("<H", raw[8:10])[0]]
    else:
        raw = npy_bytes(a[:0])
    path = os.path.join(case.dir, "data.npy")
    with open(path, "wb") as f:
        f.write(raw)
    return f"npy_file_{sub}", certain, f"{k} as data.npy: {sub} ({len(raw)} bytes)", path


def _write_npz_entries(rng, arrays, case, key, raw):
    entries = [(n + ".npy", raw if n == key else npy_bytes(v)) for n, v in arrays.items()]
    path = os.path.join(case.dir, "data.npz")
    with open(path, "wb") as f:
        f.write(npz_bytes(entries, rng.random() < 0.5))


def d_values(rng, arrays, case):
    arrays = dict(arrays)
    sub = rng.choice(["nan", "inf", "zero_rows", "rows_mismatch", "input_dtype", "int_ids_range", "huge_values"])
    inputs = [k for k in case.seed.inputs if k in arrays]
    k = rng.choice(inputs)
    a = arrays[k].copy()
    certain = True
    case.names.append(k)
    if sub in ("nan", "inf"):
        if a.dtype.kind != "f":
            raise Skip
        a.reshape(-1)[rng.randrange(a.size)] = float("nan") if sub == "nan" else rng.choice([float("inf"), float("-inf")])
        if rng.random() < 0.2:
            a[:] = float("nan")
        arrays[k] = a
    elif sub == "zero_rows":
        arrays = {n: v[:0] for n, v in arrays.items()}
    elif sub == "rows_mismatch":
        arrays[k] = a[: max(0, a.shape[0] - rng.choice([1, 3]))]
        # Calibration reads only the model's inputs: with one input, the arrays it ignores
        # (labels, gt_boxes) may have other lengths.
        certain = not case.calib_target or len(inputs) > 1
    elif sub == "input_dtype":
        target = rng.choice([np.float64, np.float16, np.int32, np.int64, np.uint8, np.bool_, np.complex64, np.uint64])
        arrays[k] = a.astype(target)
        # Another numeric type holding the same values may be converted; complex/bool may not.
        certain = target in (np.complex64, np.bool_) and a.dtype.kind == "f"
    elif sub == "int_ids_range":
        if a.dtype.kind not in "iu":
            raise Skip
        a = a.astype(rng.choice([np.int64, np.uint64]))
        v = rng.choice([2**40, -1 if a.dtype == np.int64 else 2**64 - 1, 10**9])
        a.reshape(-1)[rng.randrange(a.size)] = v
        arrays[k] = a
        # Past any embedding table when the array holds token ids; 2^64-1 fits no int64. Elsewhere (an
        # attention mask) a big or negative number is only a number.
        certain = v == 2**64 - 1 or (k in case.seed.index_inputs and v != -1)
    else:
        if a.dtype.kind != "f":
            raise Skip
        a.reshape(-1)[rng.randrange(a.size)] = rng.choice([3.4e38, -3.4e38, 1e30])
        arrays[k] = a
        certain = False
    write_arrays(rng, arrays, case)
    return f"data_{sub}", certain, f"{k}: {sub}"


def d_labels(rng, arrays, case):
    lk = _label_key(case)
    arrays = dict(arrays)
    y = arrays[lk].copy()
    case.names += [lk, "labels"]
    sub = rng.choice(["out_of_range", "negative", "int64_max", "float", "float_inf", "bool", "two_d", "missing", "uint64_wrap"])
    certain = True
    if sub == "out_of_range":
        y[rng.randrange(len(y))] = case.seed.classes + rng.choice([0, 1, 1000])
    elif sub == "negative":
        y[rng.randrange(len(y))] = rng.choice([-1, -(2**40)])
    elif sub == "int64_max":
        y[rng.randrange(len(y))] = 2**63 - 1
    elif sub == "float":
        y = y.astype(np.float32) + rng.choice([0.0, 0.5])
    elif sub == "float_inf":
        y = y.astype(np.float64)
        y[0] = float("inf")
    elif sub == "bool":
        y = (y % 2).astype(np.bool_)
    elif sub == "two_d":
        y = np.stack([y, y], axis=1) if rng.random() < 0.5 else y[:, None]
    elif sub == "missing":
        del arrays[lk]
    else:
        y = y.astype(np.uint64)
        y[rng.randrange(len(y))] = 2**64 - 1
    if sub != "missing":
        arrays[lk] = y
    write_arrays(rng, arrays, case)
    return f"labels_{sub}", certain, sub


def d_names(rng, arrays, case):
    arrays = dict(arrays)
    sub = rng.choice(["renamed_input", "extra_array", "dup_entry", "no_npy_suffix", "path_in_name"])
    k = rng.choice([x for x in case.seed.inputs if x in arrays])
    certain = True
    case.names.append(k)
    entries = [(n + ".npy", npy_bytes(v)) for n, v in arrays.items()]
    if sub == "renamed_input":
        entries = [((n + "_fuzz.npy") if n + ".npy" == e else e, b) for (e, b), n in zip(entries, arrays)] if False else \
            [(e.replace(k + ".npy", k + "_fuzz.npy") if e == k + ".npy" else e, b) for e, b in entries]
    elif sub == "extra_array":
        entries.append(("fuzz_extra.npy", npy_bytes(np.zeros((3, 2), np.float32))))
        certain = False
    elif sub == "dup_entry":
        entries.append((k + ".npy", npy_bytes(arrays[k][:1])))
    elif sub == "no_npy_suffix":
        entries = [(e[:-4] if e == k + ".npy" else e, b) for e, b in entries]
        certain = False   # numpy accepts entries without the suffix
    else:
        entries.append(("../../fuzz_evil.npy", npy_bytes(np.zeros(2, np.float32))))
        certain = False
    path = os.path.join(case.dir, "data.npz")
    with open(path, "wb") as f:
        f.write(npz_bytes(entries, rng.random() < 0.5))
    return f"names_{sub}", certain, f"{k}: {sub}"


def d_zip(rng, arrays, case):
    compress = rng.random() < 0.6
    data = npz_bytes([(n + ".npy", npy_bytes(v)) for n, v in arrays.items()], compress)
    locals_, centrals, eocd = zip_records(data)
    sub = rng.choice(["payload_flip", "crc_both", "crc_local", "crc_central", "local_header_flip", "central_flip", "eocd_flip",
                      "truncate", "size_huge", "size_mismatch", "method_unknown", "empty_file", "garbage", "append_garbage"])
    certain = True
    if sub == "payload_flip":
        h, s, e = rng.choice([r for r in locals_ if r[2] > r[1]])
        i = rng.randrange(s, e)
        data[i] ^= rng.choice([1, 0x80, 0xFF])
        # The CRC-32 catches any one-byte change of the stored or inflated bytes, but a flip in the
        # unused bits after a deflate stream's last block changes nothing: ask zipfile/numpy.
        certain = None
    elif sub.startswith("crc_"):
        i = rng.randrange(len(locals_))
        if sub in ("crc_both", "crc_local"):
            data[locals_[i][0] + 14] ^= 0x5A
        if sub in ("crc_both", "crc_central"):
            data[centrals[i] + 16] ^= 0x5A
        certain = sub == "crc_both"
    elif sub == "local_header_flip":
        h = rng.choice(locals_)[0]
        data[h + rng.randrange(4, 30)] ^= rng.randrange(1, 256)
        certain = False
    elif sub == "central_flip":
        c = rng.choice(centrals)
        data[c + rng.randrange(4, 46)] ^= rng.randrange(1, 256)
        certain = False
    elif sub == "eocd_flip":
        data[eocd + rng.randrange(4, 22)] ^= rng.randrange(1, 256)
        certain = False
    elif sub == "truncate":
        data = data[: rng.randrange(0, len(data) - 1)]
    elif sub == "size_huge":
        i = rng.randrange(len(locals_))
        v = rng.choice([0xFFFFFFFF, 0x7FFFFFFF, 0xFFFFFFFE])
        struct.pack_into("<I", data, locals_[i][0] + 22, v)
        struct.pack_into("<I", data, centrals[i] + 24, v)
    elif sub == "size_mismatch":
        certain = None   # decided below: a deflate stream ends by itself, so readers may not need the size
        i = rng.randrange(len(locals_))
        which = rng.choice([18, 22])  # compressed / uncompressed size in the local header (+2 in the central one)
        old = struct.unpack_from("<I", data, locals_[i][0] + which)[0]
        new = max(0, old + rng.choice([-1, 1, -100, 100]))
        struct.pack_into("<I", data, locals_[i][0] + which, new)
        struct.pack_into("<I", data, centrals[i] + which + 2, new)
    elif sub == "method_unknown":
        i = rng.randrange(len(locals_))
        m = rng.choice([1, 9, 12, 14, 99])
        struct.pack_into("<H", data, locals_[i][0] + 8, m)
        struct.pack_into("<H", data, centrals[i] + 10, m)
    elif sub == "empty_file":
        data = bytearray()
    elif sub == "garbage":
        data = bytearray(rng.randrange(256) for _ in range(rng.choice([1, 22, 100, 4096])))
    else:
        data = data + bytearray(rng.randrange(256) for _ in range(rng.choice([1, 100])))
        certain = False
    path = os.path.join(case.dir, "data.npz")
    with open(path, "wb") as f:
        f.write(data)
    if certain is None:
        certain = not numpy_reads(path)
    return f"zip_{sub}_{'deflated' if compress else 'stored'}", certain, sub


def numpy_reads(path):
    """Python's zipfile (central-directory CRCs and sizes) and numpy read every array back.

    A local header whose file name differs from the central directory's is only a cosmetic
    inconsistency when the data and its CRC are intact (readers go by the central directory):
    zipfile refuses it, so the names are made to agree and the file is tried again."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        return _numpy_reads_bytes(data)
    except zipfile.BadZipFile as e:
        if "differ" not in str(e):
            return False
    except Exception:
        return False
    try:
        fixed = bytearray(data)
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            for info in z.infolist():
                h = info.header_offset
                n = struct.unpack_from("<H", fixed, h + 26)[0]
                name = info.orig_filename.encode("utf-8")
                if n == len(name):
                    fixed[h + 30:h + 30 + n] = name
        return _numpy_reads_bytes(bytes(fixed))
    except Exception:
        return False


def _numpy_reads_bytes(data):
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        for info in z.infolist():
            z.read(info)   # raises on a bad CRC, a corrupt stream or mismatched headers
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        for k in z.files:
            z[k]
    return True


def d_special(rng, arrays, case):
    sub = rng.choice(["folder", "fifo", "dev_zero", "dev_null", "missing", "symlink_folder"])
    path = os.path.join(case.dir, "data.npz")
    if sub == "folder":
        os.mkdir(path)
    elif sub == "fifo":
        os.mkfifo(path)
    elif sub == "dev_zero":
        path = "/dev/zero"
    elif sub == "dev_null":
        path = "/dev/null"
    elif sub == "missing":
        path = os.path.join(case.dir, "missing.npz")
    else:
        os.mkdir(os.path.join(case.dir, "dir"))
        os.symlink("dir", path)
    case.names.append(path)
    return f"special_data_{sub}", True, path, path


def write_arrays(rng, arrays, case):
    path = os.path.join(case.dir, "data.npz")
    with open(path, "wb") as f:
        f.write(npz_bytes([(n + ".npy", npy_bytes(v)) for n, v in arrays.items()], rng.random() < 0.5))


def d_bytes(rng, arrays, case):
    data = npz_bytes([(n + ".npy", npy_bytes(v)) for n, v in arrays.items()], rng.random() < 0.5)
    sub, out, _ = byte_mutation(rng, data, lambda b: True)
    path = os.path.join(case.dir, "data.npz")
    with open(path, "wb") as f:
        f.write(out)
    # Truncation loses the end record: certainly invalid. A flip is certainly invalid when Python's
    # zipfile and numpy cannot read the file back (CRC, stream or header errors); one in a field
    # nobody reads (time stamps, version made by) leaves a valid file.
    return f"npz_bytes_{sub}", sub == "truncate" or not numpy_reads(path), sub


DATA_MUTATIONS = [(d_npy_header, 5), (d_values, 5), (d_labels, 4), (d_names, 2), (d_zip, 6), (d_special, 1), (d_bytes, 3),
                  (d_npy_file, 3)]


# ---------------------------------------------------------------------------------------------
# Building a case


def weighted(rng, items):
    total = sum(w for _, w in items)
    x = rng.random() * total
    for item, w in items:
        x -= w
        if x < 0:
            return item
    return items[-1][0]


def build_case(seed_value, index, work, mpq, seeds, kinds_filter=None, only="all"):
    for attempt in range(50):
        rng = random.Random(f"{seed_value}:{index}:{attempt}")
        seed = weighted(rng, [(s, SEED_WEIGHTS[s.name]) for s in seeds])
        case = Case(index, seed, None, None, None)
        case.dir = os.path.join(work, f"case-{index}")
        shutil.rmtree(case.dir, ignore_errors=True)
        os.makedirs(case.dir)
        try:
            target = rng.random()
            if only == "model":
                target = 0.03 + target * 0.52
            elif only == "data":
                target = 0.55 + target * 0.45
            if target < 0.03:
                case.kind, case.certain, case.detail = "control", False, "unmutated"
                copy_weights(case)
                case.model = os.path.join(case.dir, "model.onnx")
                with open(case.model, "wb") as f:
                    f.write(seed.model_bytes)
                case.data = valid_data(case)
            elif target < 0.55:
                m = onnx.ModelProto()
                m.CopyFrom(seed.proto)
                if rng.random() < 0.1:
                    fn = "model_bytes"
                    sub, data, certain = byte_mutation(rng, seed.model_bytes, model_parse_fails)
                    kind, detail = f"model_bytes_{sub}", f"{sub} ({len(data)} of {len(seed.model_bytes)} bytes)"
                    copy_weights(case)
                    case.model = os.path.join(case.dir, "model.onnx")
                    with open(case.model, "wb") as f:
                        f.write(data)
                elif rng.random() < 0.03:
                    sub = rng.choice(["folder", "empty", "dev_zero", "fifo", "missing"])
                    case.model = {"folder": case.dir, "empty": os.path.join(case.dir, "model.onnx"), "dev_zero": "/dev/zero",
                                  "fifo": os.path.join(case.dir, "model.onnx"), "missing": os.path.join(case.dir, "none.onnx")}[sub]
                    if sub == "empty":
                        open(case.model, "wb").close()
                    if sub == "fifo":
                        os.mkfifo(case.model)
                    kind, certain, detail = f"special_model_{sub}", True, case.model
                    case.names.append(case.model)
                else:
                    fn = weighted(rng, MODEL_MUTATIONS)
                    kind, certain, detail = fn(rng, m, case)
                    if fn is not m_external:
                        copy_weights(case)
                    case.model = write_model(case, m)
                case.kind, case.certain, case.detail = kind, certain, detail
                case.data = valid_data(case)
                case.names.append(case.model)
            else:
                fn = weighted(rng, DATA_MUTATIONS)
                calib_target = rng.random() < 0.15
                arrays = seed.calib_arrays if calib_target else seed.arrays
                if calib_target and fn is d_labels:
                    raise Skip   # calibration ignores labels
                case.calib_target = calib_target
                res = fn(rng, arrays, case)
                kind, certain, detail = res[:3]
                path = res[3] if len(res) > 3 else os.path.join(case.dir, "data.npz")
                copy_weights(case)
                case.model = os.path.join(case.dir, "model.onnx")
                with open(case.model, "wb") as f:
                    f.write(seed.model_bytes)
                if calib_target:
                    case.calib = path
                    case.data = valid_data(case)
                    kind = "calib_" + kind
                else:
                    case.data = path
                case.kind, case.certain, case.detail = kind, certain, detail
                case.names.append(path)
        except Skip:
            shutil.rmtree(case.dir, ignore_errors=True)
            continue
        if kinds_filter and not re.search(kinds_filter, case.kind):
            shutil.rmtree(case.dir, ignore_errors=True)
            continue
        # The command.
        is_model_case = not (case.kind.startswith(("calib_",)) or case.kind.split("_")[0] in
                             ("npy", "data", "labels", "names", "zip", "npz") or case.kind.startswith("special_data"))
        r = rng.random()
        if case.calib:
            case.args = ["eval", case.model, "--data", case.data, "--precision", "int8", "--calibration", case.calib] + seed.extra
        elif is_model_case and r < 0.45:
            case.args = ["inspect", case.model] + seed.inspect_extra
        else:
            case.args = ["eval", case.model, "--data", case.data] + seed.extra
            if r > 0.9:
                case.calib = valid_data(case, "calib")
                case.args += ["--precision", "int8", "--calibration", case.calib]
        case.args = [mpq] + case.args
        return case
    return None


# ---------------------------------------------------------------------------------------------
# Running and classifying


def limit_child(memory_mb):
    def f():
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if memory_mb:
            b = memory_mb * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_AS, (b, b))
    return f


def run_case(case, timeout, memory_mb, tensor_limit_mb):
    env = dict(os.environ)
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    if tensor_limit_mb:
        env["MPQ_MAX_TENSOR_BYTES"] = str(tensor_limit_mb * 1024 * 1024)
    start = time.time()
    p = subprocess.Popen(case.args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env,
                         start_new_session=True, preexec_fn=limit_child(memory_mb), cwd=case.dir)
    timed_out = False
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, err = p.communicate()
    return p.returncode, timed_out, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"), time.time() - start


FAILURES = ("signal", "timeout", "exit1", "silent", "exit2-format", "unexpected", "rejects-valid")


def classify(case, rc, timed_out, err):
    if timed_out:
        return "timeout"
    if rc < 0:
        return "signal"
    if rc == 1:
        return "exit1"
    if rc == 0:
        if case.kind == "control":
            return "ok-exit0"
        return "silent" if case.certain else "ok-exit0"
    if rc == 2:
        if case.kind == "control":
            return "rejects-valid"
        if not err.strip() or not err.lstrip().startswith("error:"):
            return "exit2-format"
        return "ok-exit2"
    return "unexpected"


def first_line(err, case):
    line = next((l for l in err.splitlines() if l.strip()), "")
    line = line.replace(case.dir, "CASE").replace(os.path.dirname(case.dir), "WORK")
    return re.sub(r"\d+", "N", re.sub(r"0x[0-9a-fA-F]+", "0x", line))[:200]


def save_repro(out, case, outcome, rc, err, stdout, secs):
    key = (case.kind, outcome, first_line(err, case))
    h = hashlib.sha1(repr(key).encode()).hexdigest()[:10]
    dest = os.path.join(out, "repro", f"{case.kind}-{outcome}-{h}")
    if os.path.exists(dest):
        return dest, False
    shutil.copytree(case.dir, dest, symlinks=True, ignore=lambda d, names: [n for n in names if _is_special(os.path.join(d, n))])
    args = [a.replace(case.dir, "$DIR") for a in case.args]
    with open(os.path.join(dest, "cmd.sh"), "w") as f:
        f.write("#!/bin/sh\n# %s (%s): %s\nDIR=$(cd \"$(dirname \"$0\")\" && pwd)\nMPQ=${MPQ:-%s}\n" % (case.kind, outcome, case.detail, case.args[0]))
        f.write(" ".join(["\"$MPQ\""] + [shq(a) for a in args[1:]]) + "\n")
    os.chmod(os.path.join(dest, "cmd.sh"), 0o755)
    with open(os.path.join(dest, "stderr.txt"), "w") as f:
        f.write(err)
    with open(os.path.join(dest, "case.json"), "w") as f:
        json.dump({"case": case.index, "seed_model": case.seed.name, "kind": case.kind, "certain_invalid": case.certain,
                   "detail": case.detail, "outcome": outcome, "rc": rc, "seconds": round(secs, 2), "args": args,
                   "stdout": stdout[-2000:]}, f, indent=1)
    return dest, True


def _is_special(p):
    import stat
    try:
        st = os.lstat(p)
    except OSError:
        return True
    return not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode) or stat.S_ISLNK(st.st_mode))


def shq(a):
    if a.startswith("$DIR"):
        return '"' + a + '"'
    return "'" + a.replace("'", "'\\''") + "'" if re.search(r"[^\w@%+=:,./-]", a) else a


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mpq", default=os.path.join(ROOT, ".build", "release", "mpq"), help="the binary (default: the release build)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--runs", type=int, default=0, help="number of cases (0: until --budget-seconds)")
    ap.add_argument("--budget-seconds", type=float, default=0, help="stop starting cases after this many seconds")
    ap.add_argument("--start", type=int, default=0, help="first case index")
    ap.add_argument("--case", type=int, action="append", help="run only these case indices (replay)")
    ap.add_argument("--timeout", type=float, default=10.0, help="seconds per run (generous: shared machines)")
    ap.add_argument("--memory-mb", type=int, default=8192, help="address-space limit per run (0: none)")
    ap.add_argument("--tensor-limit-mb", type=int, default=512,
                    help="MPQ_MAX_TENSOR_BYTES for the runs (0: the binary's default, a quarter of memory): the same checks "
                         "with a smaller number, so that an absurd size is refused before it can take a shared machine's memory; "
                         "an allocation past --memory-mb then means a size that bypassed the limit")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--target", choices=["all", "model", "data"], default="all", help="mutate models, data or both")
    ap.add_argument("--kinds", help="regular expression: only mutation kinds matching it")
    ap.add_argument("--out", help="folder for reproducers and summary.json (default: a temp folder)")
    ap.add_argument("--log", help="also append one JSON line per case here")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args()
    if not a.runs and not a.budget_seconds and not a.case:
        a.runs = 200
    if not os.access(a.mpq, os.X_OK):
        sys.exit(f"fuzz: no executable mpq at {a.mpq} (swift build -c release --product mpq)")
    mpq = os.path.abspath(a.mpq)
    out = os.path.abspath(a.out or tempfile.mkdtemp(prefix="mpq-fuzz-"))
    os.makedirs(out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="mpq-fuzz-work-")
    for s in SEEDS:
        s.load()
    start = time.time()
    counts = collections.Counter()
    unnamed = collections.Counter()   # exit 2 whose message names none of case.names (a note, not a failure)
    per_kind = collections.defaultdict(collections.Counter)
    repros = []
    lock = threading.Lock()
    log = open(a.log, "a") if a.log else None
    indices = iter(a.case) if a.case else (iter(range(a.start, a.start + a.runs)) if a.runs else iter(range(a.start, 2**62)))
    stop = threading.Event()

    def next_index():
        with lock:
            if stop.is_set():
                return None
            if a.budget_seconds and time.time() - start > a.budget_seconds:
                return None
            return next(indices, None)

    def worker():
        while True:
            i = next_index()
            if i is None:
                return
            case = build_case(a.seed, i, work, mpq, SEEDS, a.kinds, a.target)
            if case is None:
                continue
            rc, to, so, se, secs = run_case(case, a.timeout, a.memory_mb, a.tensor_limit_mb)
            outcome = classify(case, rc, to, se)
            with lock:
                counts[outcome] += 1
                per_kind[case.kind][outcome] += 1
                n = sum(counts.values())
                if outcome in FAILURES:
                    dest, new = save_repro(out, case, outcome, rc, se, so, secs)
                    if new:
                        repros.append(dest)
                        print(f"FAIL case {i}: {case.kind} -> {outcome} (rc {rc}): {case.detail}\n  {first_line(se, case)}\n  {dest}",
                              file=sys.stderr, flush=True)
                if outcome == "ok-exit2" and case.names and not any(
                        n and (n in se or os.path.basename(n) in se) for n in case.names):
                    unnamed[case.kind] += 1
                    if unnamed[case.kind] == 1:
                        os.makedirs(os.path.join(out, "unnamed"), exist_ok=True)
                        with open(os.path.join(out, "unnamed", case.kind + ".txt"), "w") as f:
                            f.write(f"{case.detail}\nnames: {case.names}\n{' '.join(case.args)}\n{se}")
                if log:
                    log.write(json.dumps({"case": i, "seed": case.seed.name, "kind": case.kind, "certain": case.certain,
                                          "outcome": outcome, "rc": rc, "s": round(secs, 2), "err": first_line(se, case)}) + "\n")
                    log.flush()
                if not a.quiet and n % 100 == 0:
                    bad = sum(counts[f] for f in FAILURES)
                    print(f"fuzz: {n} runs, {time.time() - start:.0f} s, {bad} failing", file=sys.stderr, flush=True)
            shutil.rmtree(case.dir, ignore_errors=True)

    # SIGTERM or SIGINT (also ignored-by-default SIGINT of a background job): finish the runs in
    # flight, then write the summary as usual.
    def on_signal(signum, frame):
        if not stop.is_set():
            print(f"fuzz: signal {signum}, stopping after the runs in flight", file=sys.stderr, flush=True)
        stop.set()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    threads = [threading.Thread(target=worker, daemon=True) for _ in range(max(1, a.jobs))]
    for t in threads:
        t.start()
    for t in threads:
        while t.is_alive():
            t.join(0.5)
    elapsed = time.time() - start
    shutil.rmtree(work, ignore_errors=True)
    runs = sum(counts.values())
    failing = sum(counts[f] for f in FAILURES)
    summary = {"seed": a.seed, "runs": runs, "seconds": round(elapsed, 1), "binary": mpq, "timeout": a.timeout,
               "memory_mb": a.memory_mb, "tensor_limit_mb": a.tensor_limit_mb,
               "outcomes": dict(sorted(counts.items())), "failing": failing,
               "exit2_naming_none_of_the_mutated_things": dict(sorted(unnamed.items())), "reproducers": sorted(os.path.relpath(r, out) for r in repros),
               "kinds": {k: dict(sorted(v.items())) for k, v in sorted(per_kind.items())}}
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(f"\nfuzz: seed {a.seed}, {runs} runs in {elapsed:.1f} s ({runs / max(elapsed, 1e-9):.1f}/s), binary {mpq}")
    print("outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    if not a.quiet:
        print("per mutation kind:")
        for k, v in sorted(per_kind.items()):
            print(f"  {k:40s} " + ", ".join(f"{o} {c}" for o, c in sorted(v.items())))
    if unnamed:
        print(f"note: {sum(unnamed.values())} exit-2 messages name none of the mutated things (file, tensor, node, "
              f"array); examples under {out}/unnamed: " + ", ".join(f"{k} {v}" for k, v in sorted(unnamed.items())))
    if failing:
        print(f"FAILED: {failing} failing runs, {len(repros)} distinct reproducers under {out}/repro:")
        for r in repros:
            print("  " + os.path.relpath(r, out))
        sys.exit(1)
    print(f"OK: no signal, timeout, exit 1 or silent acceptance (summary: {out}/summary.json)")


if __name__ == "__main__":
    main()
