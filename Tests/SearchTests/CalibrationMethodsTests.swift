import XCTest
import Kernels
@testable import Search

/// The range rules on synthetic tensors whose answers are known. Samples are deterministic
/// quantiles of the distribution (x_i = F^-1((i + 0.5) / n)), so no generator is needed.
final class CalibrationMethodsTests: XCTestCase {
    /// One bin of the default 2048 over the tested range, the methods' resolution.
    static func binWidth(_ lo: Float, _ hi: Float, bins: Int = 2048) -> Float { (hi - lo) / Float(bins) }

    static func uniform(_ n: Int, _ lo: Float, _ hi: Float) -> [Float] {
        (0..<n).map { lo + (hi - lo) * (Float($0) + 0.5) / Float(n) }
    }

    /// Exponential(1) quantiles: a long right tail (max about ln(2n)).
    static func exponential(_ n: Int) -> [Float] {
        (0..<n).map { Float(-Foundation.log(1 - (Double($0) + 0.5) / Double(n))) }
    }

    func options(_ m: CalibrationMethod) -> CalibrationOptions { CalibrationOptions(method: m) }

    func testMinMaxIsExactAndSkipsNonFinite() {
        let batches: [[Float]] = [[0.5, -1.25, 3], [.nan, 7.75, -.infinity], [], [-2.5, 0]]
        let r = TensorCalibration.range(of: batches, options: options(.minmax))
        XCTAssertEqual(r, CalibrationTable.Range(min: -2.5, max: 7.75))
        var s = RangeStatistics()
        for b in batches { s.observe(b) }
        XCTAssertEqual(s.count, 6)
        XCTAssertEqual(s.zeros, 1)
        XCTAssertEqual(s.nonFinite, 2)
        XCTAssertEqual(s.absMin, 0)
        // Nothing seen: [0, 0], as ONNX Runtime for an empty tensor.
        XCTAssertEqual(TensorCalibration.range(of: [[]], options: options(.minmax)), .init(min: 0, max: 0))
    }

    func testBatchingDoesNotChangeHistogramMethods() {
        // Pass 2 bins over the pass-1 range of the whole set, so batch boundaries do not matter.
        let x = Self.exponential(30_000).map { $0 - 1 }
        let chunks = stride(from: 0, to: x.count, by: 997).map { Array(x[$0..<min($0 + 997, x.count)]) }
        for m in CalibrationMethod.allCases {
            XCTAssertEqual(TensorCalibration.range(of: [x], options: options(m)),
                           TensorCalibration.range(of: chunks, options: options(m)), "\(m)")
        }
    }

    func testPercentileOfSymmetricUniform() {
        // |x| of U(-10, 10) is U(0, 10): its 99th percentile is 9.9.
        let x = Self.uniform(200_000, -10, 10)
        var o = options(.percentile); o.percentile = 99
        let r = TensorCalibration.range(of: [x], options: o)
        let w = Self.binWidth(0, 10)
        XCTAssertEqual(r.max, 9.9, accuracy: w)
        XCTAssertEqual(r.min, -r.max)                       // symmetric
    }

    func testPercentileClampsToObservedRange() {
        // Non-negative U(0, 8): [min, t], t the 99.9th percentile 7.992.
        let pos = Self.uniform(100_000, 0, 8)
        var o = options(.percentile); o.percentile = 99.9
        let r = TensorCalibration.range(of: [pos], options: o)
        XCTAssertEqual(r.min, pos.min()!)
        XCTAssertEqual(r.max, 7.992, accuracy: Self.binWidth(0, 8))
        // Negatives only down to -1: (-t, t) is clamped to min = -1.
        let skew = Self.uniform(1_000, -1, 0) + Self.uniform(99_000, 0, 8)
        let s = TensorCalibration.range(of: [skew], options: o)
        XCTAssertEqual(s.min, skew.min()!)
        XCTAssertLessThan(s.max, skew.max()!)
        // 100 keeps everything up to the last bin's left edge, as ORT (searchsorted finds the
        // bin where the CDF reaches 1 and returns its left edge).
        o.percentile = 100
        XCTAssertEqual(TensorCalibration.range(of: [skew], options: o).max, skew.max()!, accuracy: Self.binWidth(0, 8))
    }

    func testPercentileFollowsOnnxRuntimeRule() {
        // ORT: idx = searchsorted(cumsum(hist / total), p / 100); threshold = edges[idx].
        // cdf = 0.1, 0.3, 0.6, 1.0 over edges 0, 1, 2, 3, 4: 50% -> idx 2 -> t = 2.
        var s = RangeStatistics(); s.observe([-4, 4])
        let h = HistogramCounts(counts: [1, 2, 3, 4], lo: 0, hi: 4)
        XCTAssertEqual(CalibrationMethods.percentile(s, h, percentile: 50), .init(min: -2, max: 2))
        XCTAssertEqual(CalibrationMethods.percentile(s, h, percentile: 60), .init(min: -2, max: 2))
        XCTAssertEqual(CalibrationMethods.percentile(s, h, percentile: 61), .init(min: -3, max: 3))
        XCTAssertEqual(CalibrationMethods.percentile(s, h, percentile: 10), .init(min: 0, max: 0))
    }

    func testEntropyClipsLongTail() {
        let x = Self.exponential(200_000)
        let r = TensorCalibration.range(of: [x], options: options(.entropy))
        let maxValue = x.max()!
        XCTAssertLessThan(r.max, 0.8 * maxValue, "threshold \(r.max) vs max \(maxValue)")
        XCTAssertGreaterThan(r.max, 3)                      // keeps the bulk (95% of Exp(1) is below 3)
        XCTAssertEqual(r.min, x.min()!)
    }

    func testEntropyKeepsUniformRange() {
        for x in [Self.uniform(100_000, 0, 1), Self.uniform(100_000, -1, 1)] {
            let r = TensorCalibration.range(of: [x], options: options(.entropy))
            XCTAssertGreaterThanOrEqual(r.max, 0.97 * x.max()!)
            XCTAssertLessThanOrEqual(r.max, x.max()!)
            XCTAssertLessThanOrEqual(r.min, x.min()! < 0 ? 0.97 * x.min()! : x.min()!)
        }
    }

    func testEntropyWithOnnxRuntimeDefaultBinsIsMinMax() {
        // 128 bins and 128 quantized bins leave one candidate, the whole range (docs/calibration.md).
        let x = Self.exponential(50_000)
        var o = options(.entropy); o.bins = 128
        XCTAssertNotNil(o.problem)
        var s = RangeStatistics(); s.observe(x)
        let h = HistogramCounts(counts: [Double](repeating: 1, count: 128), lo: -Double(s.absMax), hi: Double(s.absMax))
        XCTAssertEqual(CalibrationMethods.entropy(s, h, quantizedBins: 128), .init(min: s.min, max: s.max))
    }

    func testMSEClipsLongTails() {
        // Exp(1): the sparse tail beyond about 11 costs less clipped than the rounding noise
        // a range up to the max (12.9) adds to every value (NumPy brute force: 11.09).
        let x = Self.exponential(200_000)
        let r = TensorCalibration.range(of: [x], options: options(.mse))
        XCTAssertLessThan(r.max, 0.9 * x.max()!)
        XCTAssertGreaterThan(r.max, 0.8 * x.max()!)
        XCTAssertEqual(r.min, x.min()!)
        // Laplace: both tails clipped (NumPy brute force: [-9.92, 9.92] of [-12.2, 12.2]).
        let y = x.map { -$0 } + x
        let s = TensorCalibration.range(of: [y], options: options(.mse))
        XCTAssertLessThan(s.max, 0.9 * y.max()!)
        XCTAssertGreaterThan(s.min, 0.9 * y.min()!)
        XCTAssertLessThan(s.min, 0.7 * y.min()!)
    }

    func testMSEWeighsClippingAgainstRounding() {
        // N values in [0, 1] and one outlier at 50: E(b) = N b^2 / (255^2 * 12) + (50 - b)^2 is
        // least at b = 50 / (1 + N / 780300), found to the grid step 50/128.
        let step: Float = 50 / 128
        let x = Self.uniform(100_000, 0, 1) + [50]
        XCTAssertEqual(TensorCalibration.range(of: [x], options: options(.mse)).max, 44.32, accuracy: step)
        // With ten million values the outlier is mostly clipped: b = 3.62.
        var h = HistogramCounts(counts: [Double](repeating: 0, count: 2048), lo: 0, hi: 50)
        for i in 0..<41 { h.counts[i] = 10_000_000 / 41 }          // the bulk in [0, 1]
        h.counts[2047] = 1
        var st = RangeStatistics(); st.observe([0.0001, 50])
        XCTAssertEqual(CalibrationMethods.mse(st, h, candidates: 128).max, 3.62, accuracy: step)
    }

    func testMSEKeepsUniformRange() {
        let x = Self.uniform(100_000, 0, 6)
        let r = TensorCalibration.range(of: [x], options: options(.mse))
        XCTAssertGreaterThan(r.max, 0.95 * 6)
        XCTAssertLessThanOrEqual(r.max, x.max()!)
        XCTAssertEqual(r.min, x.min()!)
    }

    func testConstantTensorFallsBackToMinMax() {
        for m in CalibrationMethod.allCases {
            XCTAssertEqual(TensorCalibration.range(of: [[2, 2, 2], [2]], options: options(m)), .init(min: 2, max: 2), "\(m)")
            XCTAssertEqual(TensorCalibration.range(of: [[0, 0]], options: options(m)), .init(min: 0, max: 0), "\(m)")
        }
    }

    func testOptionProblems() {
        XCTAssertNil(CalibrationOptions().problem)
        XCTAssertNotNil(CalibrationOptions(percentile: 0).problem)
        XCTAssertNotNil(CalibrationOptions(percentile: 100.5).problem)
        XCTAssertNotNil(CalibrationOptions(bins: 0).problem)
        XCTAssertNotNil(CalibrationOptions(batchSize: 0).problem)
        XCTAssertNil(CalibrationOptions(method: .percentile, bins: 16).problem)
        XCTAssertNotNil(CalibrationOptions(method: .entropy, bins: 255).problem)
    }
}
