import ONNX

extension ConvOps {
    /// ONNX ConvTranspose over 1 to 3 spatial dimensions: per image and group, one sgemm
    /// `Wᵀ·X` into a column buffer, then col2im scatters the columns into the output.
    static func ConvTranspose(x: Tensor, w: Tensor, b: Tensor?, autoPad: String, dilations: [Int]?, group: Int,
                              kernelShape: [Int]?, outputPadding: [Int]?, outputShape: [Int]?,
                              pads: [Int]?, strides: [Int]?) throws -> Tensor {
        try ensureFloat(x, "ConvTranspose X"); try ensureFloat(w, "ConvTranspose W")
        guard x.rank >= 3, w.rank == x.rank else {
            throw OpError("ConvTranspose needs X [N,C,spatial...] and W [C,M/group,kernel...] of the same rank, got X \(Tensor.describe(x.shape)) and W \(Tensor.describe(w.shape))")
        }
        let n = x.shape[0], c = x.shape[1], mg = w.shape[1]
        guard group >= 1, w.shape[0] == c, c % group == 0 else {
            throw OpError("ConvTranspose group \(group) does not fit X \(Tensor.describe(x.shape)) and W \(Tensor.describe(w.shape)): need W[0] = C divisible by group")
        }
        let m = mg * group, cg = c / group
        let wKernel = Array(w.shape.dropFirst(2))
        if let ks = kernelShape, ks != wKernel {
            throw OpError("ConvTranspose kernel_shape \(ks) differs from W \(Tensor.describe(w.shape))")
        }
        if let b {
            try ensureFloat(b, "ConvTranspose B")
            guard b.count == m else { throw OpError("ConvTranspose bias \(Tensor.describe(b.shape)) must have \(m) values") }
        }
        let (g, outSpatial) = try convTransposeGeometry(xShape: x.shape, wShape: w.shape, autoPad: autoPad, dilations: dilations,
                                                        outputPadding: outputPadding, outputShape: outputShape, pads: pads, strides: strides)
        try checkedCount([n, m] + outSpatial, "ConvTranspose output")
        let inP = g.output.reduce(1, *), outP = g.inputCount, kCount = g.kernelCount
        let rows = mg * kCount
        var out = [Float](repeating: 0, count: n * m * outP)
        let direct = g.isPointwise && inP == outP
        var col = direct ? [] : [Float](repeating: 0, count: rows * inP)
        x.floats.withUnsafeBufferPointer { px in
            w.floats.withUnsafeBufferPointer { pw in
                out.withUnsafeMutableBufferPointer { po in
                    col.withUnsafeMutableBufferPointer { pc in
                        let X = px.baseAddress!, W = pw.baseAddress!, O = po.baseAddress!
                        for img in 0..<n {
                            for grp in 0..<group {
                                let dst = O + (img * m + grp * mg) * outP
                                let cMat = direct ? dst : pc.baseAddress!
                                sgemm(transA: true, m: rows, n: inP, k: cg, a: W + grp * cg * rows, lda: rows,
                                      b: X + (img * c + grp * cg) * inP, ldb: inP, c: cMat, ldc: inP)
                                if !direct { col2im(src: pc.baseAddress!, channels: mg, g, dst: dst) }
                            }
                        }
                    }
                }
            }
        }
        if let b { addChannelBias(&out, b.floats, images: n, channels: m, plane: outP) }
        return Tensor(shape: [n, m] + outSpatial, floats: out, dtype: x.dtype)
    }

    /// The geometry of a ConvTranspose as the forward convolution it is the adjoint of
    /// (`g.input` is the ConvTranspose output, `g.output` its input), with `auto_pad`,
    /// `output_padding` and `output_shape` resolved as ONNX Runtime does; and the output's
    /// spatial shape. Shared by the FP32 op and the INT8 layer.
    static func convTransposeGeometry(xShape: [Int], wShape: [Int], autoPad: String, dilations: [Int]?, outputPadding: [Int]?,
                                      outputShape: [Int]?, pads: [Int]?, strides: [Int]?) throws -> (WindowGeometry, [Int]) {
        let wKernel = Array(wShape.dropFirst(2))
        let xSpatial = Array(xShape.dropFirst(2))
        let r = xSpatial.count
        // The geometry of the forward convolution this op is the adjoint of: its input is
        // our output, its output is our input.
        var g = try WindowGeometry(input: xSpatial, kernel: wKernel, strides: strides, dilations: dilations,
                                   pads: pads, op: "ConvTranspose")
        let mode = try AutoPad(attribute: autoPad)
        let adj = outputPadding ?? [Int](repeating: 0, count: r)
        guard adj.count == r else { throw OpError("ConvTranspose output_padding \(adj) does not match \(r) spatial dimensions") }
        guard adj.allSatisfy({ (0...TensorLimits.maxDim).contains($0) }) else {
            throw OpError("ConvTranspose output_padding \(adj) must be between 0 and \(TensorLimits.maxDim)")
        }
        if let os = outputShape, os.count < r {
            throw OpError("ConvTranspose output_shape \(os) has fewer than \(r) spatial dimensions")
        }
        var outSpatial = [Int](repeating: 0, count: r)
        for i in 0..<r {
            let a = 3 - r + i
            let full = (xSpatial[i] - 1) * g.stride[a] + adj[i] + g.effectiveKernel(a)
            if let os = outputShape {
                // As ONNX Runtime does: the odd unit of padding goes to the tail for SAME_UPPER,
                // to the head otherwise (the reverse of Conv's SAME_* split).
                let total = max(0, full - os[os.count - r + i])
                g.padHead[a] = mode == .sameUpper ? total / 2 : total - total / 2
                g.padTail[a] = total - g.padHead[a]
            } else if mode == .sameUpper || mode == .sameLower {
                let total = max(0, full - xSpatial[i] * g.stride[a])
                g.padHead[a] = mode == .sameUpper ? total / 2 : total - total / 2
                g.padTail[a] = total - g.padHead[a]
            } else if mode == .valid {
                g.padHead[a] = 0; g.padTail[a] = 0
            }
            // An explicit output_shape is the output size even where it exceeds what the
            // input reaches (ONNX Runtime pads no further; the rest is zero plus bias).
            outSpatial[i] = outputShape.map { $0[$0.count - r + i] } ?? full - g.padHead[a] - g.padTail[a]
            guard outSpatial[i] > 0 else {
                throw OpError("ConvTranspose output would be empty: X \(Tensor.describe(xShape)), W \(Tensor.describe(wShape)), pads \(g.pads)")
            }
        }
        g.output = g.input
        g.input = Dims3(outSpatial, fill: 1)
        return (g, outSpatial)
    }

    /// The adjoint of `im2col`: adds each column entry to the image position its window
    /// tap reads, skipping taps that land in padding. `g.input` is the image being written.
    static func col2im(src: UnsafePointer<Float>, channels: Int, _ g: WindowGeometry, dst: UnsafeMutablePointer<Float>) {
        let (iD, iH, iW) = (g.input[0], g.input[1], g.input[2])
        let (kD, kH, kW) = (g.kernel[0], g.kernel[1], g.kernel[2])
        let (oD, oH, oW) = (g.output[0], g.output[1], g.output[2])
        let sW = g.stride[2]
        var row = src
        for ch in 0..<channels {
            let plane = dst + ch * iD * iH * iW
            for kd in 0..<kD {
                let offD = kd * g.dilation[0] - g.padHead[0]
                for kh in 0..<kH {
                    let offH = kh * g.dilation[1] - g.padHead[1]
                    for kw in 0..<kW {
                        let offW = kw * g.dilation[2] - g.padHead[2]
                        let wr = validWindowRange(offset: offW, stride: sW, inSize: iW, outSize: oW)
                        var s = row
                        for od in 0..<oD {
                            let id = od * g.stride[0] + offD
                            for oh in 0..<oH {
                                let ih = oh * g.stride[1] + offH
                                if id >= 0 && id < iD && ih >= 0 && ih < iH && !wr.isEmpty {
                                    let d = plane + (id * iH + ih) * iW + offW
                                    if sW == 1 {
                                        for ow in wr { d[ow] += s[ow] }
                                    } else {
                                        for ow in wr { d[ow * sW] += s[ow] }
                                    }
                                }
                                s += oW
                            }
                        }
                        row += oD * oH * oW
                    }
                }
            }
        }
    }
}
