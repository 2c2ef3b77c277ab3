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

    /// B [K][N] packed straight from the codes (SSE2 groups and the scalar reference) gives
    /// the bytes of transpose-shift followed by mpq_pack_b_s8: header, column sums, data and
    /// padding, for widths and depths that are and are not multiples of the 16 x 4 group.
    func testPackShiftIsTransposeThenPack() {
        var rng = TestRNG(seed: 31)
        for (k, n, ldb) in [(32, 128, 128), (128, 32, 32), (13, 21, 23), (4, 16, 16), (1, 1, 1), (7, 33, 40), (64, 48, 50), (3, 17, 17)] {
            let b = rng.u8s(k * ldb)
            var bt = [Int8](repeating: 0, count: n * k)
            mpq_transpose_shift_u8(b, Int32(k), Int32(n), Int32(ldb), &bt)
            let size = mpq_pack_b_s8_size(Int32(n), Int32(k))
            var want = [UInt8](repeating: 0xAA, count: size)
            XCTAssertEqual(mpq_pack_b_s8(bt, Int32(n), Int32(k), Int32(k), &want), 0)
            var fast = [UInt8](repeating: 0x55, count: size), reference = [UInt8](repeating: 0x33, count: size)
            XCTAssertEqual(mpq_pack_b_shift_u8(b, Int32(k), Int32(n), Int32(ldb), &fast), 0)
            XCTAssertEqual(mpq_pack_b_shift_u8_reference(b, Int32(k), Int32(n), Int32(ldb), &reference), 0)
            XCTAssertEqual(fast, want, "k \(k) n \(n) ldb \(ldb)")
            XCTAssertEqual(reference, want, "reference, k \(k) n \(n) ldb \(ldb)")
        }
        var small = [UInt8](repeating: 0, count: 64)
        XCTAssertEqual(mpq_pack_b_shift_u8([1, 2], 1, 2, 1, &small), -1, "ldb < n is refused")
    }

    /// The AVX2 correcting epilogue gives the scalar reference's bits (every vector tail, both
    /// signs of zb, sums near the int32 side's bound).
    func testCorrectingEpilogueVectorPathIsTheReference() {
        var rng = TestRNG(seed: 37)
        for (k, n) in [(32, 128), (128, 32), (64, 1), (64, 7), (64, 8), (64, 19), (32896, 9)] {
            let rows = 6
            let bound = min(255 * 128 * k, Int(Int32.max))
            let acc = (0..<rows * n).map { _ in Int32(rng.int(-bound...bound)) }
            let sums = (0..<rows).map { _ in Int64(rng.int(-255 * k...255 * k)) }
            for zb in [-128, -3, 0, 127] {
                let scale = rng.float(1e-6...1e-2)
                var out = [Float](repeating: 0, count: rows * n), want = [Float](repeating: 1, count: rows * n)
                mpq_row_correct_scale_f32(acc, rows, Int32(n), Int32(k), sums, Int64(zb), scale, &out)
                mpq_row_correct_scale_f32_reference(acc, rows, Int32(n), Int32(k), sums, Int64(zb), scale, &want)
                XCTAssertEqual(out.map(\.bitPattern), want.map(\.bitPattern), "k \(k) n \(n) zb \(zb)")
            }
        }
    }

    /// The requantizing form (QLinearMatMul's epilogue): the AVX2 loop against the scalar
    /// reference byte for byte, with multipliers that put values on rounding ties and past both
    /// ends of the uint8 range; and the reference against the formula written out in Swift.
    func testRequantizingEpilogueVectorPathIsTheReference() {
        var rng = TestRNG(seed: 41)
        for (k, n) in [(32, 128), (128, 32), (64, 1), (64, 7), (64, 8), (64, 19), (600, 9)] {
            let rows = 5
            let bound = 255 * 255 * k / 4
            var acc = (0..<rows * n).map { _ in Int32(rng.int(-bound...bound)) }
            for i in stride(from: 0, to: acc.count, by: 3) { acc[i] = Int32(rng.int(-300...300)) }  // ties at multiplier 0.5
            let sums = (0..<rows).map { _ in Int64(rng.int(-255 * k...255 * k)) }
            for (zb, multiplier, zp) in [(-128, Float(0.5), UInt8(128)), (-3, 1e-4, 0), (0, 2e-3, 255), (127, 0.25, 77)] {
                var out = [UInt8](repeating: 0, count: rows * n), want = [UInt8](repeating: 1, count: rows * n)
                mpq_row_correct_requant_u8(acc, rows, Int32(n), Int32(k), sums, Int64(zb), multiplier, zp, &out)
                mpq_row_correct_requant_u8_reference(acc, rows, Int32(n), Int32(k), sums, Int64(zb), multiplier, zp, &want)
                XCTAssertEqual(out, want, "k \(k) n \(n) zb \(zb) multiplier \(multiplier)")
                let swift = (0..<rows * n).map { i -> UInt8 in
                    var v = Float(Int64(acc[i]) - Int64(zb) * sums[i / n]) * multiplier
                    v = Swift.min(Swift.max(v, -Float(zp)), 255 - Float(zp))
                    return UInt8(Int(v.rounded(.toNearestOrEven)) + Int(zp))
                }
                XCTAssertEqual(want, swift, "reference vs Swift, k \(k) n \(n) zb \(zb)")
            }
        }
    }

    /// The out-of-place bias Add (BiasAddFusion) is x + bias per element, x left as it was.
    func testBiasAddIntoIsTheFloatAdd() {
        var rng = TestRNG(seed: 41)
        for (rows, cols) in [(1, 1), (3, 7), (2048, 19), (300, 384)] {
            let x = (0..<rows * cols).map { _ in rng.float(-50...50) }, bias = (0..<cols).map { _ in rng.float(-3...3) }
            for threads in [1, 2, 3] {
                var y = [Float](repeating: .nan, count: x.count)
                mpq_add_bias_rows_into_f32(x, rows, cols, bias, &y, Int32(threads))
                let want = x.indices.map { (x[$0] + bias[$0 % cols]).bitPattern }
                XCTAssertEqual(y.map(\.bitPattern), want, "\(rows) x \(cols), \(threads) threads")
            }
        }
    }
}
