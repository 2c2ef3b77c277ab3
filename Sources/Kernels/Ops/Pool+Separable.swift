import Foundation
import ONNX

extension PoolOps {
    /// Pooling one axis at a time: a box window is a product of per-axis windows, so
    /// max and sum reduce along W, then H, then D, each pass contiguous and vectorisable.
    /// Average divisors are products of per-axis counts too. The direct loop in `pool`
    /// remains the reference (and the path that tracks argmax indices).
    static func poolSeparable(_ x: Tensor, _ nc: [Int], _ g: WindowGeometry, _ kind: PoolKind) -> Tensor {
        let planes = nc[0] * nc[1]
        var isMax = false, power: Float = 1
        var data: [Float]
        switch kind {
        case .max: isMax = true; data = x.floats
        case .average: data = x.floats
        case .lp(let p): power = p; data = x.floats.map { p == 2 ? $0 * $0 : powf(abs($0), p) }
        }
        var shape = [planes] + g.input
        var counts: [[Int]] = [[], [], []]
        for axis in [2, 1, 0] {
            let r = tapRanges(g, axis)
            if case .average(let includePad) = kind {
                counts[axis] = includePad ? r.padded : zip(r.lo, r.hi).map { $1 - $0 }
            }
            let identity = g.kernel[axis] == 1 && g.stride[axis] == 1 && g.padHead[axis] == 0 && g.output[axis] == g.input[axis]
            if identity { continue }
            data = reduceAxis(data, shape, axis: axis + 1, g, r.lo, r.hi, isMax: isMax)
            shape[axis + 1] = g.output[axis]
        }
        switch kind {
        case .max: break
        case .average:
            // Divisors as exact small Float products; an empty window gives 0/0 = NaN.
            let cd = counts[0].map(Float.init), ch = counts[1].map(Float.init), cw = counts[2].map(Float.init)
            let oW = g.output[2]
            data.withUnsafeMutableBufferPointer { p in
                cw.withUnsafeBufferPointer { pw in
                    var row = p.baseAddress!
                    for _ in 0..<planes { for od in 0..<g.output[0] { for oh in 0..<g.output[1] {
                        let rowCount = cd[od] * ch[oh]
                        for ow in 0..<oW { row[ow] = row[ow] / (rowCount * pw[ow]) }
                        row += oW
                    }}}
                }
            }
        case .lp:
            data.withUnsafeMutableBufferPointer { p in
                for i in p.indices { p[i] = power == 2 ? p[i].squareRoot() : powf(p[i], 1 / power) }
            }
        }
        return Tensor(shape: nc + g.outputShape, floats: data, dtype: x.dtype)
    }

    /// Max or sum over each output's window along one axis of a `[planes, D, H, W]` buffer.
    private static func reduceAxis(_ data: [Float], _ shape: [Int], axis: Int, _ g: WindowGeometry,
                                   _ lo: [Int], _ hi: [Int], isMax: Bool) -> [Float] {
        let a = axis - 1
        let outer = shape[..<axis].reduce(1, *), len = shape[axis], inner = shape[(axis + 1)...].reduce(1, *)
        let outLen = g.output[a], s = g.stride[a], d = g.dilation[a], ph = g.padHead[a]
        let empty: Float = isMax ? -.infinity : 0
        let k = g.kernel[a]
        // Outputs whose whole window lies inside the input (a contiguous range).
        let head = validWindowRange(offset: -ph, stride: s, inSize: len, outSize: outLen)
        let tail = validWindowRange(offset: -ph + (k - 1) * d, stride: s, inSize: len, outSize: outLen)
        let full = max(head.lowerBound, tail.lowerBound)..<max(head.lowerBound, tail.lowerBound, min(head.upperBound, tail.upperBound))
        var out = [Float](repeating: 0, count: outer * outLen * inner)
        data.withUnsafeBufferPointer { ps in
            out.withUnsafeMutableBufferPointer { po in
                lo.withUnsafeBufferPointer { plo in
                    hi.withUnsafeBufferPointer { phi in
                        for b in 0..<outer {
                            let src = ps.baseAddress! + b * len * inner
                            let dstRow = po.baseAddress! + b * outLen * inner
                            if inner == 1 && !full.isEmpty {
                                // Innermost axis: full windows tap by tap across the row, so
                                // the loop over outputs is contiguous (for stride 1) and vectorises.
                                let base = src - ph
                                for o in full { dstRow[o] = base[o * s] }
                                for t in 1..<max(k, 1) {
                                    let bt = base + t * d
                                    if isMax {
                                        if s == 1 {
                                            for o in full { let v = bt[o]; dstRow[o] = v > dstRow[o] ? v : dstRow[o] }
                                        } else {
                                            for o in full { let v = bt[o * s]; dstRow[o] = v > dstRow[o] ? v : dstRow[o] }
                                        }
                                    } else {
                                        if s == 1 {
                                            for o in full { dstRow[o] += bt[o] }
                                        } else {
                                            for o in full { dstRow[o] += bt[o * s] }
                                        }
                                    }
                                }
                            }
                            let rest = inner == 1 && !full.isEmpty
                                ? [0..<full.lowerBound, full.upperBound..<outLen] : [0..<outLen]
                            for range in rest { for o in range {
                                let count = phi[o] - plo[o]
                                let first = o * s - ph + plo[o] * d
                                let dst = dstRow + o * inner
                                if count <= 0 { dst.update(repeating: empty, count: inner); continue }
                                if inner == 1 {
                                    var acc = src[first]
                                    if isMax {
                                        for t in 1..<max(count, 1) { let v = src[first + t * d]; acc = v > acc ? v : acc }
                                    } else {
                                        for t in 1..<max(count, 1) { acc += src[first + t * d] }
                                    }
                                    dst[0] = acc
                                    continue
                                }
                                dst.update(from: src + first * inner, count: inner)
                                for t in 1..<max(count, 1) {
                                    let row = src + (first + t * d) * inner
                                    if isMax {
                                        for j in 0..<inner { let v = row[j]; dst[j] = v > dst[j] ? v : dst[j] }
                                    } else {
                                        for j in 0..<inner { dst[j] += row[j] }
                                    }
                                }
                            }}
                        }
                    }
                }
            }
        }
        return out
    }
}
