import CKernels
import XCTest
@testable import Kernels

/// `RangeScan` (`mpq_range_stats_f32`, calibration's first pass): the AVX-512 scan against
/// the scalar reference bit for bit (min, max and |x| minimum as bit patterns, so a zero's
/// sign counts) and count for count, over every tail length, NaN, infinities, +-0 in every
/// order, all-zero and all-non-finite arrays; and the zero rule against a hand example.
final class RangeScanTests: XCTestCase {
    static let special: [Float] = [0, -0.0, .nan, .infinity, -.infinity, .leastNormalMagnitude / 8, -.leastNormalMagnitude / 8,
                                   .greatestFiniteMagnitude, -.greatestFiniteMagnitude, 3.5, -2.25]

    func bits(_ s: RangeScan) -> [UInt64] {
        [UInt64(s.min.bitPattern), UInt64(s.max.bitPattern), UInt64(s.absMin.bitPattern),
         UInt64(s.finite), UInt64(s.zeros), UInt64(s.nonFinite)]
    }

    func testVectorScanEqualsReferenceBitForBit() {
        var rng = TestRNG(seed: 41)
        let paths = KernelPath.allCases.filter { $0 != .reference && $0.isAvailable }
        var compared = 0
        for n in Array(0...40) + [63, 64, 65, 1000, 4097] {
            for kind in 0..<5 {
                let x: [Float] = (0..<n).map { i in
                    switch kind {
                    case 0: return rng.float(-5...5)
                    case 1: return rng.int(0...2) == 0 ? Self.special[rng.int(0...Self.special.count - 1)] : rng.float(-5...5)
                    case 2: return rng.int(0...1) == 0 ? 0 : -0.0                 // zeros of both signs only
                    case 3: return rng.int(0...1) == 0 ? .nan : .infinity         // nothing finite
                    default: return i % 7 == 3 ? -0.0 : (i % 5 == 1 ? 0 : abs(rng.float(-5...5)))  // ReLU-like, min a zero
                    }
                }
                let ref = x.withUnsafeBufferPointer { RangeScan($0, path: .reference) }
                for p in paths {
                    let got = x.withUnsafeBufferPointer { RangeScan($0, path: p) }
                    XCTAssertEqual(bits(got), bits(ref), "n \(n) kind \(kind) path \(p)")
                    compared += 1
                }
            }
        }
        if paths.isEmpty { print("RangeScanTests: no vector path on this CPU, reference only") }
        XCTAssertTrue(paths.isEmpty || compared > 200)
    }

    /// The scalar rule: a zero minimum is the first zero met (-0 < +0 is false).
    func testZeroMinimumIsTheFirstZero() {
        for path in KernelPath.allCases where path.isAvailable {
            let a: [Float] = [0.5, -0.0, 0.3, 0, 2]
            let b: [Float] = [0.5, 0, 0.3, -0.0, 2]
            XCTAssertEqual(a.withUnsafeBufferPointer { RangeScan($0, path: path) }.min.bitPattern, (-0.0 as Float).bitPattern, "\(path)")
            XCTAssertEqual(b.withUnsafeBufferPointer { RangeScan($0, path: path) }.min.bitPattern, (0 as Float).bitPattern, "\(path)")
            let c: [Float] = [-1, .nan, -0.0, 0, -3]
            let s = c.withUnsafeBufferPointer { RangeScan($0, path: path) }
            XCTAssertEqual(s.max.bitPattern, (-0.0 as Float).bitPattern, "\(path)")
            XCTAssertEqual([s.min, s.absMin], [-3, 0], "\(path)")
            XCTAssertEqual([s.finite, s.zeros, s.nonFinite], [4, 2, 1], "\(path)")
        }
    }
}
