import CKernels
import XCTest
import ONNX
@testable import Kernels

/// `mpq_sigmoid_f32` computes ONNX Runtime's logistic (sigmoid_inline.h) on every path with the
/// same bits (`SigmoidOrtGoldenTests` checks them against ORT's own outputs), over every length
/// up to a few vectors (tails), the whole float range, the clamp edges, +-0, infinities, NaN;
/// and it stays within 1.8e-7 of the mathematical sigmoid (libm expf, `SigmoidReference`).
final class SigmoidKernelTests: XCTestCase {
    func inputs(_ n: Int, seed: UInt64) -> [Float] {
        var rng = TestRNG(seed: seed)
        let special: [Float] = [0, -0.0, 1, -1, 16.6, -16.6, -18, 18, -18.000002, 18.000002, -87.3, -95, -104, -200,
                                88, 1e30, -1e30, .nan, .infinity, -.infinity, .leastNonzeroMagnitude, -.leastNormalMagnitude]
        return (0..<n).map { i in
            switch rng.int(0...3) {
            case 0: return special[i % special.count]
            case 1: return rng.float(-110...110)
            default: return rng.float(-8...8)
            }
        }
    }

    static func sameBits(_ a: [Float], _ b: [Float]) -> Bool {
        a.count == b.count && zip(a, b).allSatisfy { $0.bitPattern == $1.bitPattern || ($0.isNaN && $1.isNaN) }
    }

    func paths() -> [mpq_kernel_path] {
        [MPQ_PATH_REFERENCE, MPQ_PATH_AVX2, MPQ_PATH_VNNI, MPQ_PATH_AUTO].filter { mpq_kernel_path_available($0) != 0 }
    }

    /// The reference loop (libm fmaf), the AVX2 + FMA loop and the AVX-512 loop: one formula,
    /// one rounding per operation, so the same bits for every length and input.
    func testEveryPathGivesTheReferenceBits() {
        var checked = 0
        for n in Array(0...33) + [63, 64, 65, 1000, 4099] {
            let x = inputs(n, seed: UInt64(n + 1))
            var ref = [Float](repeating: -1, count: n)
            mpq_sigmoid_f32(MPQ_PATH_REFERENCE, x, n, &ref)
            for path in paths() {
                var out = [Float](repeating: -1, count: n)
                mpq_sigmoid_f32(path, x, n, &out)
                XCTAssertTrue(Self.sameBits(out, ref), "n \(n) path \(path.rawValue)")
            }
            checked += n
        }
        XCTAssertGreaterThan(checked, 5000)
        XCTAssertGreaterThanOrEqual(paths().count, 2, "at least the reference and one vector path")
    }

    /// In place (the Sigmoid op's call, y == x) gives the out-of-place bits on every path:
    /// an in-place call once fell back to a scalar loop with the same bits, so this guards the
    /// bits of the pragma's vector loop; its speed is in benchmarks/README.md (s11-lead).
    func testInPlaceEqualsOutOfPlaceBitForBit() {
        for n in [1, 7, 8, 9, 31, 1000, 4099] {
            let x = inputs(n, seed: UInt64(500 + n))
            for path in paths() {
                var out = [Float](repeating: -1, count: n), inPlace = x
                mpq_sigmoid_f32(path, x, n, &out)
                inPlace.withUnsafeMutableBufferPointer { mpq_sigmoid_f32(path, $0.baseAddress, n, $0.baseAddress) }
                XCTAssertEqual(inPlace.map(\.bitPattern), out.map(\.bitPattern), "n \(n) path \(path.rawValue)")
            }
        }
    }

    /// ORT's formula against the mathematical sigmoid over a dense sweep of [-105, 40]: within
    /// 1.8e-7 absolute (its largest error, 1.79e-7 = 3 ulp of 1, is near x = 16.4), exactly 0 from x = -18
    /// down (the clamp: ORT's logistic is flat there), NaN for NaN, 0 and 1 at the infinities.
    func testWithinBoundOfTheMathematicalSigmoid() {
        let x = (0..<290_000).map { Float(-105) + Float($0) * 0.0005 } + [.nan, .infinity, -.infinity]
        let exact = ActivationOps.SigmoidReference(Tensor(shape: [x.count], floats: x)).floats
        var got = [Float](repeating: -1, count: x.count)
        mpq_sigmoid_f32(MPQ_PATH_AUTO, x, x.count, &got)
        var worst: Float = 0
        for i in x.indices {
            if x[i].isNaN { XCTAssertTrue(got[i].isNaN); continue }
            if x[i] <= -18 { XCTAssertEqual(got[i].bitPattern, Float(0).bitPattern, "sigmoid(\(x[i]))"); continue }
            worst = max(worst, abs(got[i] - exact[i]))
        }
        XCTAssertLessThanOrEqual(worst, 1.8e-7)
        XCTAssertGreaterThan(worst, 1e-7, "the bound is ORT's formula's, not libm's: a libm-exact kernel fails here")
        XCTAssertEqual(got[got.count - 2], 1)
    }

    /// The Sigmoid op runs the kernel: its bits, also when the tensor splits over the cores.
    func testOpUsesTheKernel() {
        let x = inputs(777, seed: 99)
        var ref = [Float](repeating: 0, count: x.count)
        mpq_sigmoid_f32(MPQ_PATH_REFERENCE, x, x.count, &ref)
        XCTAssertTrue(Self.sameBits(ActivationOps.Sigmoid(Tensor(shape: [777], floats: x)).floats, ref))
        // Empty, and a tensor large enough to split over the cores: the unsplit kernel's bits.
        XCTAssertEqual(ActivationOps.Sigmoid(Tensor(shape: [0, 3], floats: [])).count, 0)
        let big = inputs(70_001, seed: 7)
        var whole = [Float](repeating: 0, count: big.count)
        mpq_sigmoid_f32(MPQ_PATH_AUTO, big, big.count, &whole)
        XCTAssertEqual(ActivationOps.Sigmoid(Tensor(shape: [big.count], floats: big)).floats.map(\.bitPattern), whole.map(\.bitPattern))
    }
}

/// mpq's Sigmoid and SiLU against ONNX Runtime's outputs on 24,607 inputs (a dense sweep of
/// [-20, 20], the clamp edges, specials, random draws), recorded by
/// tools/goldens/sigmoid_golden.py: the Sigmoid op, and x * Sigmoid(x), which ORT ran as its
/// fused QuickGelu. Bit for bit on every path (NaN: any NaN).
final class SigmoidOrtGoldenTests: XCTestCase {
    func golden() throws -> (x: [Float], sigmoid: [Float], silu: [Float], fused: String) {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/ops/sigmoid_ort.npz").path
        let a = try Numpy.readNPZ(path: path)
        let fused = String(decoding: try XCTUnwrap(a["fused"]).ints.map { UInt8($0) }, as: UTF8.self)
        return (try XCTUnwrap(a["x"]).floats, try XCTUnwrap(a["sigmoid"]).floats, try XCTUnwrap(a["silu"]).floats, fused)
    }

    func testSigmoidIsOnnxRuntimesBitForBit() throws {
        let g = try golden()
        XCTAssertGreaterThan(g.x.count, 20_000)
        for path in [MPQ_PATH_REFERENCE, MPQ_PATH_AVX2, MPQ_PATH_VNNI] where mpq_kernel_path_available(path) != 0 {
            var y = [Float](repeating: -1, count: g.x.count)
            mpq_sigmoid_f32(path, g.x, g.x.count, &y)
            let bad = g.x.indices.filter { !(y[$0].bitPattern == g.sigmoid[$0].bitPattern || (y[$0].isNaN && g.sigmoid[$0].isNaN)) }
            XCTAssertTrue(bad.isEmpty, "path \(path.rawValue): \(bad.count) differ, first x = \(bad.first.map { g.x[$0] } ?? 0)")
        }
        XCTAssertTrue(SigmoidKernelTests.sameBits(ActivationOps.Sigmoid(Tensor(shape: [g.x.count], floats: g.x)).floats, g.sigmoid))
    }

    /// The SiLU a Conv's epilogue applies (`MPQ_ACT_SILU`, no bias) is ORT's QuickGelu.
    func testFusedSiluIsOnnxRuntimesQuickGeluBitForBit() throws {
        let g = try golden()
        XCTAssertTrue(g.fused.contains("QuickGelu"), "ORT ran the SiLU as \(g.fused)")
        for path in [MPQ_PATH_REFERENCE, MPQ_PATH_AVX2, MPQ_PATH_VNNI] where mpq_kernel_path_available(path) != 0 {
            var y = g.x
            mpq_conv_epilogue_f32(path, &y, 1, g.x.count, g.x.count, nil, MPQ_ACT_SILU, 0, 0)
            let bad = g.x.indices.filter { !(y[$0].bitPattern == g.silu[$0].bitPattern || (y[$0].isNaN && g.silu[$0].isNaN)) }
            XCTAssertTrue(bad.isEmpty, "path \(path.rawValue): \(bad.count) differ, first x = \(bad.first.map { g.x[$0] } ?? 0)")
        }
    }
}
