import Foundation
import ONNX

/// What a pooling window computes.
enum PoolKind {
    case max
    case average(includePad: Bool)
    case lp(Float)
}

extension WindowGeometry {
    /// Pooling output sizes exactly as ONNX Runtime computes them: SAME_* pads from the
    /// undilated kernel (negative when the kernel is shorter than the stride, so windows
    /// skip input); the size from an integer quotient truncated toward zero, or a Float
    /// one ceiled in `ceil_mode`, dropping a last window that would start in the tail
    /// padding. So a dilated window somewhat longer than the padded input still gives an
    /// output, as in ONNX Runtime; a kernel longer than the padded input itself, or one
    /// that leaves no window at all, is an error here (ONNX Runtime returns an empty
    /// tensor, which only surfaces later as a meaningless score).
    mutating func resolvePool(autoPad: AutoPad, ceilMode: Bool, op: String) throws {
        for i in 0..<3 {
            var padSum = padHead[i] + padTail[i]
            switch autoPad {
            case .notSet: break
            case .valid: padHead[i] = 0; padTail[i] = 0; padSum = 0
            case .sameUpper, .sameLower:
                let target = (input[i] + stride[i] - 1) / stride[i]
                let needed = (target - 1) * stride[i] + kernel[i] - input[i]
                padHead[i] = autoPad == .sameLower ? (needed + 1) / 2 : needed / 2
                padTail[i] = needed - padHead[i]
                padSum = needed
            }
            let span = input[i] + padSum - effectiveKernel(i)
            if ceilMode {
                var o = Int((Float(span) / Float(stride[i]) + 1).rounded(.up))
                if o > 0 && (o - 1) * stride[i] >= input[i] + padHead[i] { o -= 1 }
                output[i] = max(o, 0)
            } else {
                // Integer division truncating toward zero, as in C++.
                output[i] = max(span / stride[i] + 1, 0)
            }
            let explicit = autoPad == .notSet || autoPad == .valid
            guard input[i] == 0 || (output[i] > 0 && (!explicit || kernel[i] <= input[i] + padSum)) else {
                throw OpError("\(op) kernel \(Tensor.describe(Array(kernel.suffix(rank)))) (dilations \(Array(dilation.suffix(rank)))) is larger than the padded input \(Tensor.describe(Array(input.suffix(rank)))) (pads \(pads))")
            }
        }
    }
}

extension PoolOps {
    /// Validates a pooling op's input and attributes; returns `[N,C]` and the geometry.
    static func poolGeometry(_ x: Tensor, _ op: String, _ autoPad: String, _ ceilMode: Bool, _ dilations: [Int]?,
                             _ kernelShape: [Int]?, _ pads: [Int]?, _ strides: [Int]?) throws -> ([Int], WindowGeometry) {
        try ensureFloat(x, "\(op) X")
        return try poolGeometry(shape: x.shape, op, autoPad, ceilMode, dilations, kernelShape, pads, strides)
    }

    /// `poolGeometry` for an input of `shape` (a float tensor's, checked by the caller).
    static func poolGeometry(shape: [Int], _ op: String, _ autoPad: String, _ ceilMode: Bool, _ dilations: [Int]?,
                             _ kernelShape: [Int]?, _ pads: [Int]?, _ strides: [Int]?) throws -> ([Int], WindowGeometry) {
        guard shape.count >= 3 else { throw OpError("\(op) needs X [N,C,spatial...], got \(Tensor.describe(shape))") }
        guard let kernelShape else { throw OpError("\(op) requires the kernel_shape attribute") }
        var g = try WindowGeometry(input: Array(shape.dropFirst(2)), kernel: kernelShape, strides: strides,
                                   dilations: dilations, pads: pads, op: op)
        try g.resolvePool(autoPad: try AutoPad(attribute: autoPad), ceilMode: ceilMode, op: op)
        try checkedCount(Array(shape.prefix(2)) + g.outputShape, "\(op) output")
        return (Array(shape.prefix(2)), g)
    }

    /// Per output index along one axis: the kernel taps that land inside the input
    /// (`lo..<hi`) and the taps inside the padded input (the include-pad divisor).
    static func tapRanges(_ g: WindowGeometry, _ axis: Int) -> (lo: [Int], hi: [Int], padded: [Int]) {
        let n = g.output[axis], k = g.kernel[axis], d = g.dilation[axis], s = g.stride[axis]
        let size = g.input[axis], limit = size + g.padTail[axis]
        var lo = [Int](repeating: 0, count: n), hi = lo, padded = lo
        for o in 0..<n {
            let start = o * s - g.padHead[axis]
            var l = k, h = 0, p = 0
            for t in 0..<k {
                let i = start + t * d
                if i >= 0 && i < size { l = min(l, t); h = t + 1 }
                if i < limit { p += 1 }
            }
            lo[o] = min(l, h); hi[o] = h; padded[o] = p
        }
        return (lo, hi, padded)
    }

    /// Runs a pooling window over every `[N,C]` plane of X: the C kernels for 2-D max and
    /// average windows, else the separable path, unless argmax indices are wanted or
    /// `direct` forces the reference loop.
    static func pool(_ x: Tensor, _ nc: [Int], _ g: WindowGeometry, _ kind: PoolKind,
                     computeIndices: Bool = false, columnMajor: Bool = false, direct: Bool = false) -> (Tensor, Tensor?) {
        if !computeIndices && !direct { return (poolFast(x, nc, g, kind) ?? poolSeparable(x, nc, g, kind), nil) }
        return poolDirect(x, nc, g, kind, computeIndices: computeIndices, columnMajor: columnMajor)
    }

    /// The reference pooling loop: every output visits its whole window.
    static func poolDirect(_ x: Tensor, _ nc: [Int], _ g: WindowGeometry, _ kind: PoolKind,
                           computeIndices: Bool, columnMajor: Bool) -> (Tensor, Tensor?) {
        let planes = nc[0] * nc[1], inP = g.inputCount, outP = g.outputCount
        let (iD, iH, iW) = (g.input[0], g.input[1], g.input[2])
        let (oD, oH, oW) = (g.output[0], g.output[1], g.output[2])
        let (dD, dH, dW) = (g.dilation[0], g.dilation[1], g.dilation[2])
        let rd = tapRanges(g, 0), rh = tapRanges(g, 1), rw = tapRanges(g, 2)
        var out = [Float](repeating: 0, count: planes * outP)
        var idx = computeIndices ? [Int64](repeating: 0, count: planes * outP) : []
        x.floats.withUnsafeBufferPointer { px in
            out.withUnsafeMutableBufferPointer { po in
                idx.withUnsafeMutableBufferPointer { pi in
                    for plane in 0..<planes {
                        let src = px.baseAddress! + plane * inP
                        var o = plane * outP
                        for od in 0..<oD {
                            let sd = od * g.stride[0] - g.padHead[0]
                            for oh in 0..<oH {
                                let sh = oh * g.stride[1] - g.padHead[1]
                                for ow in 0..<oW {
                                    let sw = ow * g.stride[2] - g.padHead[2]
                                    switch kind {
                                    case .max:
                                        var m = -Float.infinity, at = -1
                                        for td in rd.lo[od]..<rd.hi[od] {
                                            let id = sd + td * dD
                                            for th in rh.lo[oh]..<rh.hi[oh] {
                                                let ih = sh + th * dH
                                                let row = src + (id * iH + ih) * iW
                                                for tw in rw.lo[ow]..<rw.hi[ow] {
                                                    let iw = sw + tw * dW
                                                    let v = row[iw]
                                                    if v > m || at < 0 {
                                                        m = v
                                                        at = columnMajor ? id + ih * iD + iw * iD * iH : (id * iH + ih) * iW + iw
                                                    }
                                                }
                                            }
                                        }
                                        po[o] = m
                                        if computeIndices { pi[o] = Int64(plane * inP + max(at, 0)) }
                                    case .average(let includePad):
                                        var s: Float = 0
                                        for td in rd.lo[od]..<rd.hi[od] {
                                            let id = sd + td * dD
                                            for th in rh.lo[oh]..<rh.hi[oh] {
                                                let row = src + (id * iH + sh + th * dH) * iW + sw
                                                for tw in rw.lo[ow]..<rw.hi[ow] { s += row[tw * dW] }
                                            }
                                        }
                                        let count = includePad
                                            ? rd.padded[od] * rh.padded[oh] * rw.padded[ow]
                                            : (rd.hi[od] - rd.lo[od]) * (rh.hi[oh] - rh.lo[oh]) * (rw.hi[ow] - rw.lo[ow])
                                        po[o] = count > 0 ? s / Float(count) : .nan
                                    case .lp(let p):
                                        var s: Float = 0
                                        for td in rd.lo[od]..<rd.hi[od] {
                                            let id = sd + td * dD
                                            for th in rh.lo[oh]..<rh.hi[oh] {
                                                let row = src + (id * iH + sh + th * dH) * iW + sw
                                                for tw in rw.lo[ow]..<rw.hi[ow] {
                                                    let v = abs(row[tw * dW])
                                                    s += p == 2 ? v * v : powf(v, p)
                                                }
                                            }
                                        }
                                        po[o] = p == 2 ? s.squareRoot() : powf(s, 1 / p)
                                    }
                                    o += 1
                                }
                            }
                        }
                    }
                }
            }
        }
        let shape = nc + g.outputShape
        let y = Tensor(shape: shape, floats: out, dtype: x.dtype)
        return (y, computeIndices ? Tensor(shape: shape, ints: idx) : nil)
    }
}
