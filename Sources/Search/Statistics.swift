import CGSL
import Foundation

/// A two-sided interval for a statistic, with the level it was built for.
public struct ConfidenceInterval: Codable, Equatable, Sendable {
    public var low: Double
    public var high: Double
    /// e.g. 0.95.
    public var confidence: Double

    public init(low: Double, high: Double, confidence: Double) {
        self.low = low; self.high = high; self.confidence = confidence
    }

    public func contains(_ x: Double) -> Bool { low <= x && x <= high }
}

/// Exact McNemar test of two classifiers scored on the same samples.
public struct McNemarResult: Codable, Equatable, Sendable {
    /// Samples the reference (FP32) got right and the candidate got wrong.
    public var b: Int
    /// Samples the candidate got right and the reference got wrong.
    public var c: Int
    /// Two-sided exact p-value: min(1, 2 P[X <= min(b, c)]), X ~ Binomial(b + c, 1/2); 1 when b + c = 0.
    public var p: Double
}

/// The statistics that validation reports: paired bootstrap intervals of a mean drop,
/// the exact McNemar test, and the plain helpers they rest on (docs/validation.md).
public enum Statistics {
    /// Arithmetic mean; 0 for no values.
    public static func mean(_ x: [Double]) -> Double {
        x.isEmpty ? 0 : x.reduce(0, +) / Double(x.count)
    }

    /// Sample standard deviation (n - 1 in the denominator); 0 for fewer than two values.
    public static func standardDeviation(_ x: [Double]) -> Double {
        guard x.count > 1 else { return 0 }
        let m = mean(x)
        return (x.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(x.count - 1)).squareRoot()
    }

    /// Standard error of the mean, s / sqrt(n); 0 for fewer than two values.
    public static func standardError(_ x: [Double]) -> Double {
        guard x.count > 1 else { return 0 }
        return standardDeviation(x) / Double(x.count).squareRoot()
    }

    /// Quantile `q` in [0, 1] of ascending data, interpolated linearly between order
    /// statistics (GSL's `gsl_stats_quantile_from_sorted_data`, numpy's default).
    public static func quantile(sorted x: [Double], _ q: Double) -> Double {
        precondition(!x.isEmpty, "quantile of no values")
        return x.withUnsafeBufferPointer { gsl_stats_quantile_from_sorted_data($0.baseAddress, 1, $0.count, min(max(q, 0), 1)) }
    }

    /// Paired percentile bootstrap interval of the mean of `reference[i] - candidate[i]`
    /// (the drop, in whatever unit the scores are in).
    ///
    /// Each of `resamples` replicates draws n sample indices with replacement from a
    /// `SeededRandom(seed:)` and takes the mean difference over them; both scores of a
    /// sample always travel together, so the interval keeps the pairing's (much smaller)
    /// variance. The interval is the (1 - confidence)/2 and (1 + confidence)/2 quantiles
    /// of the replicates. The same inputs and seed give the same interval bit for bit.
    public static func pairedBootstrapCI(reference: [Double], candidate: [Double], resamples: Int = 2000,
                                         confidence: Double = 0.95, seed: UInt64) -> ConfidenceInterval {
        precondition(reference.count == candidate.count, "paired bootstrap: \(reference.count) reference and \(candidate.count) candidate scores")
        precondition(confidence > 0 && confidence < 1, "confidence must lie in (0, 1), got \(confidence)")
        let n = reference.count
        guard n > 0 else { return ConfidenceInterval(low: 0, high: 0, confidence: confidence) }
        let d = zip(reference, candidate).map { $0 - $1 }
        let rng = SeededRandom(seed: seed)
        var means = [Double](repeating: 0, count: max(1, resamples))
        d.withUnsafeBufferPointer { d in
            for r in means.indices {
                var s = 0.0
                for _ in 0..<n { s += d[rng.int(n)] }
                means[r] = s / Double(n)
            }
        }
        means.sort()
        let alpha = 1 - confidence
        return ConfidenceInterval(low: quantile(sorted: means, alpha / 2), high: quantile(sorted: means, 1 - alpha / 2),
                                  confidence: confidence)
    }

    /// Exact two-sided McNemar p-value from the discordant counts `b` and `c`.
    public static func mcnemarExactP(b: Int, c: Int) -> Double {
        precondition(b >= 0 && c >= 0, "McNemar counts must be non-negative, got b=\(b) c=\(c)")
        let n = b + c
        guard n > 0 else { return 1 }
        let tail = gsl_cdf_binomial_P(UInt32(min(b, c)), 0.5, UInt32(n))
        return min(1, 2 * tail)
    }

    /// Exact McNemar test of paired binary outcomes (true = correct).
    public static func mcnemar(reference: [Bool], candidate: [Bool]) -> McNemarResult {
        precondition(reference.count == candidate.count, "McNemar: \(reference.count) reference and \(candidate.count) candidate outcomes")
        var b = 0, c = 0
        for (r, k) in zip(reference, candidate) {
            if r && !k { b += 1 } else if !r && k { c += 1 }
        }
        return McNemarResult(b: b, c: c, p: mcnemarExactP(b: b, c: c))
    }
}
