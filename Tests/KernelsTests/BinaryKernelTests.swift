import CKernels
import XCTest
@testable import Kernels
import ONNX

/// Same-shape Add/Mul (+ Relu) in C (`mpq_binary_f32`, `mpq_binary_u8`) on every kernel
/// path and thread count against scalar Swift: the FP32 ops' own arithmetic, and for codes
/// the unfused chain (dequantize each input, float op, Relu, QuantizeLinear).
final class BinaryKernelTests: XCTestCase {
    static let counts = [1, 15, 16, 17, 63, 64, 65, 1000, 70_001]

    func testFloatAddMulReluEqualsScalar() {
        var rng = TestRNG(seed: 21)
        let specials: [Float] = [.nan, -0.0, 0, .infinity, -.infinity]
        for n in Self.counts {
            let a = (0..<n).map { _ in rng.next(20) == 0 ? rng.pick(specials) : rng.float() }
            let b = (0..<n).map { _ in rng.next(20) == 0 ? rng.pick(specials) : rng.float() }
            for multiply in [false, true] { for relu in [false, true] {
                let want = zip(a, b).map { x, y -> UInt32 in
                    let r = multiply ? x * y : x + y
                    return (relu ? (r < 0 ? 0 : r) : r).bitPattern
                }
                for path in KernelPath.available { for threads: Int32 in [1, 2, 3] {
                    var y = [Float](repeating: 7, count: n)
                    mpq_binary_f32(path.c, multiply ? 1 : 0, relu ? 1 : 0, a, b, n, &y, threads)
                    XCTAssertEqual(y.map(\.bitPattern), want, "n \(n) mul \(multiply) relu \(relu) \(path) threads \(threads)")
                }}
            }}
        }
    }

    /// The ops route same-shape float32 Add/Mul to the kernel and still give the loop's bits.
    func testAddMulOpsUseKernelWithSameBits() throws {
        var rng = TestRNG(seed: 22)
        let a = rng.tensor([2, 3, 40, 41]), b = rng.tensor([2, 3, 40, 41])
        XCTAssertTrue(ElementwiseOps.takesFastBinary(a, b))
        XCTAssertEqual(try ElementwiseOps.Add(a, b).floats.map(\.bitPattern), zip(a.floats, b.floats).map { ($0 + $1).bitPattern })
        XCTAssertEqual(try ElementwiseOps.Mul(a, b).floats.map(\.bitPattern), zip(a.floats, b.floats).map { ($0 * $1).bitPattern })
    }

    func testCodesAddReluEqualsUnfusedChain() {
        var rng = TestRNG(seed: 23)
        let grids: [(Float, UInt8)] = [(0.05, 128), (0.013, 0), (0.2, 255), (0.0371, 97)]
        for n in Self.counts {
            let a = rng.u8s(n), b = rng.u8s(n)
            let (sa, za) = rng.pick(grids), (sb, zb) = rng.pick(grids), (s, z) = rng.pick(grids)
            for multiply in [false, true] { for relu in [false, true] {
                // The unfused chain, scalar: materialise, op, Relu, requantize (QuantizeLinear).
                var fa = [Float](repeating: 0, count: n), fb = fa
                mpq_dequantize_u8(MPQ_PATH_REFERENCE, a, n, sa, za, &fa)
                mpq_dequantize_u8(MPQ_PATH_REFERENCE, b, n, sb, zb, &fb)
                let r = zip(fa, fb).map { x, y -> Float in
                    let v = multiply ? x * y : x + y
                    return relu ? (v < 0 ? 0 : v) : v
                }
                var want = [UInt8](repeating: 0, count: n)
                mpq_quantize_u8(MPQ_PATH_REFERENCE, r, n, s, z, &want)
                for path in KernelPath.available { for threads: Int32 in [1, 2] {
                    var y = [UInt8](repeating: 0, count: n)
                    mpq_binary_u8(path.c, multiply ? 1 : 0, relu ? 1 : 0, a, sa, za, b, sb, zb, n, s, z, &y, threads)
                    XCTAssertEqual(y, want, "n \(n) mul \(multiply) relu \(relu) \(path) threads \(threads)")
                }}
            }}
        }
    }
}

/// The threaded code table lookup (AVX-512 VBMI byte permutes, AVX2 byte shuffles) against the
/// scalar `mpq_lookup_u8`, at sizes around its 32- and 64-code steps.
final class LookupKernelTests: XCTestCase {
    func testThreadedLookupEqualsScalar() {
        var rng = TestRNG(seed: 31)
        let table = rng.u8s(256)
        for n in [1, 31, 32, 33, 63, 64, 65, 127, 1000, 65_536, 300_001] {
            let x = rng.u8s(n)
            var want = [UInt8](repeating: 0, count: n)
            mpq_lookup_u8(x, n, table, &want)
            for threads: Int32 in [1, 2] {
                var y = [UInt8](repeating: 0, count: n)
                mpq_lookup_u8_threads(x, n, table, &y, threads)
                XCTAssertEqual(y, want, "n \(n) threads \(threads)")
            }
        }
    }
}

/// The kernel pool under repeated small splits: when the caller finishes first it runs the
/// tasks no worker has claimed yet (thread_pool.c); every task must still run, and once.
final class KernelPoolClaimTests: XCTestCase {
    func testManySmallSplitsComputeEveryElement() {
        var rng = TestRNG(seed: 41)
        let n = 64 * 37
        let a = rng.u8s(n), b = rng.u8s(n)
        var want = [UInt8](repeating: 0, count: n)
        mpq_binary_u8(MPQ_PATH_REFERENCE, 0, 1, a, 0.05, 128, b, 0.03, 7, n, 0.04, 0, &want, 1)
        for i in 0..<1500 {
            var y = [UInt8](repeating: 0, count: n)
            mpq_binary_u8(MPQ_PATH_AUTO, 0, 1, a, 0.05, 128, b, 0.03, 7, n, 0.04, 0, &y, Int32(2 + i % 3))
            if y != want { XCTFail("call \(i): a task did not run"); return }
        }
    }
}
