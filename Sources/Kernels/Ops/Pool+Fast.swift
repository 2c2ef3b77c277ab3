import CKernels
import ONNX

/// Max and average pooling over 2-D windows in C (`mpq_pool.h`): SIMD across outputs,
/// planes split over the kernel pool, the W-reduced rows of a plane kept in a per-task
/// scratch instead of a batch-sized intermediate. The kernels reduce in `poolSeparable`'s
/// order (W then H, taps in order, one division), so they give its bits; `poolSeparable`
/// stays the reference for every other case (3-D windows, LpPool) and in the tests.
extension PoolOps {
    /// `kind` over a `[N,C,...]` tensor through the C kernels, or nil when the window is
    /// not 2-D (a depth axis that is not the identity) or `kind` is Lp.
    static func poolFast(_ x: Tensor, _ nc: [Int], _ g: WindowGeometry, _ kind: PoolKind,
                         path: KernelPath = .auto) -> Tensor? {
        let isMax: Bool
        switch kind {
        case .max: isMax = true
        case .average: isMax = false
        case .lp: return nil
        }
        let out = nc[0] * nc[1] * g.outputCount
        guard out > 0 else { return nil }
        var y = [Float].uninitialized(count: out)
        let done: Void? = withPool2D(nc, g, kind) { p in
            x.floats.withUnsafeBufferPointer { px in
                y.withUnsafeMutableBufferPointer { py in
                    if isMax {
                        mpq_maxpool2d_f32(path.c, p, px.baseAddress, py.baseAddress, rowThreads(x.floats.count))
                    } else {
                        mpq_avgpool2d_f32(path.c, p, px.baseAddress, py.baseAddress, rowThreads(x.floats.count))
                    }
                }
            }
        }
        return done == nil ? nil : Tensor(shape: nc + g.outputShape, floats: y, dtype: x.dtype)
    }

    /// `kind` over `n` channel-blocked images of `channels` channels (`mpq_pool2d_f32_blocked`,
    /// the FP32 chains' layout): the blocked output, each lane the NCHW kernels' value; nil
    /// when the window is not 2-D or `kind` is Lp.
    static func poolBlocked(_ x: [Float], n: Int, channels: Int, _ g: WindowGeometry, _ kind: PoolKind,
                            path: KernelPath = .auto) -> [Float]? {
        let isMax: Bool
        switch kind {
        case .max: isMax = true
        case .average: isMax = false
        case .lp: return nil
        }
        let blocks = (channels + 15) / 16
        guard n > 0, channels > 0, g.rank == 2, x.count == n * blocks * 16 * g.input[1] * g.input[2] else { return nil }
        var y = [Float].uninitialized(count: n * blocks * 16 * g.output[1] * g.output[2])
        let rc: Int32? = withPool2D([n, blocks], g, kind) { p in
            x.withUnsafeBufferPointer { px in
                y.withUnsafeMutableBufferPointer { py in
                    mpq_pool2d_f32_blocked(path.c, isMax ? 1 : 0, p, Int32(channels), px.baseAddress, py.baseAddress, rowThreads(x.count))
                }
            }
        }
        return rc == 0 ? y : nil
    }

    /// MaxPool of uint8 codes (the INT8 chains' MaxPool, docs/int8-chains.md): the codes'
    /// order is the values' order, so the result is the codes of the float MaxPool; an
    /// all-padding window gives 0, the code the float path's -inf quantizes to. Nil when
    /// the window is not 2-D.
    static func maxPoolCodes(_ codes: [UInt8], _ nc: [Int], _ g: WindowGeometry, path: KernelPath = .auto) -> [UInt8]? {
        var y = [UInt8].uninitialized(count: nc[0] * nc[1] * g.outputCount)
        let done: Void? = withPool2D(nc, g, .max) { p in
            codes.withUnsafeBufferPointer { px in
                y.withUnsafeMutableBufferPointer { py in
                    mpq_maxpool2d_u8(path.c, p, px.baseAddress, py.baseAddress, rowThreads(codes.count / 4))
                }
            }
        }
        return done == nil ? nil : y
    }

    /// The C description of `g` (its tap ranges and average divisors live during `body`),
    /// or nil when the depth axis is not the identity. An identity depth axis folds into
    /// the planes.
    static func withPool2D<R>(_ nc: [Int], _ g: WindowGeometry, _ kind: PoolKind,
                              _ body: (UnsafePointer<mpq_pool2d>) -> R) -> R? {
        let depthIdentity = g.kernel[0] == 1 && g.stride[0] == 1 && g.padHead[0] == 0 && g.output[0] == g.input[0]
        guard depthIdentity, g.input[1] > 0, g.input[2] > 0 else { return nil }
        let rh = tapRanges(g, 1), rw = tapRanges(g, 2), rd = tapRanges(g, 0)
        var countH: [Float] = [], countW: [Float] = []
        if case .average(let includePad) = kind {
            // As poolSeparable: per-axis counts as Floats, the depth count (1) times H's.
            func counts(_ r: (lo: [Int], hi: [Int], padded: [Int])) -> [Float] {
                (includePad ? r.padded : zip(r.lo, r.hi).map { $1 - $0 }).map(Float.init)
            }
            let cd = counts(rd)[0]
            countH = counts(rh).map { cd * $0 }
            countW = counts(rw)
        }
        let lo = (rh.lo + rw.lo).map(Int32.init), hi = (rh.hi + rw.hi).map(Int32.init)
        let oh = g.output[1]
        return lo.withUnsafeBufferPointer { plo in
            hi.withUnsafeBufferPointer { phi in
                countH.withUnsafeBufferPointer { pch in
                    countW.withUnsafeBufferPointer { pcw in
                        var p = mpq_pool2d(
                            planes: nc[0] * nc[1] * g.input[0], in_h: Int32(g.input[1]), in_w: Int32(g.input[2]),
                            out_h: Int32(g.output[1]), out_w: Int32(g.output[2]),
                            kernel_h: Int32(g.kernel[1]), kernel_w: Int32(g.kernel[2]),
                            stride_h: Int32(g.stride[1]), stride_w: Int32(g.stride[2]),
                            dilation_h: Int32(g.dilation[1]), dilation_w: Int32(g.dilation[2]),
                            pad_top: Int32(g.padHead[1]), pad_left: Int32(g.padHead[2]),
                            lo_h: plo.baseAddress, hi_h: phi.baseAddress,
                            lo_w: plo.baseAddress! + oh, hi_w: phi.baseAddress! + oh,
                            count_h: pch.baseAddress, count_w: pcw.baseAddress)
                        return body(&p)
                    }
                }
            }
        }
    }
}
