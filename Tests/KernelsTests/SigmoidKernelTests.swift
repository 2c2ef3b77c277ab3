import CKernels
import XCTest
import ONNX
@testable import Kernels

/// `mpq_sigmoid_f32`'s vectorised path (polynomial exp) against the scalar reference
/// (libm expf, the Swift formula the Sigmoid op used before), over every length up to a
/// few vectors (tails), the whole float range, the flushed tail, +-0, infinities, NaN.
final class SigmoidKernelTests: XCTestCase {
    func inputs(_ n: Int, seed: UInt64) -> [Float] {
        var rng = TestRNG(seed: seed)
        let special: [Float] = [0, -0.0, 1, -1, 16.6, -16.6, -87.3, -88.7, -95, -103.3, -103.9, -104, -200,
                                88, 1e30, -1e30, .nan, .infinity, -.infinity, .leastNonzeroMagnitude, -.leastNormalMagnitude]
        return (0..<n).map { i in
            switch rng.int(0...3) {
            case 0: return special[i % special.count]
            case 1: return rng.float(-110...110)
            default: return rng.float(-8...8)
            }
        }
    }

    /// Both NaN, or within 4 ulp of the reference; below x = -86.5 the fast path gives 0
    /// (flushed), within 2^-124 of the reference's tiny value.
    static func tolerance(_ want: Float, _ x: Float) -> Float {
        x < -86.5 ? 0x1p-124 : 4 * want.ulp
    }

    func assertNear(_ got: Float, _ want: Float, _ x: Float, file: StaticString = #filePath, line: UInt = #line) {
        if want.isNaN { XCTAssertTrue(got.isNaN, "sigmoid(\(x)) = \(got), want NaN", file: file, line: line); return }
        if x < -86.5 { XCTAssertEqual(got, 0, "sigmoid(\(x)) flushes to 0", file: file, line: line) }
        let tol = Self.tolerance(want, x)
        XCTAssertLessThanOrEqual(abs(got - want), tol, "sigmoid(\(x)) = \(got), reference \(want)", file: file, line: line)
    }

    func testFastPathMatchesReference() {
        var checked = 0
        for n in Array(0...33) + [63, 64, 65, 1000, 4099] {
            let x = inputs(n, seed: UInt64(n + 1))
            var ref = [Float](repeating: -1, count: n), fast = ref
            mpq_sigmoid_f32(MPQ_PATH_REFERENCE, x, n, &ref)
            mpq_sigmoid_f32(MPQ_PATH_AUTO, x, n, &fast)
            for i in 0..<n { assertNear(fast[i], ref[i], x[i]) }
            checked += n
        }
        XCTAssertGreaterThan(checked, 5000)
    }

    /// In place (the Sigmoid op's call, y == x) gives the out-of-place bits on every path:
    /// an in-place call once fell back to a scalar loop with the same bits, so this guards the
    /// bits of the pragma's vector loop; its speed is in benchmarks/README.md (s11-lead).
    func testInPlaceEqualsOutOfPlaceBitForBit() {
        for n in [1, 7, 8, 9, 31, 1000, 4099] {
            let x = inputs(n, seed: UInt64(500 + n))
            for path in [MPQ_PATH_REFERENCE, MPQ_PATH_AUTO] {
                var out = [Float](repeating: -1, count: n), inPlace = x
                mpq_sigmoid_f32(path, x, n, &out)
                inPlace.withUnsafeMutableBufferPointer { mpq_sigmoid_f32(path, $0.baseAddress, n, $0.baseAddress) }
                XCTAssertEqual(inPlace.map(\.bitPattern), out.map(\.bitPattern), "n \(n) path \(path.rawValue)")
            }
        }
    }

    /// The AVX-512 loop (VNNI path) and the AVX2 loop compute the same expression: same bits.
    func testAvx512LoopEqualsAvx2LoopBitForBit() throws {
        try XCTSkipUnless(mpq_kernel_path_available(MPQ_PATH_VNNI) != 0 && mpq_kernel_path_available(MPQ_PATH_AVX2) != 0,
                          "needs AVX-512 and AVX2")
        for n in [1, 15, 16, 17, 100, 4099] {
            let x = inputs(n, seed: UInt64(900 + n))
            var a = [Float](repeating: -1, count: n), b = a
            mpq_sigmoid_f32(MPQ_PATH_AVX2, x, n, &a)
            mpq_sigmoid_f32(MPQ_PATH_VNNI, x, n, &b)
            XCTAssertEqual(a.map(\.bitPattern), b.map(\.bitPattern), "n \(n)")
        }
    }

    /// A dense sweep of [-105, 40]: the largest error anywhere in the range that matters.
    func testDenseSweepWithinFourUlp() {
        let x = (0..<290_000).map { Float(-105) + Float($0) * 0.0005 }
        var ref = [Float](repeating: 0, count: x.count), fast = ref
        mpq_sigmoid_f32(MPQ_PATH_REFERENCE, x, x.count, &ref)
        mpq_sigmoid_f32(MPQ_PATH_AUTO, x, x.count, &fast)
        for i in x.indices where abs(fast[i] - ref[i]) > Self.tolerance(ref[i], x[i]) {
            XCTFail("sigmoid(\(x[i])) = \(fast[i]), reference \(ref[i])"); return
        }
    }

    /// The reference kernel is the formula the Swift op used, bit for bit; the op's output
    /// (the fast path) stays within the same bound of it.
    func testReferenceKernelIsTheSwiftFormulaAndTheOpUsesTheKernel() {
        let x = inputs(777, seed: 99)
        let swift = ActivationOps.SigmoidReference(Tensor(shape: [777], floats: x)).floats
        var ref = [Float](repeating: 0, count: x.count)
        mpq_sigmoid_f32(MPQ_PATH_REFERENCE, x, x.count, &ref)
        for i in x.indices {
            XCTAssertTrue(ref[i] == swift[i] || (ref[i].isNaN && swift[i].isNaN), "reference sigmoid(\(x[i])): \(ref[i]) vs \(swift[i])")
        }
        let op = ActivationOps.Sigmoid(Tensor(shape: [777], floats: x)).floats
        for i in x.indices { assertNear(op[i], ref[i], x[i]) }
        // Empty, and a tensor large enough to split over the cores: the unsplit kernel's bits.
        XCTAssertEqual(ActivationOps.Sigmoid(Tensor(shape: [0, 3], floats: [])).count, 0)
        let big = inputs(70_001, seed: 7)
        var whole = [Float](repeating: 0, count: big.count)
        mpq_sigmoid_f32(MPQ_PATH_AUTO, big, big.count, &whole)
        XCTAssertEqual(ActivationOps.Sigmoid(Tensor(shape: [big.count], floats: big)).floats.map(\.bitPattern), whole.map(\.bitPattern))
    }
}
