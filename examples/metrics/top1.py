#!/usr/bin/env python3
"""A user metric for `mpq ... --metric-command` (docs/metrics.md): top-1 accuracy.

mpq runs it as `CMD OUTPUTS.npz DATA.npz REFERENCE.npz`:
  OUTPUTS.npz    every graph output of the evaluated model, rows in data order
  DATA.npz       the evaluated split's arrays (inputs, `labels`, anything else in the file)
  REFERENCE.npz  the FP32 model's outputs on the same rows
It prints one score per sample in points (higher is better) as a JSON array; a split-level
metric prints {"score": x} instead.

    mpq eval model.onnx --data holdout.npz --metric-command "python3 examples/metrics/top1.py"
"""
import json
import sys

import numpy as np


def main():
    outputs_path, data_path, _reference_path = sys.argv[1:4]
    outputs = np.load(outputs_path)
    data = np.load(data_path)
    # The first graph output by name, as a classifier's logits [N, C].
    logits = outputs[sorted(outputs.files)[0]]
    labels = data["labels"]
    hits = np.argmax(logits.reshape(len(logits), -1), axis=1) == labels
    json.dump([100.0 if h else 0.0 for h in hits], sys.stdout)


if __name__ == "__main__":
    main()
