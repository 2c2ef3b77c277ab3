import CKernels
import XCTest


/// Tolerances for float outputs, in one place. The fused epilogue does the same
/// float operations in the same order on every path, so it is exact too.
enum Int8Tolerance {
    static let epilogueULPs = 0
}

/// Every kernel path this CPU can run, reference first.
let int8AvailablePaths: [mpq_kernel_path] = [MPQ_PATH_REFERENCE, MPQ_PATH_AVX2, MPQ_PATH_VNNI]
    .filter { mpq_kernel_path_available($0) != 0 }

func int8PathName(_ p: mpq_kernel_path) -> String { String(cString: mpq_kernel_path_name(p)) }

/// ruy's awkward sizes: around 1, the 16-column panel and the 64-column tile.
let int8AwkwardSizes = Array(1...10) + [15, 16, 17, 31, 32, 33, 63, 64, 65]

/// Packs [N][K] int8 weights; the packed bytes as an array.
func int8Pack(_ b: [Int8], n: Int, k: Int, ldb: Int? = nil) -> [UInt8] {
    var packed = [UInt8](repeating: 0xAB, count: mpq_pack_b_s8_size(Int32(n), Int32(k)))
    let rc = b.withUnsafeBufferPointer { bp in
        packed.withUnsafeMutableBytes { mpq_pack_b_s8(bp.baseAddress, Int32(n), Int32(k), Int32(ldb ?? k), $0.baseAddress) }
    }
    precondition(rc == 0, "pack failed")
    return packed
}

final class Int8GemmTests: XCTestCase {
    /// Plain Swift triple loop over unpacked B: checks the packing and the reference.
    private func naive(_ a: [UInt8], _ b: [Int8], m: Int, n: Int, k: Int, lda: Int, za: Int32) -> [Int32] {
        var c = [Int32](repeating: 0, count: m * n)
        for i in 0..<m {
            for j in 0..<n {
                var acc: Int32 = 0
                for p in 0..<k { acc &+= (Int32(a[i * lda + p]) - za) * Int32(b[j * k + p]) }
                c[i * n + j] = acc
            }
        }
        return c
    }

    private func gemm(_ path: mpq_kernel_path, _ a: [UInt8], _ packed: [UInt8], m: Int, n: Int, k: Int,
                      lda: Int, za: Int32, ldc: Int, threads: Int) -> [Int32] {
        var c = [Int32](repeating: -7, count: m * ldc)
        let rc = a.withUnsafeBufferPointer { ap in
            packed.withUnsafeBytes { pp in
                c.withUnsafeMutableBufferPointer { cp in
                    mpq_qgemm_u8s8(path, Int32(m), Int32(n), Int32(k), ap.baseAddress, Int32(lda),
                                   pp.baseAddress, za, cp.baseAddress, Int32(ldc), Int32(threads))
                }
            }
        }
        XCTAssertEqual(rc, 0)
        // Columns past N (ldc padding) must be left untouched.
        for i in 0..<m { for j in n..<ldc { XCTAssertEqual(c[i * ldc + j], -7, "wrote past N") } }
        return (0..<m).flatMap { i in c[(i * ldc)..<(i * ldc + n)] }
    }

    private func gemmF32(_ path: mpq_kernel_path, _ a: [UInt8], _ packed: [UInt8], m: Int, n: Int, k: Int,
                         za: Int32, scaleA: Float, scaleB: [Float], bias: [Float]?, lo: Float, hi: Float,
                         threads: Int, biasI32: [Int32]? = nil, outScale: Float = 0) -> [Float] {
        var out = [Float](repeating: .nan, count: m * n)
        let rc = scaleB.withUnsafeBufferPointer { sb in
            (biasI32 ?? []).withUnsafeBufferPointer { bi in
            (bias ?? []).withUnsafeBufferPointer { bb in
                var ep = mpq_epilogue(a_zero_point: za, a_scale: scaleA, b_scale: sb.baseAddress,
                                      bias: bias == nil ? nil : bb.baseAddress, clamp_lo: lo, clamp_hi: hi,
                                      bias_i32: biasI32 == nil ? nil : bi.baseAddress, out_scale: outScale)
                return a.withUnsafeBufferPointer { ap in
                    packed.withUnsafeBytes { pp in
                        out.withUnsafeMutableBufferPointer { op in
                            mpq_qgemm_u8s8_f32(path, Int32(m), Int32(n), Int32(k), ap.baseAddress, Int32(k),
                                               pp.baseAddress, &ep, op.baseAddress, Int32(n), Int32(threads))
                        }
                    }
                }
            }
            }
        }
        XCTAssertEqual(rc, 0)
        return out
    }

    func testEveryPathMatchesReferenceBitForBit() {
        var rng = Int8TestRNG(seed: 0x5EED_6E33)
        var cases = 0
        for m in int8AwkwardSizes {
            for _ in 0..<6 {
                let n = rng.pick(int8AwkwardSizes)
                let k = rng.pick(int8AwkwardSizes + [3, 5, 7, 13, 67, 129, 255])
                let lda = k + rng.int(0...3), ldc = n + rng.int(0...2)
                let za = Int32(rng.int(0...255)), threads = rng.int(1...3)
                let a = rng.u8s(m * lda), b = rng.s8s(n * k)
                let packed = int8Pack(b, n: n, k: k)
                let expected = naive(a, b, m: m, n: n, k: k, lda: lda, za: za)
                for path in int8AvailablePaths {
                    let got = gemm(path, a, packed, m: m, n: n, k: k, lda: lda, za: za, ldc: ldc, threads: threads)
                    XCTAssertEqual(got, expected, "\(int8PathName(path)) m=\(m) n=\(n) k=\(k) za=\(za) threads=\(threads)")
                }
                cases += 1
            }
        }
        print("int8 gemm paths covered: \(int8AvailablePaths.map(int8PathName).joined(separator: ", ")) over \(cases) shapes")
    }

    func testFusedEpilogueMatchesReferenceAndFormula() {
        var rng = Int8TestRNG(seed: 42)
        for trial in 0..<60 {
            let m = rng.pick(int8AwkwardSizes), n = rng.pick(int8AwkwardSizes), k = rng.pick([1, 3, 4, 17, 33, 65, 100])
            let za = Int32(rng.int(0...255))
            let a = rng.u8s(m * k), b = rng.s8s(n * k)
            let packed = int8Pack(b, n: n, k: k)
            let scaleA = rng.float(0.001...0.1)
            let scaleB = (0..<n).map { _ in rng.float(0.001...0.05) }
            let bias: [Float]? = trial % 2 == 0 ? (0..<n).map { _ in rng.float(-5...5) } : nil
            let (lo, hi): (Float, Float) = [(-.infinity, .infinity), (0, .infinity), (0, 6), (-1, 1)][trial % 4]
            // The requantizing form (ORT's QLinearConv): an int32 bias added before conversion.
            let biasI32: [Int32]? = trial % 3 == 1 ? (0..<n).map { _ in Int32(rng.int(0...20000)) - 10000 } : nil
            let outScale: Float = trial % 3 == 1 ? rng.float(0.01...0.1) : 0
            let acc = naive(a, b, m: m, n: n, k: k, lda: k, za: za)
            var expected = [Float](repeating: 0, count: m * n)
            for i in 0..<m {
                for j in 0..<n {
                    let s = scaleA * scaleB[j]
                    var v = Float(acc[i * n + j] + (biasI32?[j] ?? 0)) * s
                    if let bias { v = v + bias[j] }
                    v = min(max(v, lo), hi)
                    if outScale > 0 { v = v.rounded(.toNearestOrEven) * outScale + 0 }
                    expected[i * n + j] = v
                }
            }
            for path in int8AvailablePaths {
                let got = gemmF32(path, a, packed, m: m, n: n, k: k, za: za, scaleA: scaleA, scaleB: scaleB,
                                  bias: bias, lo: lo, hi: hi, threads: 1 + trial % 2, biasI32: biasI32, outScale: outScale)
                for idx in 0..<(m * n) where got[idx].bitPattern != expected[idx].bitPattern {
                    let ulps = abs(Int(got[idx].bitPattern) - Int(expected[idx].bitPattern))
                    XCTAssertLessThanOrEqual(ulps, Int8Tolerance.epilogueULPs,
                                             "\(int8PathName(path)) m=\(m) n=\(n) k=\(k) at \(idx): \(got[idx]) vs \(expected[idx])")
                }
            }
        }
        print("int8 epilogue paths covered: \(int8AvailablePaths.map(int8PathName).joined(separator: ", "))")
    }

    /// The channel-major (NCHW) variant writes exactly the transpose of the row-major one.
    func testChannelMajorOutputIsTheTranspose() {
        var rng = Int8TestRNG(seed: 8086)
        for trial in 0..<40 {
            let m = rng.pick(int8AwkwardSizes), n = rng.pick(int8AwkwardSizes), k = rng.pick([1, 2, 5, 16, 27, 64])
            let ldo = m + rng.int(0...3)
            let a = rng.u8s(m * k), packed = int8Pack(rng.s8s(n * k), n: n, k: k)
            let scaleB = (0..<n).map { _ in rng.float(0.001...0.05) }, bias = (0..<n).map { _ in rng.float(-1...1) }
            let expected = gemmF32(MPQ_PATH_REFERENCE, a, packed, m: m, n: n, k: k, za: 7, scaleA: 0.03, scaleB: scaleB,
                                   bias: bias, lo: 0, hi: .infinity, threads: 1)
            for path in int8AvailablePaths {
                var out = [Float](repeating: -42, count: n * ldo)
                let rc = scaleB.withUnsafeBufferPointer { sb in
                    bias.withUnsafeBufferPointer { bb in
                        var ep = mpq_epilogue(a_zero_point: 7, a_scale: 0.03, b_scale: sb.baseAddress, bias: bb.baseAddress,
                                              clamp_lo: 0, clamp_hi: .infinity, bias_i32: nil, out_scale: 0)
                        return mpq_qgemm_u8s8_f32_nchw(path, Int32(m), Int32(n), Int32(k), a, Int32(k), packed, &ep,
                                                       &out, Int32(ldo), Int32(1 + trial % 2))
                    }
                }
                XCTAssertEqual(rc, 0)
                for j in 0..<n {
                    for i in 0..<ldo {
                        let want = i < m ? expected[i * n + j] : -42
                        XCTAssertEqual(out[j * ldo + i].bitPattern, want.bitPattern, "\(int8PathName(path)) m=\(m) n=\(n) k=\(k) [\(j)][\(i)]")
                    }
                }
            }
        }
    }

    func testPackedLayoutAndColumnSums() {
        let n = 17, k = 5
        var rng = Int8TestRNG(seed: 7)
        let b = rng.s8s(n * 8)
        let packed = int8Pack(b, n: n, k: k, ldb: 8)  // ldb > k: the rest of each row is ignored
        // 64-byte header, colsum padded to 32 ints (128 bytes), data 32 columns x 8 k.
        XCTAssertEqual(packed.count, 64 + 128 + 32 * 8)
        packed.withUnsafeBytes { raw in
            let colsum = mpq_packed_b_colsum(raw.baseAddress)!
            for j in 0..<32 {
                let want = j < n ? (0..<k).reduce(Int32(0)) { $0 + Int32(b[j * 8 + $1]) } : 0
                XCTAssertEqual(colsum[j], want, "colsum[\(j)]")
            }
            let data = raw.baseAddress!.advanced(by: 192).assumingMemoryBound(to: Int8.self)
            for j in 0..<32 {
                for p in 0..<8 {
                    let idx = (j / 16) * 8 * 16 + (p / 4) * 64 + (j % 16) * 4 + p % 4
                    XCTAssertEqual(data[idx], j < n && p < k ? b[j * 8 + p] : 0, "B[\(j)][\(p)]")
                }
            }
        }
    }

    func testLargeSquareAllPathsAndThreads() {
        let m = 97, n = 131, k = 259
        var rng = Int8TestRNG(seed: 1234)
        let a = rng.u8s(m * k), b = rng.s8s(n * k)
        let packed = int8Pack(b, n: n, k: k)
        let expected = naive(a, b, m: m, n: n, k: k, lda: k, za: 128)
        for path in int8AvailablePaths {
            for threads in [1, 2, 4] {
                XCTAssertEqual(gemm(path, a, packed, m: m, n: n, k: k, lda: k, za: 128, ldc: n, threads: threads),
                               expected, "\(int8PathName(path)) threads=\(threads)")
            }
        }
    }

    /// The worker pool serialises calls: several callers at once, each asking for
    /// several threads, still get exact results.
    func testConcurrentCallersShareThePool() {
        let m = 33, n = 70, k = 45
        var rng = Int8TestRNG(seed: 555)
        let a = rng.u8s(m * k), b = rng.s8s(n * k)
        let packed = int8Pack(b, n: n, k: k)
        let expected = naive(a, b, m: m, n: n, k: k, lda: k, za: 3)
        let failures = UnsafeMutableBufferPointer<Int>.allocate(capacity: 4)
        failures.initialize(repeating: 0)
        defer { failures.deallocate() }
        DispatchQueue.concurrentPerform(iterations: 4) { caller in
            for round in 0..<50 {
                var c = [Int32](repeating: 0, count: m * n)
                let rc = a.withUnsafeBufferPointer { ap in
                    packed.withUnsafeBytes { pp in
                        mpq_qgemm_u8s8(MPQ_PATH_AUTO, Int32(m), Int32(n), Int32(k), ap.baseAddress, Int32(k), pp.baseAddress,
                                       3, &c, Int32(n), Int32(1 + (caller + round) % 5))
                    }
                }
                if rc != 0 || c != expected { failures[caller] += 1 }
            }
        }
        XCTAssertEqual(Array(failures), [0, 0, 0, 0])
    }

    /// Threads claim runs of tiles from one counter (qgemm.c): large M (claims of 48-row
    /// multiples), large N (claims of 64-column panel groups) and the channel-major output
    /// with many claims per thread all give exactly the reference / one-thread result.
    func testClaimedRunsCoverEveryTileExactly() {
        var rng = Int8TestRNG(seed: 4242)
        for (m, n, k) in [(1003, 40, 37), (7, 1001, 37), (611, 130, 19)] {
            let a = rng.u8s(m * k), b = rng.s8s(n * k)
            let packed = int8Pack(b, n: n, k: k)
            let expected = naive(a, b, m: m, n: n, k: k, lda: k, za: 131)
            for path in int8AvailablePaths {
                for threads in [2, 3] {
                    XCTAssertEqual(gemm(path, a, packed, m: m, n: n, k: k, lda: k, za: 131, ldc: n, threads: threads),
                                   expected, "\(int8PathName(path)) m=\(m) n=\(n) threads=\(threads)")
                }
                let scaleB = (0..<n).map { _ in rng.float(0.001...0.05) }
                var outs: [[Float]] = []
                for threads in [1, 2, 3] {
                    var out = [Float](repeating: 0, count: n * m)
                    let rc = scaleB.withUnsafeBufferPointer { sb in
                        var ep = mpq_epilogue(a_zero_point: 131, a_scale: 0.03, b_scale: sb.baseAddress, bias: nil,
                                              clamp_lo: -.infinity, clamp_hi: .infinity, bias_i32: nil, out_scale: 0)
                        return mpq_qgemm_u8s8_f32_nchw(path, Int32(m), Int32(n), Int32(k), a, Int32(k), packed, &ep,
                                                       &out, Int32(m), Int32(threads))
                    }
                    XCTAssertEqual(rc, 0)
                    outs.append(out)
                }
                XCTAssertEqual(outs[1].map(\.bitPattern), outs[0].map(\.bitPattern), "\(int8PathName(path)) nchw m=\(m) n=\(n) 2 threads")
                XCTAssertEqual(outs[2].map(\.bitPattern), outs[0].map(\.bitPattern), "\(int8PathName(path)) nchw m=\(m) n=\(n) 3 threads")
            }
        }
    }

    /// More threads than the pool's 64 tasks (and than tiles) still covers every row.
    func testManyThreadsAreClamped() {
        let m = 400, n = 5, k = 3  // 67 row tiles
        var rng = Int8TestRNG(seed: 64)
        let a = rng.u8s(m * k), b = rng.s8s(n * k)
        let expected = naive(a, b, m: m, n: n, k: k, lda: k, za: 1)
        XCTAssertEqual(gemm(MPQ_PATH_AUTO, a, int8Pack(b, n: n, k: k), m: m, n: n, k: k, lda: k, za: 1, ldc: n, threads: 100), expected)
    }

    func testBadArgumentsAreRejected() {
        let packed = int8Pack([1, 2, 3, 4], n: 2, k: 2)
        let a: [UInt8] = [1, 2, 3, 4]
        var c = [Int32](repeating: 0, count: 4)
        a.withUnsafeBufferPointer { ap in
            packed.withUnsafeBytes { pp in
                c.withUnsafeMutableBufferPointer { cp in
                    // K does not match the packed buffer.
                    XCTAssertEqual(mpq_qgemm_u8s8(MPQ_PATH_AUTO, 2, 2, 3, ap.baseAddress, 3, pp.baseAddress, 0, cp.baseAddress, 2, 1), -1)
                    // lda < K.
                    XCTAssertEqual(mpq_qgemm_u8s8(MPQ_PATH_AUTO, 2, 2, 2, ap.baseAddress, 1, pp.baseAddress, 0, cp.baseAddress, 2, 1), -1)
                    XCTAssertEqual(mpq_qgemm_u8s8(MPQ_PATH_AUTO, 2, 2, 2, ap.baseAddress, 2, pp.baseAddress, 0, cp.baseAddress, 2, 1), 0)
                }
            }
        }
        let want: [Int32] = [5, 11, 11, 25]  // [[1,2],[3,4]] x [[1,3],[2,4]]
        XCTAssertEqual(c, want)
        XCTAssertEqual(mpq_pack_b_s8_size(0, 4), 0)
    }

    func testForcingAPath() {
        defer { XCTAssertEqual(mpq_set_kernel_path(MPQ_PATH_AUTO), 0) }
        for path in int8AvailablePaths {
            XCTAssertEqual(mpq_set_kernel_path(path), 0)
            XCTAssertEqual(mpq_get_kernel_path(), path)
            XCTAssertEqual(mpq_resolve_kernel_path(MPQ_PATH_AUTO), path)
        }
        XCTAssertEqual(mpq_set_kernel_path(MPQ_PATH_AUTO), 0)
        print("int8 auto path: \(int8PathName(mpq_get_kernel_path())) (MPQ_KERNEL_PATH=\(ProcessInfo.processInfo.environment["MPQ_KERNEL_PATH"] ?? "unset"))")
    }
}
