#!/usr/bin/env python3
"""Train a MobileNetV2-shaped CNN on real data (scikit-learn's digits) and export it to ONNX: the
trained depthwise-heavy model issue 14's `--objective latency` acceptance asks for, where no
pretrained MobileNet is obtainable offline.

    /work/venv/bin/python benchmarks/models/train_mobilenetv2_digits.py --out out/bench/mobilenetv2_digits

The network is the MobileNetV2 of benchmarks/models/resnet_shaped.py (width 1.0: a 3x3/2 stem
of 32, the 17 inverted-residual blocks, 1x1 to 1280, global average pool, a 10-class linear
head; ReLU6; BatchNorm after every Conv, kept as separate nodes as PyTorch's eval-mode export
writes them), about 0.3 G MACs at 224x224. Its input is each 8x8 digit scaled to [0, 1],
upsampled bilinearly to --size and repeated over three channels, then normalised (x - 0.5) / 0.25.

Splits of the 1,797 images (shuffled with --seed): --calib for calibration, --search for the
search, --holdout for validation, the rest (about 1,100) for training, with random shifts of up
to 1/8 of the image and small brightness changes as augmentation. Writes OUT/model.onnx
(opset 17, input `input` [N, 3, S, S], output `logits` [N, 10], dynamic batch) and
OUT/calib.npz, OUT/search.npz, OUT/holdout.npz (`input` float32, `labels` int64 [N]), and
OUT/train.json (epochs, seconds, holdout top-1 in PyTorch and in ONNX Runtime).

Needs torch (torch==2.13.0+cpu), onnx, onnxruntime, scikit-learn. Deterministic for a seed on
one machine (torch.use_deterministic_algorithms, one intra-op thread per --threads).
"""
import argparse
import json
import os
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.datasets import load_digits

# (expansion t, channels c, repeats n, first stride s): MobileNetV2's table.
BLOCKS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


def conv_bn(cin, cout, k, stride, groups=1, relu6=True):
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if relu6:
        layers.append(nn.ReLU6())
    return layers


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, t):
        super().__init__()
        hidden = cin * t
        layers = [] if t == 1 else conv_bn(cin, hidden, 1, 1)
        layers += conv_bn(hidden, hidden, 3, stride, groups=hidden) + conv_bn(hidden, cout, 1, 1, relu6=False)
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = self.body(x)
        return x + y if self.residual else y


class MobileNetV2(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        layers, cin = conv_bn(3, 32, 3, 2), 32
        for t, c, n, s in BLOCKS:
            for i in range(n):
                layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        layers += conv_bn(cin, 1280, 1, 1)
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(1280, classes)

    def forward(self, x):
        x = self.features(x)
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.head(x)


def images(raw, size):
    """8x8 digits (0-16) -> normalised [N, 3, size, size] float32."""
    x = torch.from_numpy(raw.reshape(-1, 1, 8, 8).astype(np.float32) / 16.0)
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return ((x - 0.5) / 0.25).repeat(1, 3, 1, 1)


def augment(x, gen):
    """Random shifts (up to 1/8 of the side, zero-filled at the background level) and gains."""
    n, _, s, _ = x.shape
    m = s // 8
    pad = F.pad(x, (m, m, m, m), value=-2.0)  # (0 - 0.5) / 0.25: the background
    out = torch.empty_like(x)
    offs = torch.randint(0, 2 * m + 1, (n, 2), generator=gen)
    for i in range(n):
        dy, dx = int(offs[i, 0]), int(offs[i, 1])
        out[i] = pad[i, :, dy:dy + s, dx:dx + s]
    gain = 1 + 0.1 * (torch.rand((n, 1, 1, 1), generator=gen) - 0.5)
    return out * gain


def accuracy(model, x, y, batch=64):
    model.eval()
    hits = 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            hits += int((model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum())
    return 100.0 * hits / len(x)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="out/bench/mobilenetv2_digits")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=4e-3)
    ap.add_argument("--calib", type=int, default=100)
    ap.add_argument("--search", type=int, default=300)
    ap.add_argument("--holdout", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    gen = torch.Generator().manual_seed(args.seed)

    digits = load_digits()
    order = np.random.default_rng(args.seed).permutation(len(digits.target))
    raw, labels = digits.data[order], digits.target[order].astype(np.int64)
    a, b, c = args.calib, args.calib + args.search, args.calib + args.search + args.holdout
    splits = {"calib": slice(0, a), "search": slice(a, b), "holdout": slice(b, c), "train": slice(c, None)}
    x = {k: images(raw[s], args.size) for k, s in splits.items()}
    y = {k: torch.from_numpy(labels[s]) for k, s in splits.items()}

    model = MobileNetV2()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    steps = args.epochs * ((len(x["train"]) + args.batch - 1) // args.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=steps)
    t0 = time.time()
    log = []
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(len(x["train"]), generator=gen)
        total = 0.0
        for i in range(0, len(perm), args.batch):
            idx = perm[i:i + args.batch]
            loss = F.cross_entropy(model(augment(x["train"][idx], gen)), y["train"][idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss) * len(idx)
        acc = accuracy(model, x["search"], y["search"])
        log.append({"epoch": epoch + 1, "loss": round(total / len(perm), 4), "search_top1": round(acc, 2),
                    "seconds": round(time.time() - t0, 1)})
        print(json.dumps(log[-1]), flush=True)

    model.eval()
    path = f"{args.out}/model.onnx"
    torch.onnx.export(model, x["calib"][:1], path, input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}}, opset_version=17, dynamo=False)
    for k in ("calib", "search", "holdout"):
        np.savez(f"{args.out}/{k}.npz", input=x[k].numpy(), labels=y[k].numpy())

    import onnxruntime as ort
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    logits = np.concatenate([sess.run(None, {"input": x["holdout"][i:i + 64].numpy()})[0]
                             for i in range(0, len(x["holdout"]), 64)])
    ort_top1 = float((logits.argmax(1) == y["holdout"].numpy()).mean() * 100)
    info = {"epochs": log, "train_images": len(x["train"]), "size": args.size, "seed": args.seed,
            "holdout_top1_torch": round(accuracy(model, x["holdout"], y["holdout"]), 2),
            "holdout_top1_ort": round(ort_top1, 2), "seconds": round(time.time() - t0, 1)}
    json.dump(info, open(f"{args.out}/train.json", "w"), indent=1)
    print(json.dumps(info))


if __name__ == "__main__":
    main()
