import CKernels
import Foundation
import ONNX

enum NormalizationOps {
    static let table: [String: OpEntry] = [
        "BatchNormalization": OpEntry(since: 1) { node, inputs, _ in
            if node.int("training_mode", default: 0) != 0 {
                let outs = try BatchNormalizationTraining(
                    x: try node.required(inputs, 0, "X"), scale: try node.required(inputs, 1, "scale"),
                    b: try node.required(inputs, 2, "B"), inputMean: try node.required(inputs, 3, "input_mean"),
                    inputVar: try node.required(inputs, 4, "input_var"), epsilon: node.float("epsilon", default: 1e-5),
                    momentum: node.float("momentum", default: 0.9))
                return Array(outs.prefix(max(1, node.outputs.count)))
            }
            return [try BatchNormalization(x: try node.required(inputs, 0, "X"),
                                           scale: try node.required(inputs, 1, "scale"),
                                           b: try node.required(inputs, 2, "B"),
                                           inputMean: try node.required(inputs, 3, "input_mean"),
                                           inputVar: try node.required(inputs, 4, "input_var"),
                                           epsilon: node.float("epsilon", default: 1e-5))]
        },
        "InstanceNormalization": OpEntry(since: 1) { node, inputs, _ in
            [try InstanceNormalization(x: try node.required(inputs, 0, "input"),
                                       scale: try node.required(inputs, 1, "scale"),
                                       b: try node.required(inputs, 2, "B"),
                                       epsilon: node.float("epsilon", default: 1e-5))]
        },
        "LayerNormalization": OpEntry(since: 17) { node, inputs, _ in
            let (y, mean, invStd) = try LayerNormalization(x: try node.required(inputs, 0, "X"),
                                                           scale: try node.required(inputs, 1, "Scale"),
                                                           b: inputs.count > 2 ? inputs[2] : nil,
                                                           axis: node.int("axis", default: -1),
                                                           epsilon: node.float("epsilon", default: 1e-5))
            return Array([y, mean, invStd].prefix(max(1, node.outputs.count)))
        },
        "LRN": OpEntry(since: 1) { node, inputs, _ in
            guard let size = node.int("size") else { throw OpError("LRN requires the size attribute") }
            return [try LRN(x: try node.required(inputs, 0, "X"), alpha: node.float("alpha", default: 1e-4),
                            beta: node.float("beta", default: 0.75), bias: node.float("bias", default: 1),
                            size: size)]
        },
    ]

    /// ONNX BatchNormalization in inference mode: per channel,
    /// `y = (x - mean) / sqrt(var + epsilon) * scale + B`, folded into one multiply-add.
    static func BatchNormalization(x: Tensor, scale: Tensor, b: Tensor, inputMean: Tensor, inputVar: Tensor,
                                   epsilon: Float) throws -> Tensor {
        try checkBatchNormInputs(x, scale, b, inputMean, inputVar)
        let c = x.shape[1]
        var mul = [Float](repeating: 0, count: c), add = mul
        for i in 0..<c {
            mul[i] = scale.floats[i] / (inputVar.floats[i] + epsilon).squareRoot()
            add[i] = b.floats[i] - inputMean.floats[i] * mul[i]
        }
        return channelAffine(x, mul: mul, add: add)
    }

    /// X is `[N,C,...]` and every per-channel input holds C floats.
    private static func checkBatchNormInputs(_ x: Tensor, _ scale: Tensor, _ b: Tensor, _ mean: Tensor, _ variance: Tensor) throws {
        try ensureFloat(x, "BatchNormalization X")
        guard x.rank >= 2 else { throw OpError("BatchNormalization needs X [N,C,...], got \(Tensor.describe(x.shape))") }
        let c = x.shape[1]
        for (t, name) in [(scale, "scale"), (b, "B"), (mean, "input_mean"), (variance, "input_var")] {
            guard t.count == c, t.dtype.isFloating else {
                throw OpError("BatchNormalization \(name) \(Tensor.describe(t.shape)) must hold \(c) floats for X \(Tensor.describe(x.shape))")
            }
        }
    }

    /// BatchNormalization with `training_mode=1` (opset 14+): normalises with the batch's
    /// own per-channel mean and population variance; also returns the updated running
    /// mean and variance (`running = input·momentum + batch·(1 - momentum)`).
    static func BatchNormalizationTraining(x: Tensor, scale: Tensor, b: Tensor, inputMean: Tensor, inputVar: Tensor,
                                           epsilon: Float, momentum: Float) throws -> [Tensor] {
        try checkBatchNormInputs(x, scale, b, inputMean, inputVar)
        let n = x.shape[0], c = x.shape[1], plane = x.shape.dropFirst(2).reduce(1, *)
        var mean = [Double](repeating: 0, count: c), variance = mean
        for img in 0..<n { for ch in 0..<c { for i in 0..<plane { mean[ch] += Double(x.floats[(img * c + ch) * plane + i]) } } }
        let count = Double(max(1, n * plane))
        for ch in 0..<c { mean[ch] /= count }
        for img in 0..<n { for ch in 0..<c { for i in 0..<plane {
            let d = Double(x.floats[(img * c + ch) * plane + i]) - mean[ch]; variance[ch] += d * d
        } } }
        for ch in 0..<c { variance[ch] /= count }
        var mul = [Float](repeating: 0, count: c), add = mul, runMean = mul, runVar = mul
        for ch in 0..<c {
            mul[ch] = Float(Double(scale.floats[ch]) / (variance[ch] + Double(epsilon)).squareRoot())
            add[ch] = b.floats[ch] - Float(mean[ch]) * mul[ch]
            runMean[ch] = inputMean.floats[ch] * momentum + Float(mean[ch]) * (1 - momentum)
            runVar[ch] = inputVar.floats[ch] * momentum + Float(variance[ch]) * (1 - momentum)
        }
        return [channelAffine(x, mul: mul, add: add), Tensor(shape: [c], floats: runMean), Tensor(shape: [c], floats: runVar)]
    }

    /// `y = x·mul[c] + add[c]` per channel of an `[N,C,...]` tensor.
    static func channelAffine(_ x: Tensor, mul: [Float], add: [Float]) -> Tensor {
        let n = x.shape[0], c = x.shape[1], plane = x.shape.dropFirst(2).reduce(1, *)
        var out = [Float](repeating: 0, count: x.count)
        x.floats.withUnsafeBufferPointer { px in
            out.withUnsafeMutableBufferPointer { po in
                for img in 0..<n {
                    for ch in 0..<c {
                        let base = (img * c + ch) * plane, m = mul[ch], a = add[ch]
                        for i in base..<(base + plane) { po[i] = px[i] * m + a }
                    }
                }
            }
        }
        return Tensor(shape: x.shape, floats: out, dtype: x.dtype)
    }

    /// ONNX InstanceNormalization: each `[n,c]` plane normalised by its own mean and
    /// variance (accumulated in Double), then scaled and shifted per channel.
    static func InstanceNormalization(x: Tensor, scale: Tensor, b: Tensor, epsilon: Float) throws -> Tensor {
        try ensureFloat(x, "InstanceNormalization input")
        guard x.rank >= 3 else { throw OpError("InstanceNormalization needs input [N,C,spatial...], got \(Tensor.describe(x.shape))") }
        let n = x.shape[0], c = x.shape[1], plane = x.shape.dropFirst(2).reduce(1, *)
        guard scale.count == c, b.count == c, scale.dtype.isFloating, b.dtype.isFloating else {
            throw OpError("InstanceNormalization scale \(Tensor.describe(scale.shape)) and B \(Tensor.describe(b.shape)) must hold \(c) floats")
        }
        var out = [Float](repeating: 0, count: x.count)
        x.floats.withUnsafeBufferPointer { px in
            out.withUnsafeMutableBufferPointer { po in
                for img in 0..<n {
                    for ch in 0..<c {
                        let base = (img * c + ch) * plane
                        let (mean, invStd) = moments(px.baseAddress! + base, plane, epsilon)
                        let m = scale.floats[ch] * invStd, a = b.floats[ch] - mean * m
                        for i in base..<(base + plane) { po[i] = px[i] * m + a }
                    }
                }
            }
        }
        return Tensor(shape: x.shape, floats: out, dtype: x.dtype)
    }

    /// Mean and `1/sqrt(variance + epsilon)` of `n` values (population variance).
    static func moments(_ p: UnsafePointer<Float>, _ n: Int, _ epsilon: Float) -> (Float, Float) {
        // Two passes, four Double accumulators each: accurate and still vectorisable.
        var s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0
        var i = 0
        while i + 4 <= n {
            s0 += Double(p[i]); s1 += Double(p[i + 1]); s2 += Double(p[i + 2]); s3 += Double(p[i + 3]); i += 4
        }
        while i < n { s0 += Double(p[i]); i += 1 }
        let mean = (s0 + s1 + s2 + s3) / Double(max(n, 1))
        var v0 = 0.0, v1 = 0.0, v2 = 0.0, v3 = 0.0
        i = 0
        while i + 4 <= n {
            let d0 = Double(p[i]) - mean, d1 = Double(p[i + 1]) - mean
            let d2 = Double(p[i + 2]) - mean, d3 = Double(p[i + 3]) - mean
            v0 += d0 * d0; v1 += d1 * d1; v2 += d2 * d2; v3 += d3 * d3; i += 4
        }
        while i < n { let d = Double(p[i]) - mean; v0 += d * d; i += 1 }
        let variance = (v0 + v1 + v2 + v3) / Double(max(n, 1))
        return (Float(mean), Float(1 / (variance + Double(epsilon)).squareRoot()))
    }

    /// ONNX LayerNormalization (opset 17): normalises over axes `axis...`, then applies
    /// Scale and B broadcast to those axes. Also returns Mean and InvStdDev, shaped like X
    /// with the normalised axes set to 1.
    static func LayerNormalization(x: Tensor, scale: Tensor, b: Tensor?, axis: Int,
                                   epsilon: Float) throws -> (Tensor, Tensor, Tensor) {
        try ensureFloat(x, "LayerNormalization X")
        let a = try normalizeAxis(axis, rank: x.rank)
        let normShape = Array(x.shape[a...])
        let rows = x.shape[..<a].reduce(1, *), cols = normShape.reduce(1, *)
        let sc = try expand(scale, to: normShape, "Scale")
        let bias = try b.map { try expand($0, to: normShape, "B") } ?? [Float](repeating: 0, count: cols)
        var out = [Float](repeating: 0, count: x.count)
        var means = [Float](repeating: 0, count: rows), invs = means
        // `mpq_layernorm_f32`: the same two-pass double moments and float affine step,
        // vectorised and split over the cores by rows (MPQ_KERNEL_PATH=reference runs the
        // scalar form this Swift code used).
        x.floats.withUnsafeBufferPointer { px in
            out.withUnsafeMutableBufferPointer { po in
                sc.withUnsafeBufferPointer { ps in
                    bias.withUnsafeBufferPointer { pb in
                        means.withUnsafeMutableBufferPointer { pm in
                            invs.withUnsafeMutableBufferPointer { pi in
                                mpq_layernorm_f32(MPQ_PATH_AUTO, px.baseAddress, rows, cols, ps.baseAddress, pb.baseAddress,
                                                  epsilon, po.baseAddress, pm.baseAddress, pi.baseAddress, normThreads(x.count))
                            }
                        }
                    }
                }
            }
        }
        let statShape = Array(x.shape[..<a]) + [Int](repeating: 1, count: x.rank - a)
        return (Tensor(shape: x.shape, floats: out, dtype: x.dtype),
                Tensor(shape: statShape, floats: means), Tensor(shape: statShape, floats: invs))
    }

    /// Values of `t` broadcast (numpy rules, right-aligned) to exactly `shape`.
    private static func expand(_ t: Tensor, to shape: [Int], _ name: String) throws -> [Float] {
        try ensureFloat(t, name)
        if t.shape == shape { return t.floats }
        guard t.rank <= shape.count else {
            throw OpError("\(name) \(Tensor.describe(t.shape)) does not broadcast to \(Tensor.describe(shape))")
        }
        let ts = [Int](repeating: 1, count: shape.count - t.rank) + t.shape
        for (d, s) in zip(ts, shape) where d != 1 && d != s {
            throw OpError("\(name) \(Tensor.describe(t.shape)) does not broadcast to \(Tensor.describe(shape))")
        }
        let st = stridesOf(ts), os = stridesOf(shape)
        let n = shape.reduce(1, *)
        var r = [Float](repeating: 0, count: n)
        for i in 0..<n {
            var rem = i, src = 0
            for d in 0..<shape.count {
                let q = rem / os[d]; rem -= q * os[d]
                if ts[d] != 1 { src += q * st[d] }
            }
            r[i] = t.floats[src]
        }
        return r
    }

    /// ONNX LRN across channels: `y = x / (bias + alpha/size · Σ x²)^beta`, the sum over
    /// channels `c - floor((size-1)/2) ... c + ceil((size-1)/2)`.
    static func LRN(x: Tensor, alpha: Float, beta: Float, bias: Float, size: Int) throws -> Tensor {
        try ensureFloat(x, "LRN X")
        guard x.rank >= 2, size >= 1 else {
            throw OpError("LRN needs X [N,C,...] and size >= 1, got \(Tensor.describe(x.shape)), size \(size)")
        }
        let n = x.shape[0], c = x.shape[1], plane = x.shape.dropFirst(2).reduce(1, *)
        let before = (size - 1) / 2, after = size - 1 - before
        var out = [Float](repeating: 0, count: x.count)
        var sq = [Float](repeating: 0, count: plane)
        x.floats.withUnsafeBufferPointer { px in
            out.withUnsafeMutableBufferPointer { po in
                for img in 0..<n {
                    for ch in 0..<c {
                        for i in 0..<plane { sq[i] = 0 }
                        for k in max(0, ch - before)...min(c - 1, ch + after) {
                            let b = (img * c + k) * plane
                            for i in 0..<plane { let v = px[b + i]; sq[i] += v * v }
                        }
                        let b = (img * c + ch) * plane
                        for i in 0..<plane { po[b + i] = px[b + i] / powf(bias + alpha / Float(size) * sq[i], beta) }
                    }
                }
            }
        }
        return Tensor(shape: x.shape, floats: out, dtype: x.dtype)
    }
}
