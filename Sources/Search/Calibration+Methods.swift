import Foundation
import Kernels

/// How a tensor's range is chosen from its statistics (docs/calibration.md).
public enum CalibrationMethod: String, CaseIterable, Codable, Sendable {
    /// Observed min and max (ONNX Runtime's MinMax).
    case minmax
    /// Symmetric percentile of |x| (ONNX Runtime's Percentile, symmetric as in `quantize_static`).
    case percentile
    /// KL-divergence threshold search (ONNX Runtime's / TensorRT's entropy calibration).
    case entropy
    /// Range minimising expected uint8 quantization error (rounding inside, clipping outside).
    case mse

    /// Whether pass 2 (a histogram per tensor) is needed.
    public var needsHistogram: Bool { self != .minmax }
}

/// Calibration settings; every field has ONNX Runtime's default except `bins` for entropy
/// (ORT's 128 leaves one candidate threshold, the full range: entropy degenerates to minmax).
public struct CalibrationOptions: Equatable, Sendable {
    public var method: CalibrationMethod
    /// Percentile of |x| kept by the percentile method, in (0, 100].
    public var percentile: Double
    /// Histogram bins per tensor in pass 2.
    public var bins: Int
    /// Bins of the quantized distribution Q in the entropy search (ORT's num_quantized_bins).
    public var quantizedBins: Int
    /// Candidate clip points per side in the MSE search.
    public var mseCandidates: Int
    /// Samples per batch streamed through the session.
    public var batchSize: Int

    public init(method: CalibrationMethod = .minmax, percentile: Double = 99.999, bins: Int = 2048,
                quantizedBins: Int = 128, mseCandidates: Int = 128, batchSize: Int = 64) {
        self.method = method; self.percentile = percentile; self.bins = bins
        self.quantizedBins = quantizedBins; self.mseCandidates = mseCandidates; self.batchSize = batchSize
    }

    /// What is wrong with these options, if anything.
    public var problem: String? {
        if !(percentile > 0 && percentile <= 100) { return "percentile must be in (0, 100], got \(percentile)" }
        if bins < 1 { return "bins must be at least 1, got \(bins)" }
        if method == .entropy && bins < 2 * quantizedBins {
            return "entropy needs at least \(2 * quantizedBins) bins (twice the \(quantizedBins) quantized bins), got \(bins)"
        }
        if quantizedBins < 2 { return "quantized bins must be at least 2, got \(quantizedBins)" }
        if mseCandidates < 1 { return "MSE candidates must be at least 1, got \(mseCandidates)" }
        if batchSize < 1 { return "batch size must be at least 1, got \(batchSize)" }
        return nil
    }

    /// The histogram a method reads: of |x| over [min|x|, max|x|] (percentile), of x over
    /// [-max|x|, max|x|] (entropy), of x over [min, max] (mse).
    func histogramLayout(_ s: RangeStatistics) -> (lo: Double, hi: Double, absolute: Bool)? {
        switch method {
        case .minmax: return nil
        case .percentile: return (Double(s.absMin), Double(s.absMax), true)
        case .entropy: return (-Double(s.absMax), Double(s.absMax), false)
        case .mse: return (Double(s.min), Double(s.max), false)
        }
    }
}

/// The range rules, as pure functions of pass-1 statistics and the pass-2 histogram.
public enum CalibrationMethods {
    public typealias Range = CalibrationTable.Range

    /// The range `options.method` gives; without a histogram (constant tensor) it is min/max.
    public static func range(_ s: RangeStatistics, histogram h: HistogramCounts?, options: CalibrationOptions) -> Range {
        let minmax = Range(min: s.min, max: s.max)
        guard let h, h.total > 0 else { return minmax }
        switch options.method {
        case .minmax: return minmax
        case .percentile: return percentile(s, h, percentile: options.percentile)
        case .entropy: return entropy(s, h, quantizedBins: options.quantizedBins)
        case .mse: return mse(s, h, candidates: options.mseCandidates)
        }
    }

    /// ORT `compute_percentile` with `symmetric=True`: over the histogram of |x|, the
    /// threshold t is the left edge of the first bin where the CDF reaches the percentile;
    /// the range is (-t, t) clamped to the observed [min, max]. For a tensor without
    /// negatives that is [min, t], which quantizes as [0, t] (the range always holds 0).
    public static func percentile(_ s: RangeStatistics, _ h: HistogramCounts, percentile p: Double) -> Range {
        let total = h.total
        let target = p / 100
        var cdf = 0.0
        var idx = h.bins                                    // np.searchsorted past the end
        for (i, c) in h.counts.enumerated() {
            cdf += c / total                                // np.cumsum(hist / total)
            if cdf >= target { idx = i; break }
        }
        let t = h.edge(idx)
        return Range(min: -t < s.min ? s.min : -t, max: t > s.max ? s.max : t)
    }

    /// ORT `get_entropy_threshold` over a histogram of x on [-max|x|, max|x|]: candidate
    /// windows of 2i+1 bins around the zero bin, i from quantizedBins/2 up; P is the window
    /// with the outliers folded into its edge bins, Q the window merged into `quantizedBins`
    /// bins and spread back over the merged block (integer division, as ORT's int64 `q`);
    /// both are smoothed, and the window with the least KL(P||Q) wins, clamped to [min, max].
    public static func entropy(_ s: RangeStatistics, _ h: HistogramCounts, quantizedBins nq: Int) -> Range {
        let n = h.bins
        let zero = n / 2, half = nq / 2
        guard half <= zero, nq >= 1 else { return Range(min: s.min, max: s.max) }
        var prefix = [Double](repeating: 0, count: n + 1)
        for i in 0..<n { prefix[i + 1] = prefix[i] + h.counts[i] }
        // Buffers reused by every candidate: the search is O(bins) per candidate, no allocation.
        var p = [Double](repeating: 0, count: n), q = [Double](repeating: 0, count: n)
        var best = Float.infinity, bestWindow = (start: 0, end: n)
        for i in half...zero {
            let start = zero - i, end = Swift.min(zero + i + 1, n)
            let size = end - start
            for j in 0..<size { p[j] = h.counts[start + j] }
            p[0] += prefix[start]
            p[size - 1] += prefix[n] - prefix[end]
            let merged = size / nq
            for j in 0..<size { q[j] = 0 }
            for k in 0..<nq {
                let a = k * merged, b = a + merged
                var quantized = prefix[start + b] - prefix[start + a]
                if k == nq - 1 { quantized += prefix[end] - prefix[start + nq * merged] }
                var norm = 0
                for j in a..<b where p[j] != 0 { norm += 1 }
                if norm != 0 {
                    let v = (quantized / Double(norm)).rounded(.towardZero)
                    for j in a..<b { q[j] = v }
                }
            }
            let div = klSmoothed(p, q, count: size).map(Float.init) ?? .infinity
            if div < best { best = div; bestWindow = (start, end) }      // np.argmin: first minimum
        }
        let lo = h.edge(bestWindow.start), hi = h.edge(bestWindow.end)
        return Range(min: lo < s.min ? s.min : lo, max: hi > s.max ? s.max : hi)
    }

    /// KL(P||Q) (scipy.stats.entropy, which normalises both) of the first `count` entries
    /// after ORT's `smooth_distribution` (eps 1e-4, in float32 as ORT): zeros get eps, the
    /// non-zeros give back the same total. nil when either is all zeros.
    static func klSmoothed(_ p: [Double], _ q: [Double], count m: Int, eps: Double = 0.0001) -> Double? {
        func smoothing(_ x: [Double]) -> (eps1: Float, sum: Double)? {
            var zeros = 0
            for j in 0..<m where x[j] == 0 { zeros += 1 }
            let nonzeros = m - zeros
            guard nonzeros > 0 else { return nil }
            let eps1 = Float(eps * Double(zeros) / Double(nonzeros))
            guard eps1 < 1 else { return nil }
            var sum = 0.0
            for j in 0..<m {
                let v = x[j] == 0 ? Float(eps) : Float(x[j]) - eps1
                guard v > 0 else { return nil }
                sum += Double(v)
            }
            return (eps1, sum)
        }
        guard let sp = smoothing(p), let sq = smoothing(q) else { return nil }
        var d = 0.0
        for j in 0..<m {
            let pj = Double(p[j] == 0 ? Float(eps) : Float(p[j]) - sp.eps1) / sp.sum
            let qj = Double(q[j] == 0 ? Float(eps) : Float(q[j]) - sq.eps1) / sq.sum
            d += pj * Foundation.log(pj / qj)
        }
        return d
    }

    /// The range [a, b] (a <= 0 <= b, as uint8 ranges hold 0) minimising the expected squared
    /// error of uint8 asymmetric quantization, E = N_in * s^2 / 12 + sum over clipped values of
    /// (x - clip(x))^2 with s = (b - a) / 255, evaluated on bin centres; exact zeros are exact
    /// in uint8 and are not charged rounding noise. Candidates: b = max * k / K and
    /// a = min * k / K, k = 1...K, searched jointly; ties keep the wider range.
    public static func mse(_ s: RangeStatistics, _ h: HistogramCounts, candidates K: Int) -> Range {
        let n = h.bins
        let centers = (0..<n).map(h.center)
        let total = h.total
        // Exactly-zero values sit in the bin holding 0 and have no rounding error.
        let exactZeros = Double(s.zeros)
        func side(_ bound: Float) -> [(clip: Double, count: Double, error: Double)] {
            guard bound != 0 else { return [(0, 0, 0)] }
            return (1...K).reversed().map { k in
                let c = Double(bound) * Double(k) / Double(K)
                var count = 0.0, err = 0.0
                for (i, x) in centers.enumerated() where bound > 0 ? x > c : x < c {
                    count += h.counts[i]; err += h.counts[i] * (x - c) * (x - c)
                }
                return (c, count, err)
            }
        }
        let uppers = side(Swift.max(s.max, 0)), lowers = side(Swift.min(s.min, 0))
        var best = Double.infinity, choice = (lo: Double(Swift.min(s.min, 0)), hi: Double(Swift.max(s.max, 0)))
        for u in uppers {
            for l in lowers {
                let step = (u.clip - l.clip) / 255
                let inside = Swift.max(0, total - u.count - l.count - exactZeros)
                let e = inside * step * step / 12 + u.error + l.error
                if e < best { best = e; choice = (l.clip, u.clip) }
            }
        }
        // Without negatives (or positives) the observed bound is kept, as for the other methods.
        let lo = s.min >= 0 ? s.min : Float(choice.lo), hi = s.max <= 0 ? s.max : Float(choice.hi)
        return Range(min: Swift.max(lo, s.min), max: Swift.min(hi, s.max))
    }
}
