import Foundation
import ONNX

/// Interpolation of Resize/Upsample.
enum ResizeMode: String {
    case nearest, linear, cubic
}

/// How an output coordinate maps back into the input (`coordinate_transformation_mode`).
enum CoordinateTransform: String {
    case halfPixel = "half_pixel", halfPixelSymmetric = "half_pixel_symmetric"
    case pytorchHalfPixel = "pytorch_half_pixel", alignCorners = "align_corners"
    case asymmetric, tfHalfPixelForNN = "tf_half_pixel_for_nn", tfCropAndResize = "tf_crop_and_resize"

    /// The input coordinate of output index `o`, with ONNX Runtime's arithmetic: Float,
    /// except where its C++ mixes in double literals (so a nearest pixel rounds the same).
    func original(_ o: Int, scale: Float, outLen: Int, inLen: Int, roiStart: Float, roiEnd: Float) -> Float {
        let x = Float(o)
        switch self {
        case .halfPixel: return (x + 0.5) / scale - 0.5
        case .halfPixelSymmetric:
            let adjustment = Float(outLen) / (scale * Float(inLen))
            let center = Float(inLen) / 2
            let offset = center * (1 - adjustment)
            return Float(Double(offset) + (Double(x) + 0.5) / Double(scale) - 0.5)
        case .pytorchHalfPixel: return outLen > 1 ? (x + 0.5) / scale - 0.5 : 0
        case .alignCorners: return outLen == 1 ? 0 : x * Float(inLen - 1) / Float(outLen - 1)
        case .asymmetric: return x / scale
        case .tfHalfPixelForNN: return (x + 0.5) / scale
        case .tfCropAndResize:
            return outLen > 1
                ? roiStart * Float(inLen - 1) + x * (roiEnd - roiStart) * Float(inLen - 1) / Float(outLen - 1)
                : Float(0.5 * Double(roiStart + roiEnd) * Double(inLen - 1))
        }
    }
}

/// Rounding of nearest-neighbour coordinates. `simple` is Resize-10 / Upsample: truncate
/// when upsampling, ceil when downsampling (what ONNX Runtime does for those opsets).
enum NearestMode: String {
    case roundPreferFloor = "round_prefer_floor", roundPreferCeil = "round_prefer_ceil"
    case floor, ceil, simple

    func pixel(_ x: Float, downsampling: Bool) -> Int {
        switch self {
        case .roundPreferFloor: return x == x.rounded(.down) + 0.5 ? Int(x.rounded(.down)) : Int(x.rounded())
        case .roundPreferCeil: return Int(x.rounded(.toNearestOrAwayFromZero))
        case .floor: return Int(x.rounded(.down))
        case .ceil: return Int(x.rounded(.up))
        case .simple: return downsampling ? Int(x.rounded(.up)) : Int(x)
        }
    }
}

/// Everything that decides how one axis is resampled.
struct ResampleOptions {
    var mode: ResizeMode
    var transform: CoordinateTransform
    var nearestMode: NearestMode
    var cubicCoeffA: Float = -0.75
    var excludeOutside = false
    var extrapolationValue: Float = 0
    /// Widen linear/cubic filters by 1/scale when down-sampling (Resize-18 `antialias`).
    var antialias = false
}

/// The input taps of each output index along one axis: `taps` indices and weights per
/// output, or the extrapolation value where a crop reaches outside the input.
struct AxisTaps {
    var taps: Int
    var index: [Int]
    var weight: [Float]
    var outside: [Bool]

    /// True when the axis maps every output index to the same input index unchanged.
    var isIdentity: Bool {
        guard index.count / max(taps, 1) == outside.count else { return false }
        for o in 0..<outside.count {
            if outside[o] { return false }
            for t in 0..<taps {
                let w = weight[o * taps + t]
                if w != 0 && (index[o * taps + t] != o || w != 1) { return false }
            }
        }
        return true
    }

    init(inLen: Int, outLen: Int, scale: Float, roiStart: Float, roiEnd: Float, _ opt: ResampleOptions) {
        let extrapolate = opt.transform == .tfCropAndResize
        taps = opt.mode == .nearest ? 1 : opt.mode == .linear ? 2 : 4
        // Antialiasing stretches the filter's support (1 for linear, 2 for cubic) by 1/scale.
        let antialiased = opt.antialias && opt.mode != .nearest && scale < 1
        let firstTap = antialiased ? Int((-Float(taps / 2) / scale).rounded(.down)) + 1 : 0
        if antialiased { taps = 2 - 2 * firstTap }
        index = [Int](repeating: 0, count: outLen * taps)
        weight = [Float](repeating: 0, count: outLen * taps)
        outside = [Bool](repeating: false, count: outLen)
        let last = inLen - 1
        for o in 0..<outLen {
            var x = opt.transform.original(o, scale: scale, outLen: outLen, inLen: inLen, roiStart: roiStart, roiEnd: roiEnd)
            if extrapolate && (x < 0 || x > Float(last)) { outside[o] = true; continue }
            // Far outside the input every tap clamps to an edge; keep Int conversions finite.
            x = x.isFinite ? min(max(x, -8), Float(last) + 8) : 0
            let b = o * taps
            if antialiased {
                filterTaps(x: x, scale: scale, firstTap: firstTap, last: last, at: b, opt)
                continue
            }
            switch opt.mode {
            case .nearest:
                index[b] = min(max(opt.nearestMode.pixel(x, downsampling: scale < 1), 0), last)
                weight[b] = 1
            case .linear:
                let c = min(max(x, 0), Float(last))
                let i1 = min(Int(c), last), i2 = min(i1 + 1, last)
                var w1 = abs(c - Float(i2)), w2 = abs(c - Float(i1))
                if i1 == i2 { w1 = 0.5; w2 = 0.5 }
                index[b] = i1; weight[b] = w1
                index[b + 1] = i2; weight[b + 1] = w2
            case .cubic:
                let f = x.rounded(.down), s = x - f, base = Int(f) - 1
                let a = opt.cubicCoeffA
                let c: [Float] = [
                    ((a * (s + 1) - 5 * a) * (s + 1) + 8 * a) * (s + 1) - 4 * a,
                    ((a + 2) * s - (a + 3)) * s * s + 1,
                    ((a + 2) * (1 - s) - (a + 3)) * (1 - s) * (1 - s) + 1,
                    ((a * (2 - s) - 5 * a) * (2 - s) + 8 * a) * (2 - s) - 4 * a,
                ]
                var sum: Float = 0
                for t in 0..<4 {
                    let i = base + t
                    let inside = i >= 0 && i <= last
                    let w: Float = opt.excludeOutside && !inside ? 0 : c[t]
                    index[b + t] = min(max(i, 0), last)
                    weight[b + t] = w
                    sum += w
                }
                if opt.excludeOutside && sum != 0 { for t in 0..<4 { weight[b + t] /= sum } }
            }
        }
    }
}

extension AxisTaps {
    /// Antialiased taps as the ONNX reference defines them: the filter evaluated at
    /// `scale·(i - ratio)` for the `taps` pixels around `x`, normalised to sum 1; pixels
    /// outside the input repeat the edge, or are dropped with `exclude_outside`.
    mutating func filterTaps(x: Float, scale: Float, firstTap: Int, last: Int, at b: Int, _ opt: ResampleOptions) {
        let f = x.rounded(.down)
        // The pixel left of x is the reference; an integral x counts as ratio 1 from x-1.
        let (left, ratio) = f == x ? (Int(f) - 1, Float(1)) : (Int(f), x - f)
        let a = opt.cubicCoeffA
        var sum: Float = 0
        for t in 0..<taps {
            let i = firstTap + t
            let d = abs(scale * (Float(i) - ratio))
            var w: Float
            if opt.mode == .linear {
                w = max(0, 1 - d)
            } else if d <= 1 {
                w = ((a + 2) * d - (a + 3)) * d * d + 1
            } else if d < 2 {
                w = ((a * d - 5 * a) * d + 8 * a) * d - 4 * a
            } else {
                w = 0
            }
            index[b + t] = left + i
            weight[b + t] = w
            sum += w
        }
        if sum != 0 { for t in 0..<taps { weight[b + t] /= sum } }
        if opt.excludeOutside {
            var kept: Float = 0
            for t in 0..<taps {
                if index[b + t] < 0 || index[b + t] > last { weight[b + t] = 0 }
                kept += weight[b + t]
            }
            if kept != 0 { for t in 0..<taps { weight[b + t] /= kept } }
        }
        for t in 0..<taps { index[b + t] = min(max(index[b + t], 0), last) }
    }
}

extension ResizeOps {
    /// Resamples `data` (shape `shape`) along `axis` to `taps.outside.count` entries.
    static func resampleAxis(_ data: [Float], _ shape: [Int], axis: Int, _ taps: AxisTaps,
                             extrapolation: Float) -> [Float] {
        let outer = shape[..<axis].reduce(1, *), inLen = shape[axis], inner = shape[(axis + 1)...].reduce(1, *)
        let outLen = taps.outside.count, t = taps.taps
        var out = [Float](repeating: 0, count: outer * outLen * inner)
        data.withUnsafeBufferPointer { ps in
            out.withUnsafeMutableBufferPointer { po in
                taps.index.withUnsafeBufferPointer { pi in
                    taps.weight.withUnsafeBufferPointer { pw in
                        if inner == 1 {
                            // Innermost axis: a gather per output, no row copies.
                            for a in 0..<outer {
                                let src = ps.baseAddress! + a * inLen, dst = po.baseAddress! + a * outLen
                                for o in 0..<outLen {
                                    if taps.outside[o] { dst[o] = extrapolation; continue }
                                    if t == 1 { dst[o] = src[pi[o]]; continue }
                                    var acc = pw[o * t] * src[pi[o * t]]
                                    for k in 1..<t { acc += pw[o * t + k] * src[pi[o * t + k]] }
                                    dst[o] = acc
                                }
                            }
                            return
                        }
                        for a in 0..<outer {
                            let src = ps.baseAddress! + a * inLen * inner
                            for o in 0..<outLen {
                                let dst = po.baseAddress! + (a * outLen + o) * inner
                                if taps.outside[o] {
                                    dst.update(repeating: extrapolation, count: inner)
                                } else if t == 1 {
                                    dst.update(from: src + pi[o] * inner, count: inner)
                                } else {
                                    for k in 0..<t {
                                        let w = pw[o * t + k]
                                        let s = src + pi[o * t + k] * inner
                                        if k == 0 {
                                            for j in 0..<inner { dst[j] = w * s[j] }
                                        } else {
                                            for j in 0..<inner { dst[j] += w * s[j] }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        return out
    }

    /// Nearest-neighbour resampling along `axis` with no extrapolated entries: a gather of
    /// rows (`index[o]` per output entry), for any element type. The float form of
    /// `resampleAxis` with one tap of weight 1, and the same selection on uint8 codes.
    static func nearestAxis<T>(_ data: [T], _ shape: [Int], axis: Int, _ index: [Int]) -> [T] {
        let outer = shape[..<axis].reduce(1, *), inLen = shape[axis], inner = shape[(axis + 1)...].reduce(1, *)
        let outLen = index.count, n = outer * outLen * inner
        // Every element is written below: no zero fill first.
        return [T](unsafeUninitializedCapacity: n) { buf, count in
            if n > 0 {
                data.withUnsafeBufferPointer { ps in
                    index.withUnsafeBufferPointer { pi in
                        let dst = buf.baseAddress!
                        for a in 0..<outer {
                            let src = ps.baseAddress! + a * inLen * inner, row = dst + a * outLen * inner
                            if inner == 1 {
                                for o in 0..<outLen { (row + o).initialize(to: src[pi[o]]) }
                            } else {
                                for o in 0..<outLen { (row + o * inner).initialize(from: src + pi[o] * inner, count: inner) }
                            }
                        }
                    }
                }
            }
            count = n
        }
    }

    /// Resizes `x` to `outShape`, one axis at a time (nearest, linear and cubic are
    /// separable), skipping axes whose mapping is the identity; shrinking axes go first
    /// so later passes touch fewer values. `roi` holds all starts, then all ends.
    /// A tensor held only as codes (an INT8 chain through a nearest Resize) is resized as
    /// codes when the mode only selects values; otherwise it is materialised first.
    static func resample(_ x: Tensor, outShape: [Int], scales: [Float], roi: [Float], _ opt: ResampleOptions) -> Tensor {
        if x.isCodesOnly, let c = x.codes {
            guard opt.mode == .nearest, opt.transform != .tfCropAndResize else {
                return resample(x.materialized(), outShape: outShape, scales: scales, roi: roi, opt)
            }
            if let (rows, cols) = nearestInnerPlan(x.shape, outShape: outShape, scales: scales, roi: roi, opt) {
                let codes = nearestInner2(c.values, x.shape, rows: rows, cols: cols)
                return Tensor(shape: outShape, codes: QuantizedCodes(values: codes, scale: c.scale, zeroPoint: c.zeroPoint))
            }
            let codes = resampleAxes(c.values, x.shape, outShape: outShape, scales: scales, roi: roi, opt, zero: 0) { data, shape, axis, taps in
                nearestAxis(data, shape, axis: axis, taps.index)
            }
            return Tensor(shape: outShape, codes: QuantizedCodes(values: codes, scale: c.scale, zeroPoint: c.zeroPoint))
        }
        if let (rows, cols) = nearestInnerPlan(x.shape, outShape: outShape, scales: scales, roi: roi, opt) {
            return Tensor(shape: outShape, floats: nearestInner2(x.floats, x.shape, rows: rows, cols: cols), dtype: x.dtype)
        }
        let data = resampleAxes(x.floats, x.shape, outShape: outShape, scales: scales, roi: roi, opt, zero: 0) { data, shape, axis, taps in
            taps.taps == 1 && !taps.outside.contains(true)
                ? nearestAxis(data, shape, axis: axis, taps.index)
                : resampleAxis(data, shape, axis: axis, taps, extrapolation: opt.extrapolationValue)
        }
        return Tensor(shape: outShape, floats: data, dtype: x.dtype)
    }

    /// The source row and column of every output row and column when a nearest Resize changes
    /// at most the two innermost axes and selects inside the input there (no extrapolated
    /// entries): then `nearestInner2` does it in one pass. The upsampling of a YOLO-style neck
    /// (2x on H and W) took two axis passes, each with its tap tables and an intermediate
    /// array: 11 us for 64 x 4 x 4 -> 8 x 8 on one core (8 us in one pass; ORT 3-4 us, the rest
    /// is the op's attribute and input parsing). The same indices as the
    /// axis passes (`AxisTaps`, an axis with scale 1 and its length unchanged left as is), so
    /// the same values. nil otherwise.
    static func nearestInnerPlan(_ inShape: [Int], outShape: [Int], scales: [Float], roi: [Float],
                                 _ opt: ResampleOptions) -> (rows: [Int], cols: [Int])? {
        let r = inShape.count
        guard opt.mode == .nearest, r >= 2, outShape.count == r, scales.count == r, roi.count == 2 * r,
              inShape.allSatisfy({ $0 > 0 }), outShape.allSatisfy({ $0 > 0 }) else { return nil }
        for a in 0..<r - 2 where !(scales[a] == 1 && outShape[a] == inShape[a]) { return nil }
        func indices(_ a: Int) -> [Int]? {
            if scales[a] == 1 && outShape[a] == inShape[a] { return Array(0..<inShape[a]) }
            let taps = AxisTaps(inLen: inShape[a], outLen: outShape[a], scale: scales[a], roiStart: roi[a], roiEnd: roi[r + a], opt)
            guard taps.taps == 1, taps.index.count == outShape[a], !taps.outside.contains(true),
                  taps.index.allSatisfy({ (0..<inShape[a]).contains($0) }) else { return nil }
            return taps.index
        }
        guard let rows = indices(r - 2), let cols = indices(r - 1) else { return nil }
        return (rows, cols)
    }

    /// out[..., i, j] = x[..., rows[i], cols[j]] in one pass (see `nearestInnerPlan`).
    static func nearestInner2<T>(_ data: [T], _ inShape: [Int], rows: [Int], cols: [Int]) -> [T] {
        let r = inShape.count, h = inShape[r - 2], w = inShape[r - 1]
        let outer = inShape[..<(r - 2)].reduce(1, *), oh = rows.count, ow = cols.count
        return [T](unsafeUninitializedCapacity: outer * oh * ow) { buf, count in
            data.withUnsafeBufferPointer { src in
                rows.withUnsafeBufferPointer { pr in
                    cols.withUnsafeBufferPointer { pc in
                        var d = buf.baseAddress!
                        for p in 0..<outer {
                            let plane = src.baseAddress! + p * h * w
                            for i in 0..<oh {
                                if i > 0 && pr[i] == pr[i - 1] {
                                    // The same input row as the last output row (an integer
                                    // upscale repeats each row): copy that output row.
                                    d.initialize(from: d - ow, count: ow)
                                } else {
                                    let row = plane + pr[i] * w
                                    for j in 0..<ow { (d + j).initialize(to: row[pc[j]]) }
                                }
                                d += ow
                            }
                        }
                    }
                }
            }
            count = outer * oh * ow
        }
    }

    /// The axis loop of `resample` over any element type; `step` resamples one axis.
    static func resampleAxes<T>(_ x: [T], _ inShape: [Int], outShape: [Int], scales: [Float], roi: [Float], _ opt: ResampleOptions,
                                zero: T, step: ([T], [Int], Int, AxisTaps) -> [T]) -> [T] {
        let r = inShape.count
        var data = x, shape = inShape
        let ratio = (0..<r).map { Double(outShape[$0]) / Double(max(inShape[$0], 1)) }
        var order = (0..<r).sorted { ratio[$0] < ratio[$1] }
        if opt.mode == .nearest {
            // Nearest only selects, so the order cannot change a value: after the shrinking
            // axes, grow the innermost first, so the element-wise gather (innermost axis)
            // runs on the smaller tensor and the outer axes' passes are whole-row copies.
            order = order.filter { ratio[$0] <= 1 } + order.filter { ratio[$0] > 1 }.sorted(by: >)
        }
        for axis in order {
            // ONNX Runtime leaves an axis with scale 1 untouched whatever the coordinate
            // transform (a tf_crop_and_resize roi on it included); so do we.
            if scales[axis] == 1 && outShape[axis] == inShape[axis] { continue }
            let taps = AxisTaps(inLen: inShape[axis], outLen: outShape[axis], scale: scales[axis],
                                roiStart: roi[axis], roiEnd: roi[r + axis], opt)
            if outShape[axis] == inShape[axis] && taps.isIdentity { continue }
            if inShape[axis] == 0 || outShape[axis] == 0 {
                shape[axis] = outShape[axis]; data = [T](repeating: zero, count: shape.reduce(1, *)); continue
            }
            data = step(data, shape, axis, taps)
            shape[axis] = outShape[axis]
        }
        return data
    }
}
