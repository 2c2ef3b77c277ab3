import CGSL
import Foundation
import Kernels

/// What pass 1 keeps of one tensor: a few numbers, whatever the data set size.
public struct RangeStatistics: Equatable, Sendable {
    /// Smallest and largest finite value seen (0 and 0 before any value, as ONNX Runtime).
    public var min: Float = 0
    public var max: Float = 0
    /// Smallest |x| seen: the lower edge of the percentile method's histogram of |x|.
    public var absMin: Float = 0
    /// Finite values seen, and how many of them were exactly zero (ReLU outputs).
    public var count: Int = 0
    public var zeros: Int = 0
    /// NaN and infinite values, skipped (ONNX Runtime uses nanmin/nanmax).
    public var nonFinite: Int = 0

    public init() {}

    /// Largest magnitude: the half-width of the entropy method's symmetric histogram.
    public var absMax: Float { Swift.max(abs(min), abs(max)) }

    /// One tensor's values: a vectorised scan (`RangeScan`) with the scalar loop's bits.
    public mutating func observe(_ values: UnsafeBufferPointer<Float>) {
        guard !values.isEmpty else { return }
        let scan = RangeScan(values)
        nonFinite += scan.nonFinite
        guard scan.finite > 0 else { return }
        if count == 0 { min = scan.min; max = scan.max; absMin = scan.absMin } else {
            min = Swift.min(min, scan.min); max = Swift.max(max, scan.max); absMin = Swift.min(absMin, scan.absMin)
        }
        count += scan.finite
        zeros += scan.zeros
    }

    public mutating func observe(_ values: [Float]) { values.withUnsafeBufferPointer { observe($0) } }
}

/// A histogram of fixed size over a range known from pass 1: counts per bin and the edges
/// as NumPy's `np.histogram` computes them, which is what the methods return thresholds from.
public struct HistogramCounts: Equatable, Sendable {
    public var counts: [Double]
    public var lo: Double
    public var hi: Double

    public init(counts: [Double], lo: Double, hi: Double) {
        self.counts = counts; self.lo = lo; self.hi = hi
    }

    public var bins: Int { counts.count }
    public var total: Double { counts.reduce(0, +) }

    /// Edge `i` of `bins + 1`, as `np.linspace(lo, hi, bins + 1)` in float32: `i * step + lo`,
    /// the last edge exactly `hi`.
    public func edge(_ i: Int) -> Float {
        i >= bins ? Float(hi) : Float(Double(i) * ((hi - lo) / Double(bins)) + lo)
    }

    /// Centre of bin `i`, in double.
    public func center(_ i: Int) -> Double { lo + (Double(i) + 0.5) * (hi - lo) / Double(bins) }
}

/// A GSL histogram with uniform bins; values are binned as `gsl_histogram_increment` does
/// (half-open bins), except that the upper edge itself falls in the last bin, as NumPy's.
/// Holds `2 * bins + 1` doubles: the memory bound of pass 2 per tensor.
final class UniformHistogram {
    private let raw: UnsafeMutablePointer<gsl_histogram>
    let bins: Int
    let lo: Double
    let hi: Double
    /// Bin |x| instead of x (the percentile method's symmetric histogram).
    let absolute: Bool

    /// nil when the range is empty (a constant tensor): the methods then return min/max.
    init?(bins: Int, lo: Double, hi: Double, absolute: Bool) {
        guard bins >= 1, lo.isFinite, hi.isFinite, lo < hi, let h = gsl_histogram_alloc(bins) else { return nil }
        gsl_histogram_set_ranges_uniform(h, lo, hi)
        raw = h
        self.bins = bins; self.lo = lo; self.hi = hi; self.absolute = absolute
    }

    deinit { gsl_histogram_free(raw) }

    func add(_ values: UnsafeBufferPointer<Float>) {
        // The bin is computed directly (the hot loop of pass 2), then corrected against the
        // GSL edges exactly as gsl_histogram_find does for uniform ranges.
        guard let range = raw.pointee.range, let bin = raw.pointee.bin else { return }
        let n = bins, lo = self.lo, perUnit = Double(bins) / (hi - lo)
        let absolute = self.absolute
        for x in values where x.isFinite {
            let d = absolute ? Double(abs(x)) : Double(x)
            var i = Int(Swift.max(-1, Swift.min(Double(n), (d - lo) * perUnit)))
            i = Swift.max(0, Swift.min(n - 1, i))
            if i > 0 && d < range[i] { i -= 1 } else if i < n - 1 && d >= range[i + 1] { i += 1 }
            bin[i] += 1
        }
    }

    var snapshot: HistogramCounts {
        HistogramCounts(counts: (0..<bins).map { gsl_histogram_get(raw, $0) }, lo: lo, hi: hi)
    }
}
