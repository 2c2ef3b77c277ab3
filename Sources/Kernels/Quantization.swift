import Foundation
import ONNX

/// mpq's INT8 scheme (docs/quantization.md), ONNX Runtime's default static QDQ scheme:
/// activations uint8 asymmetric per tensor, weights int8 symmetric per output channel in
/// [-127, 127], bias int32 at scale s_x * s_w, round half to even, saturate.
public struct ActivationQuant: Codable, Hashable, Sendable {
    public var scale: Float
    public var zeroPoint: UInt8

    public init(scale: Float, zeroPoint: UInt8) { self.scale = scale; self.zeroPoint = zeroPoint }

    /// Scale and zero point for a calibrated range, as ONNX Runtime's `compute_scale_zp`:
    /// the range is widened to contain 0, the scale computed in double and stored as float,
    /// the zero point rounded half to even from the double scale.
    public init(min lo: Float, max hi: Float) {
        let rmin = Double(Swift.min(lo, 0)), rmax = Double(Swift.max(hi, 0))
        let scale = (rmax - rmin) / 255
        if Float(scale) < Float.leastNormalMagnitude || !scale.isFinite {
            self.init(scale: 1, zeroPoint: 0)
            return
        }
        let zp = (0 - rmin / scale).rounded(.toNearestOrEven)
        self.init(scale: Float(scale), zeroPoint: UInt8(Swift.max(0, Swift.min(255, zp))))
    }

    /// The float interval these parameters represent without clipping.
    public var representable: (lo: Float, hi: Float) {
        (scale * (0 - Float(zeroPoint)), scale * (255 - Float(zeroPoint)))
    }
}

/// The range INT8 weights are quantized to (docs/quantization.md, "Weight bits").
public enum WeightBits: Int, Codable, CaseIterable, Sendable {
    /// [-127, 127]: ONNX Runtime's default symmetric int8 weights.
    case eight = 8
    /// [-64, 64]: ONNX Runtime's `reduce_range` for symmetric int8 weights. Any u8 x s8 pair
    /// sum then fits int16 (255 * 128), so AVX2 CPUs without VNNI multiply them exactly with
    /// `vpmaddubsw`, mpq (qgemm_avx2.c) and ONNX Runtime alike, at about 1.4x the rate of the
    /// exact widening path; one bit less weight resolution is the price.
    case seven = 7

    /// The largest weight code magnitude.
    public var maxCode: Int { self == .eight ? 127 : 64 }
}

/// Symmetric per-channel int8 weights: `values` is [channels][perChannel] row-major.
public struct QuantizedWeights: Sendable {
    public var values: [Int8]
    public var scales: [Float]
    public var channels: Int
    public var perChannel: Int

    /// Quantizes `w` ([channels][perChannel] row-major) per row, as ONNX Runtime's
    /// `quantize_data(symmetric=True)` for int8: scale = absmax / 127 (double, stored as float),
    /// q = clip(round_half_even(w / scale), -127, 127) with the division in float; with
    /// `bits` .seven (`reduce_range`) 64 for 127.
    public init(rows w: [Float], channels: Int, bits: WeightBits = .eight) {
        precondition(channels > 0 && w.count % channels == 0)
        self.channels = channels
        self.perChannel = w.count / channels
        var values = [Int8](repeating: 0, count: w.count)
        var scales = [Float](repeating: 1, count: channels)
        for c in 0..<channels {
            let row = w[c * perChannel..<(c + 1) * perChannel]
            let absmax = Double(row.map { abs($0) }.max() ?? 0)
            let top = bits.maxCode
            var s = Float(2 * absmax / Double(2 * top))
            if s < Float.leastNormalMagnitude { s = 1 }
            scales[c] = s
            for (i, v) in row.enumerated() {
                let q = (v / s).rounded(.toNearestOrEven)
                values[c * perChannel + i] = Int8(Swift.max(Float(-top), Swift.min(Float(top), q)))
            }
        }
        self.values = values
        self.scales = scales
    }
}

/// Bias as ONNX Runtime's QDQ quantizer stores it: int32 at scale s_x * s_w[c], here
/// returned dequantized, so the float epilogue adds exactly what the int32 bias represents.
/// The int32 bias values themselves (what a QDQ export stores and QLinearConv adds).
public func quantizedBiasInt32(_ bias: [Float], inputScale: Float, weightScales: [Float]) -> [Int32] {
    bias.enumerated().map { c, b in
        let s = inputScale * weightScales[c]
        guard s > 0 else { return 0 }
        let q = (Double(b) / Double(s)).rounded(.toNearestOrEven)
        return Int32(Swift.max(Double(Int32.min), Swift.min(Double(Int32.max), q)))
    }
}

public func quantizedBias(_ bias: [Float], inputScale: Float, weightScales: [Float]) -> [Float] {
    bias.enumerated().map { c, b in
        let s = inputScale * weightScales[c]
        guard s > 0 else { return b }
        let q = (Double(b) / Double(s)).rounded(.toNearestOrEven)
        return Float(Swift.max(Double(Int32.min), Swift.min(Double(Int32.max), q))) * s
    }
}

/// Calibrated ranges of the tensors INT8 layers read, keyed by tensor name.
public struct CalibrationTable: Codable, Equatable, Sendable {
    public struct Range: Codable, Equatable, Sendable {
        public var min: Float
        public var max: Float
        public init(min: Float, max: Float) { self.min = min; self.max = max }
    }
    /// Format version of the JSON file.
    public var version: Int = 1
    /// Method that produced the ranges (minmax, percentile, entropy, mse).
    public var method: String
    /// Digest of the model's graph (nodes and weights), so a table is never applied to another model.
    public var modelDigest: String
    /// Samples the ranges were computed on.
    public var samples: Int
    /// Digest of the data the ranges came from ("rows:" + SHA-256 of per-row input hashes),
    /// so a search can tell a table computed on its own search or holdout split; nil in
    /// tables written before it was recorded.
    public var dataDigest: String?
    public var ranges: [String: Range]
    /// Parameters recorded in a precision map, used before `ranges` (never written to a
    /// table file): the map's scores were measured with them, so running the map needs no
    /// calibration data (docs/precision-map.md, "Self-contained maps").
    public var recorded: RecordedQuantization?

    private enum CodingKeys: String, CodingKey { case version, method, modelDigest, samples, dataDigest, ranges }

    public init(method: String, modelDigest: String, samples: Int, ranges: [String: Range]) {
        self.method = method; self.modelDigest = modelDigest; self.samples = samples; self.ranges = ranges
    }

    public func quant(for tensor: String) -> ActivationQuant? {
        if let q = recorded?.quant[tensor] { return q }
        return ranges[tensor].map { ActivationQuant(min: $0.min, max: $0.max) }
    }
}

/// Activation parameters a precision map recorded, keyed by source tensor (the tensor
/// whose range a shared-scale chain uses, `QuantPlan.sources`).
public struct RecordedQuantization: Equatable, Sendable {
    public var quant: [String: ActivationQuant]
    /// `ort` scheme: the (source) tensors the map's plan requantized. Exactly these are
    /// requantizable, so the plan rebuilt from the map is the plan its scores came from;
    /// nil: decided from the ranges.
    public var requantized: Set<String>?

    public init(quant: [String: ActivationQuant], requantized: Set<String>?) {
        self.quant = quant; self.requantized = requantized
    }
}
