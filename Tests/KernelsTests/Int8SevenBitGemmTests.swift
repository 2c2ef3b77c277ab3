import CKernels
import XCTest

/// Weights whose consecutive-k pairs have |b0| + |b1| <= 128 (7-bit weights in [-64, 64], what
/// ONNX Runtime's reduce_range produces) make u8 x s8 pair sums fit int16, and the AVX2 GEMM then
/// multiplies with `vpmaddubsw` (qgemm_avx2.c). Packing records the property
/// (`mpq_packed_b_header.pairs_fit_i16`); every path must still give the reference's bytes,
/// also at the bound (activations 255, pairs summing to 128) where one more would saturate.
final class Int8SevenBitGemmTests: XCTestCase {
    /// [n][k] weights within the pair bound: values in [-64, 64], and some pairs at 127 beside +-1.
    private func sevenBit(_ rng: inout Int8TestRNG, n: Int, k: Int, extreme: Bool) -> [Int8] {
        var b = (0..<(n * k)).map { _ in Int8(extreme ? (rng.int(0...1) == 0 ? -64 : 64) : rng.int(-64...64)) }
        for r in 0..<n {
            var p = 0
            while p + 1 < k {
                if rng.int(0...15) == 0 {
                    b[r * k + p] = rng.int(0...1) == 0 ? 127 : -127
                    b[r * k + p + 1] = rng.int(0...1) == 0 ? 1 : -1
                }
                p += 2
            }
        }
        return b
    }

    private func pairsFit(_ packed: [UInt8]) -> Int32 {
        packed.withUnsafeBytes { $0.load(as: mpq_packed_b_header.self).pairs_fit_i16 }
    }

    func testPackingRecordsWhetherPairsFitInt16() {
        var rng = Int8TestRNG(seed: 0x7B17)
        XCTAssertEqual(pairsFit(int8Pack(sevenBit(&rng, n: 33, k: 29, extreme: false), n: 33, k: 29)), 1)
        var b = sevenBit(&rng, n: 5, k: 8, extreme: false)
        b[3 * 8 + 4] = 65; b[3 * 8 + 5] = 64                      // one pair at 129
        XCTAssertEqual(pairsFit(int8Pack(b, n: 5, k: 8)), 0)
        b[3 * 8 + 4] = 64
        XCTAssertEqual(pairsFit(int8Pack(b, n: 5, k: 8)), 1)
        b[3 * 8 + 5] = 0; b[3 * 8 + 6] = 100; b[3 * 8 + 4] = 100; b[3 * 8 + 7] = 0  // 100, 100 in two pairs: fine
        XCTAssertEqual(pairsFit(int8Pack(b, n: 5, k: 8)), 1)
        b[3 * 8 + 7] = 29                                           // 100 + 29 in pair (6, 7)
        XCTAssertEqual(pairsFit(int8Pack(b, n: 5, k: 8)), 0)
        XCTAssertEqual(pairsFit(int8Pack([127, 0, 0, 2], n: 1, k: 4)), 1)
        XCTAssertEqual(pairsFit(int8Pack([-127, -2, 0, 0], n: 1, k: 4)), 0)
        XCTAssertEqual(pairsFit(int8Pack([1, 1, 1, 1, -128], n: 1, k: 5)), 1, "an odd last k pairs with the zero padding")
    }

    func testEveryPathMatchesReferenceWithSevenBitWeights() {
        var rng = Int8TestRNG(seed: 0x5EB1)
        var cases = 0
        for trial in 0..<120 {
            let m = rng.pick(int8AwkwardSizes + [40, 100]), n = rng.pick(int8AwkwardSizes)
            let k = rng.pick(int8AwkwardSizes + [3, 27, 67, 144, 255])
            let extreme = trial % 4 == 0
            let b = sevenBit(&rng, n: n, k: k, extreme: extreme)
            let a = extreme ? [UInt8](repeating: 255, count: m * k) : rng.u8s(m * k)
            let za = Int32(extreme ? 0 : rng.int(0...255))
            let packed = int8Pack(b, n: n, k: k)
            XCTAssertEqual(pairsFit(packed), 1)
            var want = [Int32](repeating: 0, count: m * n)
            for i in 0..<m { for j in 0..<n { for p in 0..<k { want[i * n + j] += (Int32(a[i * k + p]) - za) * Int32(b[j * k + p]) } } }
            let scaleB = (0..<n).map { _ in rng.float(0.0005...0.002) }
            let bias = (0..<n).map { _ in Float(rng.int(-500...500)) * 0.01 }
            for path in int8AvailablePaths {
                let threads = 1 + trial % 3
                var c = [Int32](repeating: 0, count: m * n)
                XCTAssertEqual(mpq_qgemm_u8s8(path, Int32(m), Int32(n), Int32(k), a, Int32(k), packed, za, &c, Int32(n), Int32(threads)), 0)
                XCTAssertEqual(c, want, "\(int8PathName(path)) m=\(m) n=\(n) k=\(k) extreme=\(extreme)")
                // Codes, row-major and channel-major, against the reference path's bytes.
                for channelMajor in [Int32(0), 1] {
                    let ldo = channelMajor == 1 ? m : n
                    var got = [UInt8](repeating: 0xEE, count: m * n), ref = got
                    scaleB.withUnsafeBufferPointer { sb in
                        bias.withUnsafeBufferPointer { bb in
                            var ep = mpq_epilogue(a_zero_point: za, a_scale: 0.02, b_scale: sb.baseAddress, bias: bb.baseAddress,
                                                  clamp_lo: 0, clamp_hi: 255, bias_i32: nil, out_scale: 1)
                            XCTAssertEqual(mpq_qgemm_u8s8_u8(MPQ_PATH_REFERENCE, Int32(m), Int32(n), Int32(k), a, Int32(k), packed, &ep,
                                                             &ref, Int32(ldo), 3, channelMajor, 1), 0)
                            XCTAssertEqual(mpq_qgemm_u8s8_u8(path, Int32(m), Int32(n), Int32(k), a, Int32(k), packed, &ep,
                                                             &got, Int32(ldo), 3, channelMajor, Int32(threads)), 0)
                        }
                    }
                    XCTAssertEqual(got, ref, "\(int8PathName(path)) codes channel-major \(channelMajor) m=\(m) n=\(n) k=\(k)")
                }
            }
            cases += 1
        }
        print("7-bit int8 gemm: \(cases) shapes on \(int8AvailablePaths.map(int8PathName).joined(separator: ", "))")
    }

    /// 1x1 convs (the AVX2 pointwise kernel's vpmaddubsw form, and im2col + GEMM on small
    /// planes) with 7-bit weights: every path's codes and floats are the reference's bytes.
    func testPointwiseConvWithSevenBitWeightsMatchesReference() {
        var rng = Int8TestRNG(seed: 0x9017)
        for (trial, (k, n, h, w)) in [(16, 24, 16, 16), (3, 8, 12, 11), (64, 96, 14, 14), (37, 5, 9, 23), (144, 24, 7, 7), (8, 16, 1, 200)].enumerated() {
            let extreme = trial % 3 == 0
            let b = sevenBit(&rng, n: n, k: k, extreme: extreme)
            let packed = int8Pack(b, n: n, k: k)
            XCTAssertEqual(pairsFit(packed), 1)
            let x = extreme ? [UInt8](repeating: 255, count: k * h * w) : rng.u8s(k * h * w)
            var shape = mpq_conv2d_shape(channels: Int32(k), height: Int32(h), width: Int32(w), kernel_h: 1, kernel_w: 1,
                                         pad_top: 0, pad_left: 0, pad_bottom: 0, pad_right: 0, stride_h: 1, stride_w: 1,
                                         dilation_h: 1, dilation_w: 1, group: 1)
            let scaleB = (0..<n).map { _ in rng.float(0.0001...0.001) }
            let biasI32 = (0..<n).map { _ in Int32(rng.int(-5000...5000)) }
            let za: UInt8 = extreme ? 0 : 9
            func run(_ path: mpq_kernel_path, codes: Bool) -> ([UInt8], [Float], String) {
                var outU8 = [UInt8](repeating: 0xA5, count: n * h * w), outF = [Float](repeating: .nan, count: n * h * w)
                scaleB.withUnsafeBufferPointer { sb in
                    biasI32.withUnsafeBufferPointer { bi in
                        var ep = mpq_epilogue(a_zero_point: Int32(za), a_scale: 0.03, b_scale: sb.baseAddress, bias: nil,
                                              clamp_lo: codes ? -4 : -.infinity, clamp_hi: codes ? 251 : .infinity,
                                              bias_i32: bi.baseAddress, out_scale: codes ? 1 : 0)
                        let rc = codes
                            ? mpq_qconv2d_u8s8(path, x, &shape, 0, 0, za, packed, &ep, nil, &outU8, 4, 2)
                            : mpq_qconv2d_u8s8(path, x, &shape, 0, 0, za, packed, &ep, &outF, nil, 0, 2)
                        XCTAssertEqual(rc, 0)
                    }
                }
                return (outU8, outF, String(cString: mpq_last_engine()))
            }
            for codes in [true, false] {
                let ref = run(MPQ_PATH_REFERENCE, codes: codes)
                for path in int8AvailablePaths {
                    let got = run(path, codes: codes)
                    XCTAssertEqual(got.0, ref.0, "\(int8PathName(path)) k=\(k) n=\(n) \(h)x\(w) codes")
                    XCTAssertEqual(got.1.map(\.bitPattern), ref.1.map(\.bitPattern), "\(int8PathName(path)) k=\(k) n=\(n) \(h)x\(w) floats")
                    if path == MPQ_PATH_AVX2 && h * w >= 128 {
                        XCTAssertEqual(got.2, "pointwise+avx2", "the pointwise kernel ran")
                    }
                }
            }
        }
    }
}
