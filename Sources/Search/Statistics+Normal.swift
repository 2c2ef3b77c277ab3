import Foundation

extension Statistics {
    /// Φ(z), the standard normal distribution function.
    public static func normalCDF(_ z: Double) -> Double { 0.5 * erfc(-z / 2.squareRoot()) }

    /// Φ⁻¹(p) for p in (0, 1), by bisection on `normalCDF` (exact to ~1e-12; called once per
    /// evaluator, so speed does not matter).
    public static func normalQuantile(_ p: Double) -> Double {
        precondition(p > 0 && p < 1, "normalQuantile needs p in (0, 1), got \(p)")
        var lo = -40.0, hi = 40.0
        for _ in 0..<200 {
            let mid = (lo + hi) / 2
            if normalCDF(mid) < p { lo = mid } else { hi = mid }
        }
        return (lo + hi) / 2
    }
}
