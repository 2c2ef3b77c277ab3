import CKernels

/// One pass over a float tensor for calibration's range statistics (`mpq_range_stats_f32`,
/// AVX-512 where the CPU has it): the finite minimum and maximum (a zero one is the array's
/// first zero), the smallest |x|, and counts of finite values, exact zeros and skipped
/// non-finite values. The same bits on every path, so calibration tables do not depend on
/// the CPU.
public struct RangeScan: Equatable, Sendable {
    public var min: Float, max: Float, absMin: Float
    public var finite: Int, zeros: Int, nonFinite: Int

    public init(_ values: UnsafeBufferPointer<Float>, path: KernelPath = .auto) {
        var s = mpq_range_stats()
        mpq_range_stats_f32(path.c, values.baseAddress, values.count, &s)
        self.init(min: s.min, max: s.max, absMin: s.abs_min, finite: Int(s.finite), zeros: Int(s.zeros),
                  nonFinite: Int(s.non_finite))
    }

    public init(min: Float, max: Float, absMin: Float, finite: Int, zeros: Int, nonFinite: Int) {
        self.min = min; self.max = max; self.absMin = absMin
        self.finite = finite; self.zeros = zeros; self.nonFinite = nonFinite
    }
}
