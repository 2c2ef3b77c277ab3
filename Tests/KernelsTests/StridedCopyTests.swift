import CKernels
import XCTest
import ONNX
@testable import Kernels

/// `mpq_strided_copy` (C, rows claimed over the kernel pool) against the Swift loop it
/// replaced (`StridedMover.reference`) and against naive index arithmetic: a copy has no
/// arithmetic, so every split must give the same bytes.
final class StridedCopyTests: XCTestCase {
    typealias K = OpTestKit

    /// The attention head split / merge / K^T of MiniLM-sized tensors (large enough for the
    /// pool) and random small ones, floats, int64 and uint8 codes, both movers, equal bytes.
    func testPoolMoverIsTheReferenceOnTransposes() throws {
        var rng = K.RNG(seed: 11)
        var cases: [([Int], [Int])] = [
            ([2, 128, 12, 32], [0, 2, 1, 3]),   // Q / V head split
            ([2, 128, 12, 32], [0, 2, 3, 1]),   // K^T: a gathering inner loop
            ([2, 12, 128, 32], [0, 2, 1, 3]),   // the context merge
            ([3, 97, 5, 61], [3, 1, 0, 2]),     // odd sizes, over 64k elements
            ([70_001], [0]),
        ]
        for _ in 0..<60 {
            let r = 1 + rng.next(5)
            let shape = (0..<r).map { _ in 1 + rng.next(9) }
            var perm = Array(0..<r)
            for i in stride(from: r - 1, to: 0, by: -1) { perm.swapAt(i, rng.next(i + 1)) }
            cases.append((shape, perm))
        }
        for (shape, perm) in cases {
            let n = shape.reduce(1, *)
            let st = stridesOf(shape)
            let out = perm.map { shape[$0] }, ost = perm.map { st[$0] }
            let floats = Tensor(shape: shape, floats: (0..<n).map { _ in rng.float(-5...5) })
            let ints = Tensor(shape: shape, ints: (0..<n).map { _ in Int64(bitPattern: rng.next()) })
            let codes = Tensor(shape: shape, codes: QuantizedCodes(values: rng.u8s(n), scale: 0.5, zeroPoint: 3))
            for t in [floats, ints, codes] {
                let want = t.strided(shape: out, strides: ost, offset: 0, mover: .reference)
                let got = t.strided(shape: out, strides: ost, offset: 0, mover: .pool)
                XCTAssertEqual(got, want, "\(shape) perm \(perm) \(t.dtype) codes \(t.codes != nil)")
            }
            // The reference itself against naive index arithmetic.
            let ref = floats.strided(shape: out, strides: ost, offset: 0, mover: .reference)
            let dst = stridesOf(out)
            for o in Swift.stride(from: 0, to: n, by: max(1, n / 997)) {
                var src = 0
                for d in 0..<out.count { src += ((o / dst[d]) % out[d]) * ost[d] }
                XCTAssertEqual(ref.floats[o].bitPattern, floats.floats[src].bitPattern)
            }
        }
    }

    /// Offsets, negative strides (reversed slices) and zero strides (Expand), at 1, 2, 3 and
    /// 7 threads and every element size, straight through the C call, against naive indexing.
    func testCopyAtEveryThreadCountAndElementSize() {
        var rng = K.RNG(seed: 12)
        // (src count, offset, dims, strides)
        let cases: [(Int, Int, [Int], [Int])] = [
            (300 * 400, 300 * 400 - 1, [300, 400], [-400, -1]),            // fully reversed
            (300 * 400, 399, [300, 400], [400, -1]),                       // reversed rows
            (256, 0, [512, 256], [0, 1]),                                  // Expand a row
            (512, 0, [512, 256], [1, 0]),                                  // Expand a column
            (90 * 130, 7, [45, 3, 600], [260, 1, 0]),                      // mixed
            (128 * 12 * 32, 0, [12, 32, 128], [32, 1, 384]),               // K^T of one image
            (10, 2, [3], [2]),                                             // tiny
        ]
        for (count, offset, dims, strides) in cases {
            let n = dims.reduce(1, *)
            let src64 = (0..<count).map { _ in rng.next() }
            let want = naiveCopy(src64, offset, dims, strides)
            let udims = dims.map { UInt($0) }
            for threads in [1, 2, 3, 7] {
                var got64 = [UInt64](repeating: 0, count: n)
                XCTAssertEqual(mpq_strided_copy(8, src64, offset, Int32(dims.count), udims, strides, &got64, Int32(threads)), 0)
                XCTAssertEqual(got64, want, "8-byte \(dims) \(strides) threads \(threads)")
                var got32 = [UInt32](repeating: 0, count: n)
                XCTAssertEqual(mpq_strided_copy(4, src64.map { UInt32(truncatingIfNeeded: $0) }, offset, Int32(dims.count),
                                                udims, strides, &got32, Int32(threads)), 0)
                XCTAssertEqual(got32, want.map { UInt32(truncatingIfNeeded: $0) }, "4-byte \(dims) threads \(threads)")
                var got16 = [UInt16](repeating: 0, count: n)
                XCTAssertEqual(mpq_strided_copy(2, src64.map { UInt16(truncatingIfNeeded: $0) }, offset, Int32(dims.count),
                                                udims, strides, &got16, Int32(threads)), 0)
                XCTAssertEqual(got16, want.map { UInt16(truncatingIfNeeded: $0) }, "2-byte \(dims) threads \(threads)")
                var got8 = [UInt8](repeating: 0, count: n)
                XCTAssertEqual(mpq_strided_copy(1, src64.map { UInt8(truncatingIfNeeded: $0) }, offset, Int32(dims.count),
                                                udims, strides, &got8, Int32(threads)), 0)
                XCTAssertEqual(got8, want.map { UInt8(truncatingIfNeeded: $0) }, "1-byte \(dims) threads \(threads)")
            }
        }
        var sink = [UInt8](repeating: 0, count: 4)
        XCTAssertEqual(mpq_strided_copy(3, [UInt8](repeating: 0, count: 4), 0, 1, [4], [1], &sink, 1), -1)
        XCTAssertEqual(mpq_strided_copy(1, [UInt8](repeating: 0, count: 4), 0, 0, [], [], &sink, 1), -1)
    }

    /// The 16 x 16 tiled transpose (strided_transpose.c: 4-byte elements, the last output dim
    /// strided, another contiguous in the source): full tiles, tails on both sides, the
    /// contiguous dim not next to the last, a reversed and a repeated (Expand) last dim, at 1,
    /// 2, 3 and 7 threads, against naive indexing. On a CPU without AVX-512F the element loop
    /// runs these (and passes as well).
    func testTiledTransposeTilesAndTails() {
        var rng = K.RNG(seed: 13)
        // (src count, offset, dims, strides)
        let cases: [(Int, Int, [Int], [Int])] = [
            (384 * 128, 0, [384, 128], [1, 384]),                          // MiniLM's K^T, batch 1
            (3 * 384 * 128, 0, [3, 384, 128], [49152, 1, 384]),             // three images
            (37 * 3 * 19, 0, [19, 3, 37], [1, 19, 57]),                    // tails 3 and 5, a dim between
            (20 * 40, 39 * 20, [20, 40], [1, -20]),                        // last dim reversed
            (24, 0, [24, 9], [1, 0]),                                      // a column repeated 9 times
            (64, 0, [8, 8], [1, 8]),                                       // the smallest tiled case
            (3100, 0, [2, 20, 3, 18], [2000, 1, 20, 60]),                 // c between two outer dims
        ]
        for (count, offset, dims, strides) in cases {
            let n = dims.reduce(1, *)
            let src = (0..<count).map { _ in UInt32(truncatingIfNeeded: rng.next()) }
            let want = naiveCopy(src, offset, dims, strides)
            let udims = dims.map { UInt($0) }
            for threads in [1, 2, 3, 7] {
                var got = [UInt32](repeating: 0xDEAD_BEEF, count: n)
                XCTAssertEqual(mpq_strided_copy(4, src, offset, Int32(dims.count), udims, strides, &got, Int32(threads)), 0)
                XCTAssertEqual(got, want, "\(dims) \(strides) offset \(offset) threads \(threads)")
            }
        }
    }

    /// dst[o] = src[offset + sum_d i_d(o) * strides[d]] by plain index arithmetic: the reference.
    private func naiveCopy<T>(_ src: [T], _ offset: Int, _ dims: [Int], _ strides: [Int]) -> [T] {
        let ddst = stridesOf(dims)
        return (0..<dims.reduce(1, *)).map { o in
            var s = offset
            for d in 0..<dims.count { s += ((o / ddst[d]) % dims[d]) * strides[d] }
            return src[s]
        }
    }
}
