import Foundation
import ONNX

enum ResizeOps {
    static let table: [String: OpEntry] = [
        "Resize": OpEntry(since: 10) { node, inputs, opset in
            let x = try node.required(inputs, 0, "X")
            func input(_ i: Int) -> Tensor? { i < inputs.count ? inputs[i] : nil }
            if opset < 11 {
                // Resize-10: X and scales only, asymmetric coordinates (as ONNX Runtime runs it).
                return [try Resize(x: x, roi: nil, scales: try node.required(inputs, 1, "scales"), sizes: nil,
                                   coordinateTransformationMode: "asymmetric",
                                   mode: node.string("mode", default: "nearest"), nearestMode: "simple")]
            }
            return [try Resize(x: x, roi: input(1), scales: input(2), sizes: input(3),
                               antialias: node.int("antialias", default: 0), axes: node.ints("axes"),
                               coordinateTransformationMode: node.string("coordinate_transformation_mode", default: "half_pixel"),
                               cubicCoeffA: node.float("cubic_coeff_a", default: -0.75),
                               excludeOutside: node.int("exclude_outside", default: 0),
                               extrapolationValue: node.float("extrapolation_value", default: 0),
                               keepAspectRatioPolicy: node.string("keep_aspect_ratio_policy", default: "stretch"),
                               mode: node.string("mode", default: "nearest"),
                               nearestMode: node.string("nearest_mode", default: "round_prefer_floor"))]
        },
        "Upsample": OpEntry(since: 7) { node, inputs, opset in
            let scales: [Float]
            if opset >= 9 {
                scales = try node.required(inputs, 1, "scales").asFloats
            } else {
                guard let s = node.floats("scales") else { throw OpError("Upsample before opset 9 requires the scales attribute") }
                scales = s
            }
            return [try Upsample(x: try node.required(inputs, 0, "X"), scales: scales,
                                 mode: node.string("mode", default: "nearest"))]
        },
    ]

    /// ONNX Upsample (opsets 7-9): Resize-10 semantics, asymmetric coordinates.
    static func Upsample(x: Tensor, scales: [Float], mode: String) throws -> Tensor {
        try Resize(x: x, roi: nil, scales: Tensor(shape: [scales.count], floats: scales), sizes: nil,
                   coordinateTransformationMode: "asymmetric", mode: mode, nearestMode: "simple")
    }

    /// ONNX Resize (opsets 10-19). Exactly one of `scales` and `sizes` is given (an empty
    /// tensor counts as absent); with `axes` they cover only those axes. `nearestMode`
    /// "simple" is the Resize-10 rounding.
    static func Resize(x: Tensor, roi: Tensor?, scales: Tensor?, sizes: Tensor?, antialias: Int = 0, axes: [Int]? = nil,
                       coordinateTransformationMode: String, cubicCoeffA: Float = -0.75, excludeOutside: Int = 0,
                       extrapolationValue: Float = 0, keepAspectRatioPolicy: String = "stretch",
                       mode: String, nearestMode: String) throws -> Tensor {
        try ensureFloat(x, "Resize X")
        let r = x.rank
        let modeName = mode == "bilinear" || mode == "trilinear" ? "linear" : mode
        guard let m = ResizeMode(rawValue: modeName) else {
            throw OpError("Resize mode '\(mode)' is not one of nearest, linear, cubic")
        }
        guard let transform = CoordinateTransform(rawValue: coordinateTransformationMode) else {
            throw OpError("Resize coordinate_transformation_mode '\(coordinateTransformationMode)' is not supported")
        }
        guard let nearest = NearestMode(rawValue: nearestMode) else {
            throw OpError("Resize nearest_mode '\(nearestMode)' is not one of round_prefer_floor, round_prefer_ceil, floor, ceil")
        }
        var seen = Set<Int>()
        let ax = try (axes ?? Array(0..<r)).map { a -> Int in
            let n = try normalizeAxis(a, rank: r)
            guard seen.insert(n).inserted else { throw OpError("Resize axes \(axes!) repeat axis \(a)") }
            return n
        }
        let scaleValues = scales.map(\.asFloats) ?? [], sizeValues = sizes.map(\.asInts) ?? []
        guard scaleValues.isEmpty != sizeValues.isEmpty else {
            throw OpError("Resize needs exactly one of scales \(scales.map { Tensor.describe($0.shape) } ?? "absent") and sizes \(sizes.map { Tensor.describe($0.shape) } ?? "absent")")
        }
        var fullScales = [Float](repeating: 1, count: r), outShape = x.shape
        if !scaleValues.isEmpty {
            guard scaleValues.count == ax.count else {
                throw OpError("Resize scales has \(scaleValues.count) values for X \(Tensor.describe(x.shape)) and \(ax.count) axes")
            }
            for (i, a) in ax.enumerated() {
                let s = scaleValues[i]
                guard s > 0, s.isFinite else { throw OpError("Resize scales \(scaleValues) must be positive") }
                fullScales[a] = s
                // Float product then truncation, as ONNX Runtime sizes its output; checked
                // in Float first because Int(_:) traps on a value beyond Int's range.
                let size = s * Float(x.shape[a])
                guard size < Float(TensorLimits.maxBytes) else {
                    throw OpError("Resize scales \(scaleValues) make axis \(a) of \(Tensor.describe(x.shape)) \(size) long, over the limit of \(TensorLimits.describeBytes(TensorLimits.maxBytes)) (MPQ_MAX_TENSOR_BYTES)")
                }
                outShape[a] = Int(size)
            }
        } else {
            guard sizeValues.count == ax.count else {
                throw OpError("Resize sizes has \(sizeValues.count) values for X \(Tensor.describe(x.shape)) and \(ax.count) axes")
            }
            guard sizeValues.allSatisfy({ $0 > 0 }), ax.allSatisfy({ x.shape[$0] > 0 }) else {
                throw OpError("Resize sizes \(sizeValues) and X \(Tensor.describe(x.shape)) must be positive")
            }
            for (i, a) in ax.enumerated() { fullScales[a] = Float(sizeValues[i]) / Float(x.shape[a]); outShape[a] = Int(sizeValues[i]) }
            if keepAspectRatioPolicy != "stretch" {
                guard keepAspectRatioPolicy == "not_larger" || keepAspectRatioPolicy == "not_smaller" else {
                    throw OpError("Resize keep_aspect_ratio_policy '\(keepAspectRatioPolicy)' is not one of stretch, not_larger, not_smaller")
                }
                let ratios = ax.map { fullScales[$0] }
                let s = keepAspectRatioPolicy == "not_larger" ? ratios.min()! : ratios.max()!
                for a in ax {
                    fullScales[a] = s
                    let size = (s * Float(x.shape[a])).rounded(.toNearestOrAwayFromZero)
                    guard size < Float(TensorLimits.maxBytes) else { throw OpError("Resize sizes \(sizeValues) are too large") }
                    outShape[a] = Int(size)
                }
            }
        }
        if antialias != 0 && m == .nearest {
            throw OpError("Resize antialias=1 needs mode linear or cubic, got nearest (as ONNX Runtime requires)")
        }
        var fullRoi = [Float](repeating: 0, count: r) + [Float](repeating: 1, count: r)
        if transform == .tfCropAndResize, let roi, roi.count > 0 {
            let v = roi.asFloats
            guard v.count == 2 * ax.count else {
                throw OpError("Resize roi \(Tensor.describe(roi.shape)) must hold \(2 * ax.count) values (starts, then ends)")
            }
            // Sampling converts roi-derived coordinates to Int, which traps on NaN or huge values.
            guard v.allSatisfy({ $0.isFinite && abs($0) <= 1e6 }) else {
                throw OpError("Resize roi \(v.prefix(8)) must be finite and within +-1e6")
            }
            for (i, a) in ax.enumerated() { fullRoi[a] = v[i]; fullRoi[r + a] = v[ax.count + i] }
        }
        // ONNX Runtime copies the input whenever the output shape equals it, whatever the
        // scales, mode or roi say.
        if outShape == x.shape { return x }
        try checkedCount(outShape, dtype: x.dtype, "Resize output")
        let opt = ResampleOptions(mode: m, transform: transform, nearestMode: nearest, cubicCoeffA: cubicCoeffA,
                                  excludeOutside: excludeOutside != 0, extrapolationValue: extrapolationValue,
                                  antialias: antialias != 0)
        return resample(x, outShape: outShape, scales: fullScales, roi: fullRoi, opt)
    }
}
