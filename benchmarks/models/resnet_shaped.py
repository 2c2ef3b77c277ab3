#!/usr/bin/env python3
"""Generate a ResNet-18-shaped or MobileNetV2-shaped CNN with random weights (onnx + numpy only).

    /work/venv/bin/python benchmarks/models/resnet_shaped.py --arch resnet18 --out build/bench/resnet18
    /work/venv/bin/python benchmarks/models/resnet_shaped.py --arch mobilenetv2 --out build/bench/mobilenetv2

Writes OUT/model.onnx, OUT/calib.npz and OUT/holdout.npz. The models exist for latency
measurements: the weights are random (He-init Conv, Gemm), the BatchNormalization nodes are
kept as separate nodes (as a PyTorch export in eval mode writes them) with mild random
statistics, the input is `input` [N, 3, H, W] float32 with a dynamic batch dim `N`, opset 17.
The data are random images with per-image, per-channel brightness and contrast and
low-frequency structure plus pixel noise (roughly the statistics of a normalised ImageNet
image); there are no labels (the benchmark compares against the FP32 model's argmax instead).

With random weights and content-free images, every image gives nearly the same pooled
features and the same argmax. So that top-1 agreement means something, the classifier head
is standardised on the calibration images: the feature mean and standard deviation after
Flatten are measured with onnxruntime (the only non-numpy step; skipped with
--no-fit-head or when onnxruntime is missing) and folded into the Gemm
(W' = W / std, b' = -W' mean), so the logits differ from image to image.

- resnet18: Conv7x7/2 + BN + Relu, MaxPool 3x3/2, 4 stages of 2 BasicBlocks (64, 128, 256,
  512 channels; Conv3x3 + BN + Relu, Conv3x3 + BN, 1x1/2 Conv + BN shortcut where the shape
  changes, residual Add, Relu), GlobalAveragePool, Flatten, Gemm. 1.82 G MACs at 224x224.
- resnet50: the same stem, 4 stages of Bottleneck blocks [3, 4, 6, 3] (1x1 reduce + BN + Relu,
  3x3 (stride here) + BN + Relu, 1x1 expand to 4x width + BN, 1x1 shortcut + BN where the shape
  changes, Add, Relu), 53 Conv + 1 Gemm, about 4.1 G MACs at 224x224 (activation-cache benchmark).
- mobilenetv2: Conv3x3/2 + BN + Clip(0, 6), 17 inverted-residual blocks (1x1 expand + BN + Clip,
  3x3 depthwise + BN + Clip, 1x1 project + BN, residual Add when stride 1 and same width),
  Conv1x1 1280 + BN + Clip, GlobalAveragePool, Flatten, Gemm. About 0.3 G MACs at 224x224.
"""
import argparse
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


class Builder:
    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits = [], []
        self.count = 0

    def name(self, prefix):
        self.count += 1
        return f"{prefix}_{self.count}"

    def init(self, prefix, array):
        n = self.name(prefix)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array), n))
        return n

    def conv(self, x, cin, cout, k, stride=1, group=1):
        fan_in = cin // group * k * k
        w = (self.rng.standard_normal((cout, cin // group, k, k)) * np.sqrt(2.0 / fan_in)).astype(np.float32)
        y = self.name("conv")
        self.nodes.append(helper.make_node(
            "Conv", [x, self.init("w", w)], [y], name=y, kernel_shape=[k, k], strides=[stride, stride],
            pads=[k // 2] * 4, group=group))
        return y

    def bn(self, x, c, gamma_scale=1.0):
        r = self.rng
        gamma = (gamma_scale * r.uniform(0.5, 1.5, c)).astype(np.float32)
        beta = r.normal(0.0, 0.1, c).astype(np.float32)
        mean = r.normal(0.0, 0.1, c).astype(np.float32)
        var = r.uniform(0.5, 1.5, c).astype(np.float32)
        y = self.name("bn")
        self.nodes.append(helper.make_node(
            "BatchNormalization", [x, self.init("gamma", gamma), self.init("beta", beta),
                                   self.init("mean", mean), self.init("var", var)], [y],
            name=y, epsilon=1e-5))
        return y

    def op(self, op_type, inputs, **attrs):
        y = self.name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [y], name=y, **attrs))
        return y

    def relu6(self, x):
        if not hasattr(self, "_clip"):
            self._clip = (self.init("clip_min", np.array(0.0, np.float32)),
                          self.init("clip_max", np.array(6.0, np.float32)))
        return self.op("Clip", [x, *self._clip])

    def head(self, x, c, classes):
        x = self.op("GlobalAveragePool", [x])
        x = self.op("Flatten", [x], axis=1)
        w = (self.rng.standard_normal((classes, c)) * np.sqrt(1.0 / c)).astype(np.float32)
        b = np.zeros(classes, np.float32)
        y = "logits"
        self.nodes.append(helper.make_node("Gemm", [x, self.init("fc_w", w), self.init("fc_b", b)], [y],
                                           name="fc", transB=1))
        return y


def resnet18(b, classes):
    x = b.op("Relu", [b.bn(b.conv("input", 3, 64, 7, 2), 64)])
    x = b.op("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    cin = 64
    for cout, stride in [(64, 1), (128, 2), (256, 2), (512, 2)]:
        for blk in range(2):
            s = stride if blk == 0 else 1
            y = b.op("Relu", [b.bn(b.conv(x, cin, cout, 3, s), cout)])
            y = b.bn(b.conv(y, cout, cout, 3, 1), cout, gamma_scale=0.5)
            short = x if (s == 1 and cin == cout) else b.bn(b.conv(x, cin, cout, 1, s), cout)
            x = b.op("Relu", [b.op("Add", [y, short])])
            cin = cout
    return b.head(x, 512, classes)


def resnet50(b, classes):
    """Bottleneck blocks [3, 4, 6, 3] (1x1 reduce, 3x3, 1x1 expand x4), stride in the 3x3."""
    x = b.op("Relu", [b.bn(b.conv("input", 3, 64, 7, 2), 64)])
    x = b.op("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    cin = 64
    for width, blocks, stride in [(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)]:
        cout = 4 * width
        for blk in range(blocks):
            s = stride if blk == 0 else 1
            y = b.op("Relu", [b.bn(b.conv(x, cin, width, 1), width)])
            y = b.op("Relu", [b.bn(b.conv(y, width, width, 3, s), width)])
            y = b.bn(b.conv(y, width, cout, 1), cout, gamma_scale=0.5)
            short = x if (s == 1 and cin == cout) else b.bn(b.conv(x, cin, cout, 1, s), cout)
            x = b.op("Relu", [b.op("Add", [y, short])])
            cin = cout
    return b.head(x, cin, classes)


def mobilenetv2(b, classes):
    x = b.relu6(b.bn(b.conv("input", 3, 32, 3, 2), 32))
    cin = 32
    # (expansion t, width c, repeats n, first stride s), as in the MobileNetV2 paper
    for t, c, n, s in [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                       (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]:
        for i in range(n):
            stride = s if i == 0 else 1
            hidden = cin * t
            y = x
            if t != 1:
                y = b.relu6(b.bn(b.conv(y, cin, hidden, 1), hidden))
            y = b.relu6(b.bn(b.conv(y, hidden, hidden, 3, stride, group=hidden), hidden))
            y = b.bn(b.conv(y, hidden, c, 1), c, gamma_scale=0.5)
            if stride == 1 and cin == c:
                y = b.op("Add", [y, x])
            x, cin = y, c
    x = b.relu6(b.bn(b.conv(x, cin, 1280, 1), 1280))
    return b.head(x, 1280, classes)


def images(rng, n, size):
    """Per-image/channel offset and contrast, 7x7 low-frequency pattern upsampled, pixel noise."""
    low = rng.standard_normal((n, 3, 7, 7))
    rep = -(-size // 7)
    smooth = np.repeat(np.repeat(low, rep, axis=2), rep, axis=3)[:, :, :size, :size]
    offset = rng.normal(0.0, 0.5, (n, 3, 1, 1))
    contrast = rng.uniform(0.3, 1.0, (n, 3, 1, 1))
    x = offset + contrast * (0.8 * smooth + 0.6 * rng.standard_normal((n, 3, size, size)))
    return x.astype(np.float32)


def fit_head(model, calib):
    try:
        import onnxruntime as ort
    except ImportError:
        print("onnxruntime missing: classifier head left random (argmax may not vary)")
        return
    g = model.graph
    gemm = next(n for n in g.node if n.op_type == "Gemm")
    feat = gemm.input[0]
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    probe.graph.output.append(helper.make_tensor_value_info(feat, TensorProto.FLOAT, None))
    sess = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    f = np.concatenate([sess.run([feat], {"input": calib[i:i + 8]})[0] for i in range(0, len(calib), 8)])
    mean, std = f.mean(0), f.std(0)
    std = np.maximum(std, 0.25 * np.median(std) + 1e-6)  # near-constant features: no blow-up
    inits = {t.name: t for t in g.initializer}
    w = numpy_helper.to_array(inits[gemm.input[1]]) / std[None, :]
    b = -(w @ mean)
    inits[gemm.input[1]].CopyFrom(numpy_helper.from_array(w.astype(np.float32), gemm.input[1]))
    inits[gemm.input[2]].CopyFrom(numpy_helper.from_array(b.astype(np.float32), gemm.input[2]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", choices=["resnet18", "resnet50", "mobilenetv2"], default="resnet18")
    ap.add_argument("--out", required=True, help="output folder (not committed)")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--classes", type=int, default=1000)
    ap.add_argument("--calib", type=int, default=32, help="calibration images")
    ap.add_argument("--holdout", type=int, default=32, help="holdout images")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-fit-head", action="store_true", help="keep the random Gemm (numpy only)")
    args = ap.parse_args()

    b = Builder(args.seed)
    out = {"resnet18": resnet18, "resnet50": resnet50, "mobilenetv2": mobilenetv2}[args.arch](b, args.classes)
    graph = helper.make_graph(
        b.nodes, f"{args.arch}_shaped",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, args.size, args.size])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, ["N", args.classes])], b.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="mpq benchmarks/models/resnet_shaped.py")
    model.ir_version = 8
    onnx.checker.check_model(model)

    rng = np.random.default_rng(args.seed + 1)
    calib = images(rng, args.calib, args.size)
    holdout = images(rng, args.holdout, args.size)
    if not args.no_fit_head:
        fit_head(model, calib)
    os.makedirs(args.out, exist_ok=True)
    onnx.save(model, os.path.join(args.out, "model.onnx"))
    np.savez(os.path.join(args.out, "calib.npz"), input=calib)
    np.savez(os.path.join(args.out, "holdout.npz"), input=holdout)
    convs = sum(n.op_type == "Conv" for n in b.nodes)
    print(f"{args.arch}: {len(b.nodes)} nodes, {convs} Conv -> {args.out}/model.onnx, calib.npz "
          f"({args.calib}), holdout.npz ({args.holdout})")


if __name__ == "__main__":
    main()
