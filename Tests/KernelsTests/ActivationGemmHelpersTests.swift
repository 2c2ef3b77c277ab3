import CKernels
import XCTest
@testable import Kernels

/// The C steps around the INT8 activation x activation GEMM (mpq_activation_gemm.h) against
/// the Swift formulas they replaced, bit for bit, including both sides of the int32 / int64
/// split of the epilogue (k <= 32896 and above).
final class ActivationGemmHelpersTests: XCTestCase {
    func testTransposeShiftAndRowSums() {
        var rng = TestRNG(seed: 17)
        for (k, n, ldb) in [(13, 21, 21), (64, 128, 130), (1, 1, 1), (9, 8, 8)] {
            let b = rng.u8s(k * ldb)
            var bt = [Int8](repeating: 0, count: n * k)
            mpq_transpose_shift_u8(b, Int32(k), Int32(n), Int32(ldb), &bt)
            for c in 0..<n { for j in 0..<k { XCTAssertEqual(bt[c * k + j], Int8(bitPattern: b[j * ldb + c] ^ 0x80)) } }
            let rows = n, za = Int32(rng.int(0...255))
            let a = rng.u8s(rows * k)
            var sums = [Int64](repeating: 0, count: rows)
            mpq_row_sums_u8(a, rows, Int32(k), za, &sums)
            for r in 0..<rows { XCTAssertEqual(sums[r], Int64(a[r * k..<(r + 1) * k].reduce(0) { $0 + Int($1) }) - Int64(za) * Int64(k)) }
        }
    }

    func testCorrectingEpilogueMatchesTheSwiftFormula() {
        var rng = TestRNG(seed: 23)
        for k in [64, 32896, 32897, 65792] {
            let (rows, n) = (5, 19)
            let bound = min(255 * 128 * k, Int(Int32.max))
            let acc = (0..<rows * n).map { _ in Int32(rng.int(-bound...bound)) }
            let sums = (0..<rows).map { _ in Int64(rng.int(-255 * k...255 * k)) }
            for zb in [-128, -1, 0, 127] {
                let scale = rng.float(1e-6...1e-2)
                var out = [Float](repeating: 0, count: rows * n)
                mpq_row_correct_scale_f32(acc, rows, Int32(n), Int32(k), sums, Int64(zb), scale, &out)
                for r in 0..<rows {
                    for c in 0..<n {
                        let want = Float(Int(acc[r * n + c]) - zb * Int(sums[r])) * scale
                        XCTAssertEqual(out[r * n + c].bitPattern, want.bitPattern, "k \(k) zb \(zb) [\(r),\(c)]")
                    }
                }
            }
        }
    }

    /// The split quantization gives one call's codes, on every path, for any thread count.
    func testSplitQuantizeIsOneCall() {
        var rng = TestRNG(seed: 29)
        let x = (0..<200_003).map { i in i % 9973 == 0 ? Float.nan : rng.float(-40...40) }
        for path in [MPQ_PATH_REFERENCE, MPQ_PATH_AVX2, MPQ_PATH_VNNI] where mpq_kernel_path_available(path) != 0 {
            var one = [UInt8](repeating: 0, count: x.count)
            mpq_quantize_u8(path, x, x.count, 0.3, 117, &one)
            for threads in [1, 2, 3, 7] {
                var split = [UInt8](repeating: 1, count: x.count)
                mpq_quantize_u8_split(path, x, x.count, 0.3, 117, &split, Int32(threads))
                XCTAssertEqual(split, one, "path \(path.rawValue) threads \(threads)")
            }
        }
    }
}
