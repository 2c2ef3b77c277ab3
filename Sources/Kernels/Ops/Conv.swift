import COpenBLAS
import Dispatch
import ONNX

enum ConvOps {
    static let table: [String: OpEntry] = [
        "Conv": OpEntry(since: 1, { node, inputs, _, prepared in
            try ConvAttributes(node).run(node, inputs, prepared)
        }, bind: { node, _ in
            let a = ConvAttributes(node, memo: ConvRunMemo())
            return { inputs, prepared in try a.run(node, inputs, prepared) }
        }),
        "ConvTranspose": OpEntry(since: 1) { node, inputs, _ in
            [try ConvTranspose(x: try node.required(inputs, 0, "X"), w: try node.required(inputs, 1, "W"),
                               b: inputs.count > 2 ? inputs[2] : nil,
                               autoPad: node.string("auto_pad", default: "NOTSET"),
                               dilations: node.ints("dilations"), group: node.int("group", default: 1),
                               kernelShape: node.ints("kernel_shape"), outputPadding: node.ints("output_padding"),
                               outputShape: node.ints("output_shape"), pads: node.ints("pads"),
                               strides: node.ints("strides"))]
        },
    ]

    /// A Conv node's attributes, read once (a session binds them per node, `OpEntry.bind`).
    final class ConvAttributes: Sendable {
        let autoPad: String, dilations: [Int]?, group: Int, kernelShape: [Int]?, pads: [Int]?, strides: [Int]?
        let epilogue: ConvEpilogue
        let residualSide: String?, residualRelu: Bool
        let weightName: String
        /// What the bound node keeps between runs (`ConvRunMemo`); nil when unbound.
        let memo: ConvRunMemo?

        init(_ node: Node, memo: ConvRunMemo? = nil) {
            autoPad = node.string("auto_pad", default: "NOTSET")
            dilations = node.ints("dilations"); group = node.int("group", default: 1)
            kernelShape = node.ints("kernel_shape"); pads = node.ints("pads"); strides = node.ints("strides")
            epilogue = ConvEpilogue(node: node)
            residualSide = node.string(ConvResidual.runtimeKey)
            residualRelu = node.string(ConvResidual.reluKey) == "Relu"
            weightName = node.inputs.count > 1 ? node.inputs[1] : ""
            self.memo = memo
        }

        func run(_ node: Node, _ inputs: [Tensor?], _ prepared: PreparedWeights?) throws -> [Tensor] {
            let residual = ConvResidual(side: residualSide, relu: residualRelu, inputs: inputs)
            if let memo, inputs.count >= 2, let x = inputs[0], let w = inputs[1] {
                // The shapes the last run checked: its geometry and packed weights, the same call.
                let b = inputs.count > 2 ? inputs[2] : nil
                if let p = memo.plan(x: x, w: w, b: b), x.dtype.isFloating, w.dtype.isFloating, b?.dtype.isFloating ?? true,
                   residual?.fits(p.outShape) ?? true {
                    let packed = memo.packed(w, group: group, name: weightName, prepared: prepared)
                    let out = convPackedGemm(x: x, packed: packed, bias: b?.floats ?? [], g: p.g, epilogue: epilogue,
                                             residual: residual)
                    return [Tensor(shape: p.outShape, floats: out, dtype: x.dtype)]
                }
            }
            let weightName = self.weightName
            let packWeights: ((Tensor, Int) -> PackedConvWeights)?
            if let memo {
                packWeights = { w, group in memo.packed(w, group: group, name: weightName, prepared: prepared) }
            } else {
                packWeights = prepared.map { p in { w, group in p.convWeights(weightName, w, group: group) } }
            }
            return [try Conv(x: try node.required(inputs, 0, "X"), w: try node.required(inputs, 1, "W"),
                             b: inputs.count > 2 ? inputs[2] : nil, autoPad: autoPad, dilations: dilations,
                             group: group, kernelShape: kernelShape, pads: pads, strides: strides, epilogue: epilogue,
                             packWeights: packWeights, residual: residual, memo: memo)]
        }
    }

    /// ONNX Conv over 1 to 3 spatial dimensions. 1-D and 2-D convolutions run on mpq's
    /// packed FP32 GEMM (`mpq_sgemm.h`, docs/fp32-gemm.md) with weights packed by
    /// `packWeights` (the session's cache; packed for the call when nil). Otherwise
    /// (3-D, or `MPQ_FP32_GEMM=openblas`) they run one OpenBLAS sgemm per group and
    /// image on an im2col buffer (none for 1x1 stride-1 unpadded kernels); depthwise ones
    /// (several groups of one input channel) run a direct loop instead. Stacking many
    /// small images into one wide sgemm was measured slower (the column matrix leaves
    /// the cache), so images stay separate, split over the cores by image (one image:
    /// its GEMM split by pixels or output channels). The bias and `epilogue` run on each
    /// image's output right after its GEMM.
    static func Conv(x: Tensor, w: Tensor, b: Tensor?, autoPad: String, dilations: [Int]?, group: Int,
                     kernelShape: [Int]?, pads: [Int]?, strides: [Int]?, epilogue: ConvEpilogue = .none,
                     packWeights: ((Tensor, Int) -> PackedConvWeights)? = nil,
                     gemm: FP32GemmChoice = FP32GemmChoice.environment, residual: ConvResidual? = nil,
                     memo: ConvRunMemo? = nil) throws -> Tensor {
        try ensureFloat(x, "Conv X"); try ensureFloat(w, "Conv W")
        guard x.rank >= 3, w.rank == x.rank else {
            throw OpError("Conv needs X [N,C,spatial...] and W [M,C/group,kernel...] of the same rank, got X \(Tensor.describe(x.shape)) and W \(Tensor.describe(w.shape))")
        }
        let n = x.shape[0], c = x.shape[1], m = w.shape[0], cg = w.shape[1]
        // c % group first: `cg * group` traps when a file sets group to 2^62.
        guard group >= 1, c % group == 0, c / group == cg, m % group == 0 else {
            throw OpError("Conv group \(group) does not fit X \(Tensor.describe(x.shape)) and W \(Tensor.describe(w.shape)): need C = group * W[1] and M divisible by group")
        }
        let wKernel = Array(w.shape.dropFirst(2))
        if let ks = kernelShape, ks != wKernel {
            throw OpError("Conv kernel_shape \(ks) differs from W \(Tensor.describe(w.shape))")
        }
        if let b {
            try ensureFloat(b, "Conv B")
            guard b.count == m else { throw OpError("Conv bias \(Tensor.describe(b.shape)) must have \(m) values") }
        }
        var g = try WindowGeometry(input: Array(x.shape.dropFirst(2)), kernel: wKernel, strides: strides,
                                   dilations: dilations, pads: pads, op: "Conv")
        try g.resolveConv(autoPad: try AutoPad(attribute: autoPad), op: "Conv")
        try checkedCount([n, m] + g.outputShape, "Conv output")
        try checkedCount([cg * g.kernelCount, g.outputCount], "Conv im2col buffer")
        let inP = g.inputCount, outP = g.outputCount, kCount = g.kernelCount
        let mg = m / group
        let depthwise = cg == 1 && group > 1 && kCount > 1
        // A fused residual Add (+ Relu) of another shape than the output: the Conv, then the
        // unfused ops on it.
        if let residual, !residual.fits([n, m] + g.outputShape) {
            return try residual.applySeparately(try Conv(x: x, w: w, b: b, autoPad: autoPad, dilations: dilations, group: group,
                                                         kernelShape: kernelShape, pads: pads, strides: strides,
                                                         epilogue: epilogue, packWeights: packWeights, gemm: gemm))
        }
        if n > 0, usesPackedGemm(g, channelsPerGroup: cg, m: m, depthwise: depthwise, choice: gemm) {
            let packed = packWeights?(w, group) ?? PackedConvWeights(w, group: group)
            let out = convPackedGemm(x: x, packed: packed, bias: b?.floats ?? [], g: g, epilogue: epilogue, residual: residual)
            let outShape = [n, m] + g.outputShape
            // Every check above passed for these shapes: the bound node's next runs skip them
            // (`ConvRunMemo`; only this packed-GEMM path is remembered).
            memo?.remember(.init(xShape: x.shape, wShape: w.shape, biasCount: b?.count ?? -1, g: g, outShape: outShape))
            return Tensor(shape: outShape, floats: out, dtype: x.dtype)
        }
        if let residual {
            // The OpenBLAS loop below, then the residual in one pass (the same bits).
            var y = try Conv(x: x, w: w, b: b, autoPad: autoPad, dilations: dilations, group: group, kernelShape: kernelShape,
                             pads: pads, strides: strides, epilogue: epilogue, packWeights: packWeights, gemm: gemm)
            let count = y.floats.count
            y.floats.withUnsafeMutableBufferPointer { residual.applyInPlace($0.baseAddress!, count: count) }
            return y
        }
        // Depthwise outputs are not zero-filled: depthwiseChannels writes every value (the
        // kernels store each output, the tap-loop fallback zeroes its plane first). The fill
        // was a serial pass over 1-2 MB per large MobileNetV2 layer at batch 1 (s9-fp32).
        var out = depthwise ? [Float].uninitialized(count: n * m * outP) : [Float](repeating: 0, count: n * m * outP)
        // A batch splits by image over the cores, each image's im2col, GEMMs and bias on
        // one core with a single-threaded sgemm: one fork/join per layer instead of
        // OpenBLAS's own fork/join inside every per-image GEMM (which, for the small
        // GEMMs of a CNN at batch 16, costs more than the multiply on a busy machine),
        // and the im2col and bias passes run in parallel too. Images are independent
        // and each GEMM is the same call as before, so no value changes.
        // Depthwise convs split by image too; one image splits its channels only from 2M MACs
        // (splitting every layer's planes was measured slower at batch 1 on the shared 2-core
        // machine: MobileNetV2 48 ms before, 56-109 ms split, each small layer waiting for
        // the second core).
        // One image of a big depthwise conv splits by channel instead (depthwiseChannels).
        let tasks = depthwise && n == 1 ? fp32DepthwiseChannelTasks(macs: m * outP * kCount)
                                        : imageTasks(images: n, macsPerImage: m * outP * cg * kCount)
        let bias = b?.floats ?? []
        if n == 1, group == 1, !depthwise {
            let parts = singleImageParts(m: m, pixels: outP, k: cg * kCount)
            x.floats.withUnsafeBufferPointer { px in
                w.floats.withUnsafeBufferPointer { pw in
                    bias.withUnsafeBufferPointer { pb in
                        out.withUnsafeMutableBufferPointer { po in
                            convOneImageSplit(x: px.baseAddress!, w: pw.baseAddress!, bias: pb.isEmpty ? nil : pb.baseAddress,
                                              out: po.baseAddress!, m: m, g: g, channels: c, parts: parts, epilogue: epilogue)
                        }
                    }
                }
            }
            return Tensor(shape: [n, m] + g.outputShape, floats: out, dtype: x.dtype)
        }
        x.floats.withUnsafeBufferPointer { px in
            w.floats.withUnsafeBufferPointer { pw in
                bias.withUnsafeBufferPointer { pb in
                out.withUnsafeMutableBufferPointer { po in
                    let X = px.baseAddress!, W = pw.baseAddress!, O = po.baseAddress!
                    let work = { (t: Int) in
                        let bias = pb.isEmpty ? nil : pb.baseAddress
                        if depthwise {
                            if n == 1 {
                                depthwiseChannels(m * t / tasks..<m * (t + 1) / tasks, image: 0, x: X, w: W, y: O, channels: c,
                                                  outChannels: m, g, bias: bias, epilogue: epilogue)
                            } else {
                                for img in n * t / tasks..<n * (t + 1) / tasks {
                                    depthwiseChannels(0..<m, image: img, x: X, w: W, y: O, channels: c, outChannels: m, g,
                                                      bias: bias, epilogue: epilogue)
                                }
                            }
                            return
                        }
                        let first = n * t / tasks, last = n * (t + 1) / tasks
                        guard first < last else { return }
                        let rows = cg * kCount
                        let col = UnsafeMutablePointer<Float>.allocate(capacity: depthwise || g.isPointwise ? 1 : rows * outP)
                        defer { col.deallocate() }
                        for img in first..<last {
                            for grp in 0..<group {
                                let src = X + (img * c + grp * cg) * inP
                                let bMat: UnsafePointer<Float>
                                if g.isPointwise {
                                    bMat = src
                                } else {
                                    im2col(src: src, channels: cg, g, dst: col)
                                    bMat = UnsafePointer(col)
                                }
                                sgemm(m: mg, n: outP, k: rows, a: W + grp * mg * rows, lda: rows,
                                      b: bMat, ldb: outP, c: O + (img * m + grp * mg) * outP, ldc: outP)
                            }
                            epilogue.apply(O + img * m * outP, rows: m, cols: outP, ld: outP, bias: pb.isEmpty ? nil : pb.baseAddress!)
                        }
                    }
                    if depthwise && n == 1 && tasks > 1 {
                        // 16-channel blocks x row strips on the kernel pool (s12-dwlanes) when the
                        // channels-in-lanes kernel takes the case; else two channel ranges per thread,
                        // claimed as threads come free (s9-fp32: GCD's threads park between layers).
                        if !(c == m && depthwiseLanes(src: X, weights: W, bias: pb.isEmpty ? nil : pb.baseAddress, dst: O,
                                                      channels: m, g, epilogue: epilogue, threads: tasks)) {
                            poolPerform(threads: tasks, chunks: 2 * tasks) { k in
                                depthwiseChannels(m * k / (2 * tasks)..<m * (k + 1) / (2 * tasks), image: 0, x: X, w: W, y: O,
                                                  channels: c, outChannels: m, g, bias: pb.isEmpty ? nil : pb.baseAddress,
                                                  epilogue: epilogue)
                            }
                        }
                    } else if tasks > 1 {
                        withSingleThreadedBLAS { DispatchQueue.concurrentPerform(iterations: tasks, execute: work) }
                    } else {
                        work(0)
                    }
                }
                }
            }
        }
        return Tensor(shape: [n, m] + g.outputShape, floats: out, dtype: x.dtype)
    }

    /// Unrolls the windows of `channels` planes into a `[channels·kernel, outputCount]`
    /// matrix, zeros where a window reads padding.
    static func im2col(src: UnsafePointer<Float>, channels: Int, _ g: WindowGeometry, dst: UnsafeMutablePointer<Float>) {
        let (iD, iH, iW) = (g.input[0], g.input[1], g.input[2])
        let (kD, kH, kW) = (g.kernel[0], g.kernel[1], g.kernel[2])
        let (oD, oH, oW) = (g.output[0], g.output[1], g.output[2])
        let sW = g.stride[2]
        var row = dst
        for ch in 0..<channels {
            let plane = src + ch * iD * iH * iW
            for kd in 0..<kD {
                let offD = kd * g.dilation[0] - g.padHead[0]
                for kh in 0..<kH {
                    let offH = kh * g.dilation[1] - g.padHead[1]
                    for kw in 0..<kW {
                        let offW = kw * g.dilation[2] - g.padHead[2]
                        let wr = validWindowRange(offset: offW, stride: sW, inSize: iW, outSize: oW)
                        var d = row
                        for od in 0..<oD {
                            let id = od * g.stride[0] + offD
                            for oh in 0..<oH {
                                let ih = oh * g.stride[1] + offH
                                if id < 0 || id >= iD || ih < 0 || ih >= iH {
                                    d.update(repeating: 0, count: oW)
                                } else {
                                    let s = plane + (id * iH + ih) * iW + offW
                                    if wr.lowerBound > 0 { d.update(repeating: 0, count: wr.lowerBound) }
                                    if sW == 1 {
                                        (d + wr.lowerBound).update(from: s + wr.lowerBound, count: wr.count)
                                    } else {
                                        for ow in wr { d[ow] = s[ow * sW] }
                                    }
                                    if wr.upperBound < oW { (d + wr.upperBound).update(repeating: 0, count: oW - wr.upperBound) }
                                }
                                d += oW
                            }
                        }
                        row += oD * oH * oW
                    }
                }
            }
        }
    }

    /// One output plane of a convolution that reads a single input plane (depthwise):
    /// each kernel tap is a fused multiply-add over the output rows it reaches (taps in
    /// order, each output's sum from the zeros the caller wrote), then + 0 (a -0 sum reads
    /// +0): the FP32 depthwise reference every kernel matches (docs/depthwise.md).
    static func depthwisePlane(src: UnsafePointer<Float>, weights: UnsafePointer<Float>,
                               dst: UnsafeMutablePointer<Float>, _ g: WindowGeometry) {
        let (iD, iH, iW) = (g.input[0], g.input[1], g.input[2])
        let (kD, kH, kW) = (g.kernel[0], g.kernel[1], g.kernel[2])
        let (oD, oH, oW) = (g.output[0], g.output[1], g.output[2])
        let (sD, sH, sW) = (g.stride[0], g.stride[1], g.stride[2])
        var t = 0
        for kd in 0..<kD {
            let offD = kd * g.dilation[0] - g.padHead[0]
            let dr = validWindowRange(offset: offD, stride: sD, inSize: iD, outSize: oD)
            for kh in 0..<kH {
                let offH = kh * g.dilation[1] - g.padHead[1]
                let hr = validWindowRange(offset: offH, stride: sH, inSize: iH, outSize: oH)
                for kw in 0..<kW {
                    let offW = kw * g.dilation[2] - g.padHead[2]
                    let wr = validWindowRange(offset: offW, stride: sW, inSize: iW, outSize: oW)
                    let wv = weights[t]; t += 1
                    if wr.isEmpty { continue }
                    for od in dr {
                        let id = od * sD + offD
                        for oh in hr {
                            let s = src + (id * iH + oh * sH + offH) * iW + offW
                            let d = dst + (od * oH + oh) * oW
                            if sW == 1 {
                                for ow in wr { d[ow] = d[ow].addingProduct(wv, s[ow]) }
                            } else {
                                for ow in wr { d[ow] = d[ow].addingProduct(wv, s[ow * sW]) }
                            }
                        }
                    }
                }
            }
        }
        for i in 0..<oD * oH * oW { dst[i] += 0 }
    }

    /// Adds `bias[c]` to every value of channel `c` of one image's `[channels, plane]` output.
    static func addChannelBias(_ p: UnsafeMutablePointer<Float>, _ bias: UnsafeBufferPointer<Float>, channels: Int, plane: Int) {
        for ch in 0..<channels {
            let bv = bias[ch]
            if bv == 0 { continue }
            let row = p + ch * plane
            for i in 0..<plane { row[i] += bv }
        }
    }

    /// The same over an `[images, channels, plane]` buffer.
    static func addChannelBias(_ out: inout [Float], _ bias: [Float], images: Int, channels: Int, plane: Int) {
        out.withUnsafeMutableBufferPointer { po in
            bias.withUnsafeBufferPointer { pb in
                for img in 0..<images {
                    addChannelBias(po.baseAddress! + img * channels * plane, pb, channels: channels, plane: plane)
                }
            }
        }
    }

    /// Runs `body` with OpenBLAS on one thread (restored after): for callers that split
    /// the work over the cores themselves, so each core's sgemm does not fork again.
    /// The setting is process-wide; a session runs one node at a time, so at worst a
    /// second session running concurrently gets single-threaded GEMMs meanwhile (same
    /// values: OpenBLAS's threads split M and N, not K).
    static func withSingleThreadedBLAS(_ body: () -> Void) {
        let before = openblas_get_num_threads()
        if before > 1 { openblas_set_num_threads(1) }
        body()
        if before > 1 { openblas_set_num_threads(before) }
    }
}
