"""Short-sentence subset of the MiniLM splits written by minilm.py, for quick searches:
sentences of at most 40 tokens, 100 calibration / 200 search / 200 holdout, padded to 40.

    python benchmarks/models/minilm_subset.py out/minilm
"""
import sys

import numpy as np

src = sys.argv[1] if len(sys.argv) > 1 else "out/minilm"
for split, n in [("calib", 100), ("search", 200), ("holdout", 200)]:
    d = np.load(f"{src}/{split}.npz")
    idx = np.where(d["attention_mask"].sum(1) <= 40)[0][:n]
    np.savez(f"{src}/small_{split}.npz", **{k: d[k][idx][:, :40] for k in d.keys()})
    print(split, len(idx))
