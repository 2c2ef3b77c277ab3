import CKernels
import XCTest
@testable import Kernels
import ONNX

/// The C pooling kernels (`mpq_pool.h`) on every kernel path against the Swift separable
/// path they replace (`PoolOps.poolSeparable`), bit for bit: NaN, -0 and infinities in the
/// data, 1-D and 2-D windows, strides 1-3, dilation, asymmetric and negative (SAME with a
/// kernel shorter than the stride) padding, ceil_mode, widths around the 16/32/64-lane
/// vector edges, and one and several threads.
final class PoolKernelTests: XCTestCase {
    struct Case { var x: [Int]; var k: [Int]; var s: [Int]; var d: [Int]; var pads: [Int]; var ceil = false; var autoPad = "NOTSET" }

    static let cases: [Case] = [
        Case(x: [2, 3, 17, 15], k: [3, 3], s: [2, 2], d: [1, 1], pads: [1, 1, 1, 1]),          // ResNet stem pool shape
        Case(x: [1, 2, 9, 113], k: [3, 3], s: [2, 2], d: [1, 1], pads: [1, 1, 1, 1], ceil: true),
        Case(x: [1, 2, 6, 66], k: [2, 2], s: [2, 2], d: [1, 1], pads: [0, 0, 0, 0]),          // digits pool, 33 outputs
        Case(x: [1, 3, 7, 70], k: [3, 5], s: [1, 1], d: [1, 1], pads: [1, 2, 1, 2]),          // stride 1, 70 outputs
        Case(x: [1, 1, 5, 129], k: [5, 5], s: [1, 1], d: [1, 1], pads: [2, 2, 2, 2]),         // SPPF-style 5x5
        Case(x: [1, 2, 9, 33], k: [2, 5], s: [3, 2], d: [2, 1], pads: [1, 2, 0, 1]),
        Case(x: [1, 2, 11, 40], k: [3, 3], s: [2, 2], d: [2, 3], pads: [2, 0, 1, 3], ceil: true),
        Case(x: [1, 2, 31], k: [4], s: [3], d: [2], pads: [2, 1], ceil: true),                 // 1-D
        Case(x: [1, 2, 33], k: [3], s: [1], d: [1], pads: [1, 1]),
        Case(x: [1, 1, 8, 8], k: [1, 3], s: [1, 1], d: [1, 1], pads: [0, 1, 0, 1]),
        Case(x: [1, 2, 9, 10], k: [1, 1], s: [3, 3], d: [1, 1], pads: [0, 0, 0, 0], autoPad: "SAME_UPPER"), // negative pads
        Case(x: [1, 4, 7, 6], k: [7, 6], s: [1, 1], d: [1, 1], pads: [0, 0, 0, 0]),
        Case(x: [1, 1, 3, 3], k: [2, 2], s: [2, 2], d: [1, 1], pads: [0, 0, 1, 1], ceil: true),
    ]

    /// Random values with NaN, -0, +-inf and repeated values mixed in.
    static func data(_ shape: [Int], seed: UInt64) -> Tensor {
        var rng = TestRNG(seed: seed)
        let specials: [Float] = [.nan, -0.0, 0, .infinity, -.infinity, 0.5, 0.5]
        let values = (0..<shape.reduce(1, *)).map { _ in rng.next(16) == 0 ? rng.pick(specials) : rng.float() }
        return Tensor(shape: shape, floats: values)
    }

    /// Bit patterns differ. For sums, any NaN equals any NaN: IEEE leaves the payload and sign
    /// of a NaN result unspecified, and x86 takes it from whichever operand the compiler put
    /// first (inf + -inf gives the negative default NaN), so `acc + v` in C and in Swift
    /// may disagree on it. Max never computes a NaN, it selects one, so it stays strict.
    static func differ(_ a: Float, _ b: Float, _ kind: PoolKind) -> Bool {
        if case .average = kind, a.isNaN && b.isNaN { return false }
        return a.bitPattern != b.bitPattern
    }

    func testFloatPoolingEqualsSeparablePathBitForBit() throws {
        var covered = Set<String>()
        for (i, t) in Self.cases.enumerated() {
            let x = Self.data(t.x, seed: UInt64(900 + i))
            let (nc, g) = try PoolOps.poolGeometry(x, "test", t.autoPad, t.ceil, t.d, t.k, t.pads, t.s)
            for kind in [PoolKind.max, .average(includePad: false), .average(includePad: true)] {
                let want = PoolOps.poolSeparable(x, nc, g, kind).floats
                for path in KernelPath.available {
                    let got = try XCTUnwrap(PoolOps.poolFast(x, nc, g, kind, path: path), "case \(i) has a 2-D window")
                    XCTAssertEqual(got.shape, nc + g.outputShape)
                    let bad = zip(got.floats, want).filter { Self.differ($0, $1, kind) }.count
                    XCTAssertEqual(bad, 0, "case \(i) \(kind) \(path): \(bad) outputs differ from poolSeparable")
                    covered.insert(path.resolved.rawValue)
                }
            }
        }
        print("float pooling: paths covered \(covered.sorted())")
    }

    /// Codes: the result must be the codes of the float MaxPool on the codes' values
    /// (what the INT8 chains computed before), an all-padding window giving code 0.
    func testCodesMaxPoolEqualsFloatMaxPool() throws {
        for (i, t) in Self.cases.enumerated() {
            var rng = TestRNG(seed: UInt64(950 + i))
            let codes = rng.u8s(t.x.reduce(1, *))
            let x = Tensor(shape: t.x, floats: codes.map(Float.init))
            let (nc, g) = try PoolOps.poolGeometry(x, "test", t.autoPad, t.ceil, t.d, t.k, t.pads, t.s)
            let want = PoolOps.poolSeparable(x, nc, g, .max).floats.map { $0.isFinite ? UInt8($0) : 0 }
            for path in KernelPath.available {
                let got = try XCTUnwrap(PoolOps.maxPoolCodes(codes, nc, g, path: path))
                XCTAssertEqual(got, want, "case \(i) \(path)")
            }
        }
    }

    /// Large enough that the planes split over the kernel pool (2+ threads): same bits.
    func testThreadedSplitMatchesOneThread() throws {
        let x = Self.data([3, 5, 33, 35], seed: 7)
        let (nc, g) = try PoolOps.poolGeometry(x, "test", "NOTSET", false, [1, 1], [3, 3], [1, 1, 1, 1], [2, 2])
        let codes = x.floats.map { UInt8(truncatingIfNeeded: $0.bitPattern >> 3) }
        for path in KernelPath.available {
            for threads: Int32 in [1, 2, 4] {
                var y = [Float](repeating: 0, count: 15 * g.outputCount), yc = [UInt8](repeating: 0, count: 15 * g.outputCount)
                _ = PoolOps.withPool2D(nc, g, .max) { p in
                    mpq_maxpool2d_f32(path.c, p, x.floats, &y, threads)
                    mpq_maxpool2d_u8(path.c, p, codes, &yc, threads)
                }
                XCTAssertEqual(y.map(\.bitPattern), PoolOps.poolSeparable(x, nc, g, .max).floats.map(\.bitPattern), "\(path) \(threads)")
                let cx = Tensor(shape: x.shape, floats: codes.map(Float.init))
                XCTAssertEqual(yc, PoolOps.poolSeparable(cx, nc, g, .max).floats.map { UInt8($0) }, "\(path) \(threads) codes")
            }
        }
    }

    /// 3-D windows are not the C kernels' (nil), an identity depth axis folds into planes.
    func testDepthAxis() throws {
        let x = Self.data([1, 2, 4, 9, 10], seed: 11)
        let (nc, g) = try PoolOps.poolGeometry(x, "test", "NOTSET", false, nil, [2, 3, 3], nil, [1, 2, 2])
        XCTAssertNil(PoolOps.poolFast(x, nc, g, .max))
        let (nc1, g1) = try PoolOps.poolGeometry(x, "test", "NOTSET", false, nil, [1, 3, 3], [0, 1, 1, 0, 1, 1], [1, 2, 2])
        let got = try XCTUnwrap(PoolOps.poolFast(x, nc1, g1, .average(includePad: false)))
        XCTAssertEqual(got.floats.map(\.bitPattern),
                       PoolOps.poolSeparable(x, nc1, g1, .average(includePad: false)).floats.map(\.bitPattern))
    }
}
