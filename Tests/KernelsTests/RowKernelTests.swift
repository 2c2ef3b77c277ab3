import CKernels
import XCTest
import ONNX
@testable import Kernels

/// The FP32 row kernels of `mpq_rowwise.h` (Softmax, Erf, LayerNormalization): the
/// vectorised path against the scalar reference over many lengths (vector tails), special
/// values and the attention mask's -3.4e38, on one and two threads; the reference kernels
/// against the Swift formulas the ops used; the ops against the references.
final class RowKernelTests: XCTestCase {
    func values(_ n: Int, seed: UInt64, special: [Float]) -> [Float] {
        var rng = TestRNG(seed: seed)
        return (0..<n).map { i in
            switch rng.int(0...5) {
            case 0: return special[i % special.count]
            case 1: return rng.float(-20...20)
            default: return rng.float(-4...4)
            }
        }
    }

    // MARK: Erf

    static let erfSpecial: [Float] = [0, -0.0, 0.921875, -0.921875, 0.9218751, 3.925, -3.925, 3.93, 10, -10, 1e30,
                                      .nan, .infinity, -.infinity, .leastNonzeroMagnitude, 1e-20, -1e-8]

    func assertErf(_ got: Float, _ want: Float, _ x: Float, file: StaticString = #filePath, line: UInt = #line) {
        if want.isNaN { XCTAssertTrue(got.isNaN, "erf(\(x)) = \(got), want NaN", file: file, line: line); return }
        XCTAssertLessThanOrEqual(abs(got - want), 2 * want.ulp + 1e-38, "erf(\(x)) = \(got), reference \(want)", file: file, line: line)
        XCTAssertEqual(got.sign, want.sign, "erf(\(x)) sign", file: file, line: line)
    }

    func testErfFastPathWithinTwoUlpOfLibm() {
        for n in Array(0...19) + [64, 1001, 70_003] {
            let x = values(n, seed: UInt64(n + 7), special: Self.erfSpecial)
            var ref = [Float](repeating: -7, count: n), fast = ref
            mpq_erf_f32(MPQ_PATH_REFERENCE, x, n, &ref, 1)
            for threads: Int32 in [1, 2] {
                mpq_erf_f32(MPQ_PATH_AUTO, x, n, &fast, threads)
                for i in 0..<n { assertErf(fast[i], ref[i], x[i]) }
            }
        }
        // A dense sweep over the range where erf is not yet 1 in float.
        let x = (0..<100_000).map { Float(-4.5) + Float($0) * 0.00009 }
        var ref = [Float](repeating: 0, count: x.count), fast = ref
        mpq_erf_f32(MPQ_PATH_REFERENCE, x, x.count, &ref, 1)
        mpq_erf_f32(MPQ_PATH_AUTO, x, x.count, &fast, 2)
        for i in x.indices where abs(fast[i] - ref[i]) > 2 * ref[i].ulp + 1e-38 {
            XCTFail("erf(\(x[i])) = \(fast[i]), reference \(ref[i])"); return
        }
    }

    func testErfOpUsesKernelAndReferenceIsLibm() {
        let x = values(999, seed: 3, special: Self.erfSpecial)
        let swift = ElementwiseOps.ErfReference(Tensor(shape: [999], floats: x)).floats
        var ref = [Float](repeating: 0, count: x.count)
        mpq_erf_f32(MPQ_PATH_REFERENCE, x, x.count, &ref, 1)
        for i in x.indices { XCTAssertTrue(ref[i] == swift[i] || (ref[i].isNaN && swift[i].isNaN), "erf(\(x[i]))") }
        let op = ElementwiseOps.Erf(Tensor(shape: [999], floats: x)).floats
        for i in x.indices { assertErf(op[i], ref[i], x[i]) }
    }

    // MARK: Softmax

    /// Rows of attention scores with some masked entries (score + -3.4e38, as exported BERTs).
    func scores(rows: Int, n: Int, seed: UInt64) -> [Float] {
        var rng = TestRNG(seed: seed)
        return (0..<(rows * n)).map { i in
            let v = rng.float(-12...12)
            return i % n >= n - (i / n) % 5 ? v + -3.4028234663852886e38 : v
        }
    }

    func testSoftmaxFastPathMatchesReference() {
        for n in Array(1...19) + [64, 127, 128] {
            let rows = 37
            let x = scores(rows: rows, n: n, seed: UInt64(n))
            var ref = x, fast = x
            mpq_softmax_rows_f32(MPQ_PATH_REFERENCE, &ref, rows, n, 1)
            for threads: Int32 in [1, 2] {
                fast = x
                mpq_softmax_rows_f32(MPQ_PATH_AUTO, &fast, rows, n, threads)
                for i in x.indices {
                    // The mask's exp is exactly 0 on both paths; the rest within a few ulp of 1.
                    if ref[i] == 0 { XCTAssertEqual(fast[i], 0, "n \(n) i \(i)"); continue }
                    XCTAssertLessThanOrEqual(abs(fast[i] - ref[i]), 8 * ref[i].ulp, "n \(n) i \(i): \(fast[i]) vs \(ref[i])")
                }
            }
        }
    }

    /// The VNNI path's softmax (16-lane exps, mpq_softmax_rows_avx512) gives the AVX2 kernel's
    /// bits: every width 1-40 (16-lane steps, the 8-lane step, each tail) and 64-128, masked
    /// entries, +-inf rows and a NaN row.
    func testSoftmaxAVX512IsTheAVX2Kernel() throws {
        try XCTSkipIf(mpq_kernel_path_available(MPQ_PATH_VNNI) == 0 || mpq_kernel_path_available(MPQ_PATH_AVX2) == 0,
                      "needs the AVX2 and VNNI paths")
        for n in Array(1...40) + [64, 127, 128] {
            var x = scores(rows: 9, n: n, seed: UInt64(100 + n))
            x[0] = .infinity
            if n > 2 { x[n + 1] = -.infinity; x[2 * n + 2] = .nan }
            var avx2 = x, avx512 = x
            mpq_softmax_rows_f32(MPQ_PATH_AVX2, &avx2, 9, n, 1)
            mpq_softmax_rows_f32(MPQ_PATH_VNNI, &avx512, 9, n, 2)
            XCTAssertEqual(avx512.map(\.bitPattern), avx2.map(\.bitPattern), "n \(n)")
        }
    }

    /// The AVX2 kernel runs rows in pairs with their steps interleaved (s32): every row gets the
    /// bits it gets alone, whatever its partner (a NaN row beside a finite one, +-inf, masked
    /// entries), at odd and even row counts, every width 1-40 and 64-128, and through the fused
    /// scale + mask + Softmax (pairs within each claimed run of rows) at 1-3 threads.
    func testSoftmaxRowPairsAreRowsAlone() throws {
        try XCTSkipIf(mpq_kernel_path_available(MPQ_PATH_AVX2) == 0, "needs the AVX2 path")
        for n in Array(1...40) + [64, 127, 128] {
            for rows in [1, 2, 3, 7, 8] {
                var x = scores(rows: rows, n: n, seed: UInt64(200 + n))
                if rows > 2 { x[n] = .nan }                         // row 1 pairs with row 0
                if rows > 3 { x[3 * n] = .infinity }                // row 3 with row 2
                if rows > 6 { x[6 * n + n - 1] = -.infinity }
                var paired = x
                mpq_softmax_rows_f32(MPQ_PATH_AVX2, &paired, rows, n, 1)
                var alone = x
                for r in 0..<rows {
                    alone.withUnsafeMutableBufferPointer { p in mpq_softmax_rows_f32(MPQ_PATH_AVX2, p.baseAddress! + r * n, 1, n, 1) }
                }
                XCTAssertEqual(paired.map(\.bitPattern), alone.map(\.bitPattern), "n \(n) rows \(rows)")
                // Fused with a scale (and no mask): the same as scaling, then the rows alone.
                var scaled = x.map { $0 * 0.125 }
                for r in 0..<rows {
                    scaled.withUnsafeMutableBufferPointer { p in mpq_softmax_rows_f32(MPQ_PATH_AVX2, p.baseAddress! + r * n, 1, n, 1) }
                }
                for threads: Int32 in [1, 2, 3] {
                    var fused = [Float](repeating: 0, count: x.count)
                    mpq_scaled_masked_softmax_f32(MPQ_PATH_AVX2, x, rows, n, 0.125, 0, nil, nil, &fused, threads)
                    XCTAssertEqual(fused.map(\.bitPattern), scaled.map(\.bitPattern), "fused n \(n) rows \(rows) threads \(threads)")
                }
            }
        }
    }

    func testSoftmaxRowWithNaNOrInfinityFollowsReference() {
        let rows: [[Float]] = [[1, .nan, 2, 3, 4, 5, 6, 7, 8], [.infinity, 1, 2, 3, 4, 5, 6, 7, 8, 9],
                               [-.infinity, -.infinity, -.infinity, -.infinity, -.infinity, -.infinity, -.infinity, -.infinity, -.infinity],
                               [-.infinity, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]]
        for row in rows {
            var ref = row, fast = row
            mpq_softmax_rows_f32(MPQ_PATH_REFERENCE, &ref, 1, row.count, 1)
            mpq_softmax_rows_f32(MPQ_PATH_AUTO, &fast, 1, row.count, 1)
            for i in row.indices {
                XCTAssertTrue(ref[i].isNaN ? fast[i].isNaN : abs(fast[i] - ref[i]) <= 4 * ref[i].ulp, "\(row): \(fast) vs \(ref)")
            }
        }
    }

    /// The op takes the kernel for the last axis (and the opset < 13 coerced form), the
    /// Swift lanes otherwise; both agree with `SoftmaxReference`.
    func testSoftmaxOpMatchesSwiftReferenceOnEveryAxis() throws {
        let x = Tensor(shape: [2, 3, 5, 7], floats: scores(rows: 30, n: 7, seed: 5))
        for (axis, coerce) in [(-1, false), (3, false), (2, false), (1, false), (1, true), (2, true), (0, true)] {
            let got = try ActivationOps.Softmax(x, axis: axis, coerce2D: coerce).floats
            let want = try ActivationOps.SoftmaxReference(x, axis: axis, coerce2D: coerce).floats
            for i in want.indices {
                XCTAssertLessThanOrEqual(abs(got[i] - want[i]), 8 * want[i].ulp, "axis \(axis) coerce \(coerce) i \(i)")
            }
        }
    }

    // MARK: LayerNormalization

    func testLayerNormFastPathMatchesReferenceAndSwiftFormula() throws {
        var rng = TestRNG(seed: 11)
        for cols in [1, 3, 7, 8, 9, 31, 384] {
            let rows = 19
            let x = (0..<(rows * cols)).map { _ in rng.float(-3...5) * 100 }
            let scale = (0..<cols).map { _ in rng.float(0.5...1.5) }, bias = (0..<cols).map { _ in rng.float(-1...1) }
            var ref = [Float](repeating: 0, count: x.count), fast = ref
            var mr = [Float](repeating: 0, count: rows), ir = mr, mf = mr, iff = mr
            mpq_layernorm_f32(MPQ_PATH_REFERENCE, x, rows, cols, scale, bias, 1e-12, &ref, &mr, &ir, 1)
            mpq_layernorm_f32(MPQ_PATH_AUTO, x, rows, cols, scale, bias, 1e-12, &fast, &mf, &iff, 2)
            for r in 0..<rows {
                XCTAssertLessThanOrEqual(abs(mf[r] - mr[r]), mr[r].ulp, "mean cols \(cols)")
                XCTAssertLessThanOrEqual(abs(iff[r] - ir[r]), ir[r].ulp, "inv std cols \(cols)")
            }
            for i in x.indices { XCTAssertLessThanOrEqual(abs(fast[i] - ref[i]), 4 * max(ref[i].ulp, 1e-6), "cols \(cols) i \(i)") }
            // The reference kernel is the Swift formula this op used: moments() and one affine step.
            for r in 0..<rows {
                let (mean, inv) = x.withUnsafeBufferPointer { NormalizationOps.moments($0.baseAddress! + r * cols, cols, 1e-12) }
                XCTAssertEqual(mr[r], mean); XCTAssertEqual(ir[r], inv)
                for j in 0..<cols { XCTAssertEqual(ref[r * cols + j], (x[r * cols + j] - mean) * inv * scale[j] + bias[j]) }
            }
        }
    }

    /// The AVX2 LayerNorm runs rows in pairs with their moments interleaved (s32): every row,
    /// its mean and its 1 / std get the bits they get alone, at odd and even row counts and
    /// widths 1-40 and 384 (a constant row, a huge one beside a small one), and the fused
    /// bias + residual + LayerNorm (pairs within each claimed run) is the Add, the Add and the
    /// rows alone, at 1-3 threads.
    func testLayerNormRowPairsAreRowsAlone() throws {
        try XCTSkipIf(mpq_kernel_path_available(MPQ_PATH_AVX2) == 0, "needs the AVX2 path")
        var rng = TestRNG(seed: 12)
        for cols in Array(1...40) + [384] {
            for rows in [1, 2, 3, 8] {
                var x = (0..<(rows * cols)).map { _ in rng.float(-3...5) * 100 }
                if rows > 1 { for j in 0..<cols { x[cols + j] = 7 } }            // a constant row (variance 0)
                if rows > 2 { for j in 0..<cols { x[2 * cols + j] *= 1e6 } }     // beside row 3
                let scale = (0..<cols).map { _ in rng.float(0.5...1.5) }, bias = (0..<cols).map { _ in rng.float(-1...1) }
                var paired = [Float](repeating: 0, count: x.count), mp = [Float](repeating: 0, count: rows), ip = mp
                mpq_layernorm_f32(MPQ_PATH_AVX2, x, rows, cols, scale, bias, 1e-12, &paired, &mp, &ip, 1)
                var alone = paired, ma = mp, ia = ip
                for r in 0..<rows {
                    x.withUnsafeBufferPointer { px in alone.withUnsafeMutableBufferPointer { py in
                        ma.withUnsafeMutableBufferPointer { pm in ia.withUnsafeMutableBufferPointer { pi in
                            mpq_layernorm_f32(MPQ_PATH_AVX2, px.baseAddress! + r * cols, 1, cols, scale, bias, 1e-12,
                                              py.baseAddress! + r * cols, pm.baseAddress! + r, pi.baseAddress! + r, 1)
                        } }
                    } }
                }
                XCTAssertEqual(paired.map(\.bitPattern), alone.map(\.bitPattern), "cols \(cols) rows \(rows)")
                XCTAssertEqual(mp.map(\.bitPattern), ma.map(\.bitPattern), "means cols \(cols) rows \(rows)")
                XCTAssertEqual(ip.map(\.bitPattern), ia.map(\.bitPattern), "inverse stds cols \(cols) rows \(rows)")
                // Fused: r = (x + bias) + residual, then each row alone.
                let residual = (0..<(rows * cols)).map { _ in rng.float(-2...2) }
                var summed = (0..<(rows * cols)).map { (x[$0] + bias[$0 % cols]) + residual[$0] }
                for r in 0..<rows {
                    summed.withUnsafeMutableBufferPointer { p in
                        mpq_layernorm_f32(MPQ_PATH_AVX2, p.baseAddress! + r * cols, 1, cols, scale, bias, 1e-12,
                                          p.baseAddress! + r * cols, nil, nil, 1)
                    }
                }
                for threads: Int32 in [1, 2, 3] {
                    var fused = [Float](repeating: 0, count: x.count)
                    mpq_add_layernorm_f32(MPQ_PATH_AVX2, x, bias, residual, rows, cols, scale, bias, 1e-12, &fused, threads)
                    XCTAssertEqual(fused.map(\.bitPattern), summed.map(\.bitPattern), "fused cols \(cols) rows \(rows) threads \(threads)")
                }
            }
        }
    }
}
