import CGSL

/// A seeded GSL Mersenne Twister: every random choice mpq makes (splits, bootstrap,
/// evolutionary search) comes from one of these, so the same seed gives the same bytes.
public final class SeededRandom {
    private let rng: OpaquePointer
    public let seed: UInt64

    public init(seed: UInt64) {
        self.seed = seed
        rng = OpaquePointer(gsl_rng_alloc(gsl_rng_mt19937))
        gsl_rng_set(UnsafeMutablePointer(rng), UInt(truncatingIfNeeded: seed))
    }

    deinit { gsl_rng_free(UnsafeMutablePointer(rng)) }

    /// Uniform integer in 0..<n (n >= 1).
    public func int(_ n: Int) -> Int { Int(gsl_rng_uniform_int(UnsafeMutablePointer(rng), UInt(n))) }

    /// Uniform double in [0, 1).
    public func uniform() -> Double { gsl_rng_uniform(UnsafeMutablePointer(rng)) }

    /// Fisher-Yates shuffle of 0..<n.
    public func permutation(_ n: Int) -> [Int] {
        var p = Array(0..<n)
        if n > 1 { for i in stride(from: n - 1, to: 0, by: -1) { p.swapAt(i, int(i + 1)) } }
        return p
    }
}
