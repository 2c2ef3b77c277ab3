import CKernels
import XCTest
@testable import Kernels

/// The uint8-chain kernels (docs/int8-chains.md): writing codes instead of floats must
/// change no value. For every path the machine has, the GEMM (row-major and channel-major)
/// and the depthwise conv with a requantizing epilogue write codes whose dequantization
/// (`mpq_dequantize_u8`) is bit for bit the float output; the binary region kernel on codes
/// gives the codes of the float kernel's output on the dequantized inputs.
final class Int8ChainKernelTests: XCTestCase {
    /// Codes dequantized by the reference, checked against every other path.
    func dequantize(_ q: [UInt8], _ s: Float, _ zp: UInt8) -> [Float] {
        var y = [Float](repeating: 0, count: q.count)
        mpq_dequantize_u8(MPQ_PATH_REFERENCE, q, q.count, s, zp, &y)
        for path in int8AvailablePaths {
            var p = [Float](repeating: 1, count: q.count)
            mpq_dequantize_u8(path, q, q.count, s, zp, &p)
            XCTAssertEqual(p.map(\.bitPattern), y.map(\.bitPattern), "dequantize \(int8PathName(path))")
        }
        return y
    }

    func testGemmWritesCodesOfTheFloatOutput() {
        var rng = Int8TestRNG(seed: 4242)
        for trial in 0..<60 {
            let m = rng.pick(int8AwkwardSizes + [40, 97]), n = rng.pick(int8AwkwardSizes), k = rng.pick([1, 3, 4, 17, 27, 64, 129])
            let a = rng.u8s(m * k), packed = int8Pack(rng.s8s(n * k), n: n, k: k)
            let zy = UInt8(rng.int(0...255)), sy = rng.float(0.01...0.2)
            let mult = (0..<n).map { _ in rng.float(0.001...0.05) / sy }
            let biasI32: [Int32]? = trial % 2 == 0 ? (0..<n).map { _ in Int32(rng.int(0...4000)) - 2000 } : nil
            let za = Int32(rng.int(0...255))
            let lo = Float(0) - Float(zy), hi = Float(255) - Float(zy)
            for path in int8AvailablePaths {
                for channelMajor in [false, true] {
                    var floats = [Float](repeating: -42, count: m * n)
                    var codes = [UInt8](repeating: 7, count: m * n)
                    let ldo = Int32(channelMajor ? m : n)
                    let (rcF, rcU) = mult.withUnsafeBufferPointer { sb in
                        (biasI32 ?? []).withUnsafeBufferPointer { bi in
                            var ep = mpq_epilogue(a_zero_point: za, a_scale: 1, b_scale: sb.baseAddress, bias: nil, clamp_lo: lo,
                                                  clamp_hi: hi, bias_i32: biasI32 == nil ? nil : bi.baseAddress, out_scale: sy)
                            let f = channelMajor
                                ? mpq_qgemm_u8s8_f32_nchw(path, Int32(m), Int32(n), Int32(k), a, Int32(k), packed, &ep, &floats, ldo, Int32(1 + trial % 2))
                                : mpq_qgemm_u8s8_f32(path, Int32(m), Int32(n), Int32(k), a, Int32(k), packed, &ep, &floats, ldo, Int32(1 + trial % 2))
                            let u = mpq_qgemm_u8s8_u8(path, Int32(m), Int32(n), Int32(k), a, Int32(k), packed, &ep, &codes, ldo, zy,
                                                      channelMajor ? 1 : 0, Int32(1 + trial % 2))
                            return (f, u)
                        }
                    }
                    XCTAssertEqual(rcF, 0); XCTAssertEqual(rcU, 0)
                    XCTAssertEqual(dequantize(codes, sy, zy).map(\.bitPattern), floats.map(\.bitPattern),
                                   "\(int8PathName(path)) m=\(m) n=\(n) k=\(k) channel-major \(channelMajor)")
                }
            }
        }
    }

    func testGemmCodesNeedARequantizingEpilogue() {
        let a = [UInt8](repeating: 1, count: 4), packed = int8Pack([Int8](repeating: 1, count: 4), n: 1, k: 4)
        let s: [Float] = [1]
        var out = [UInt8](repeating: 0, count: 1)
        s.withUnsafeBufferPointer { sb in
            var ep = mpq_epilogue(a_zero_point: 0, a_scale: 1, b_scale: sb.baseAddress, bias: nil, clamp_lo: 0, clamp_hi: 255,
                                  bias_i32: nil, out_scale: 0)
            XCTAssertEqual(mpq_qgemm_u8s8_u8(MPQ_PATH_AUTO, 1, 1, 4, a, 4, packed, &ep, &out, 1, 0, 0, 1), -1)
            ep.out_scale = 0.5
            XCTAssertEqual(mpq_qgemm_u8s8_u8(MPQ_PATH_AUTO, 1, 1, 4, a, 4, packed, &ep, &out, 1, 0, 0, 1), 0)
            XCTAssertEqual(out, [4])   // 4 * multiplier 1, rounded, + zero point 0
        }
    }

    func testDepthwiseWritesCodesOfTheFloatOutput() {
        var rng = Int8TestRNG(seed: 777)
        let fixed = [mpq_conv2d_shape(channels: 3, height: 9, width: 64, kernel_h: 3, kernel_w: 3, pad_top: 1, pad_left: 1,
                                      pad_bottom: 1, pad_right: 1, stride_h: 1, stride_w: 1, dilation_h: 1, dilation_w: 1, group: 3),
                     mpq_conv2d_shape(channels: 2, height: 9, width: 65, kernel_h: 3, kernel_w: 3, pad_top: 1, pad_left: 1,
                                      pad_bottom: 1, pad_right: 1, stride_h: 2, stride_w: 2, dilation_h: 1, dilation_w: 1, group: 2),
                     mpq_conv2d_shape(channels: 4, height: 5, width: 7, kernel_h: 5, kernel_w: 5, pad_top: 2, pad_left: 2,
                                      pad_bottom: 2, pad_right: 2, stride_h: 1, stride_w: 1, dilation_h: 1, dilation_w: 1, group: 4)]
        for (trial, var shape) in fixed.enumerated() {
            let c = Int(shape.channels), oh = Int(mpq_conv2d_out_h(&shape)), ow = Int(mpq_conv2d_out_w(&shape))
            let x = rng.u8s(c * Int(shape.height * shape.width)), w = rng.s8s(c * Int(shape.kernel_h * shape.kernel_w))
            let zy = UInt8(rng.int(0...255)), sy = rng.float(0.01...0.2)
            let mult = (0..<c).map { _ in rng.float(0.001...0.05) / sy }
            let biasI32 = (0..<c).map { _ in Int32(rng.int(0...4000)) - 2000 }
            for path in int8AvailablePaths {
                var floats = [Float](repeating: -42, count: c * oh * ow)
                var codes = [UInt8](repeating: 7, count: c * oh * ow)
                mult.withUnsafeBufferPointer { sb in
                    biasI32.withUnsafeBufferPointer { bi in
                        var ep = mpq_epilogue(a_zero_point: Int32(trial * 50), a_scale: 1, b_scale: sb.baseAddress, bias: nil,
                                              clamp_lo: Float(0) - Float(zy), clamp_hi: Float(255) - Float(zy),
                                              bias_i32: bi.baseAddress, out_scale: sy)
                        XCTAssertEqual(mpq_depthwise_conv_u8s8(path, x, &shape, w, &ep, &floats), 0)
                        XCTAssertEqual(mpq_depthwise_conv_u8s8_u8(path, x, &shape, w, &ep, &codes, zy), 0)
                    }
                }
                XCTAssertEqual(dequantize(codes, sy, zy).map(\.bitPattern), floats.map(\.bitPattern), "\(int8PathName(path)) shape \(trial)")
            }
        }
    }

    func testBinaryOnCodesIsTheFloatKernelOnTheirValues() {
        var rng = Int8TestRNG(seed: 99)
        for n in [1, 15, 16, 17, 64, 1000] {
            for (s, zp) in [(Float(0.1), UInt8(0)), (0.037, 131), (0.5, 255)] {
                let qa = rng.u8s(n), qb = rng.u8s(n)
                let (sa, za, sb, zb) = (Float(0.05), UInt8(128), Float(0.02), UInt8(3))
                let fa = dequantize(qa, sa, za), fb = dequantize(qb, sb, zb)
                for multiply in [Int32(0), 1] {
                    for path in int8AvailablePaths {
                        var codes = [UInt8](repeating: 0, count: n)
                        mpq_requantize_binary_u8(path, multiply, qa, sa, za, qb, sb, zb, n, s, zp, &codes)
                        var floats = [Float](repeating: 0, count: n)
                        mpq_requantize_binary_f32(path, multiply, fa, fb, n, s, zp, &floats)
                        XCTAssertEqual(dequantize(codes, s, zp).map(\.bitPattern), floats.map(\.bitPattern),
                                       "\(int8PathName(path)) n \(n) multiply \(multiply) s \(s) zp \(zp)")
                    }
                }
            }
        }
    }

    /// The split residual Add / Mul on codes (`mpq_requantize_binary_u8_threads`, 64-code units
    /// over the kernel pool) writes the bytes of one call, around and above the 4096-code
    /// threshold, on every path and thread count.
    func testSplitBinaryOnCodesGivesTheBytesOfOneCall() {
        var rng = Int8TestRNG(seed: 5)
        for n in [4095, 4096, 4097, 12_345, 75_264] {
            let qa = rng.u8s(n), qb = rng.u8s(n)
            for multiply in [Int32(0), 1] {
                for path in int8AvailablePaths {
                    var want = [UInt8](repeating: 0, count: n)
                    mpq_requantize_binary_u8(path, multiply, qa, 0.05, 128, qb, 0.02, 3, n, 0.037, 131, &want)
                    for threads: Int32 in [1, 2, 3, 5] {
                        var got = [UInt8](repeating: 7, count: n)
                        mpq_requantize_binary_u8_threads(path, multiply, qa, 0.05, 128, qb, 0.02, 3, n, 0.037, 131, &got, threads)
                        XCTAssertTrue(got == want, "\(int8PathName(path)) n \(n) multiply \(multiply) threads \(threads)")
                    }
                }
            }
        }
    }

    /// Quantizing a dequantized code with the same grid gives the code back: why an INT8
    /// consumer may take codes on its own input grid instead of quantizing the floats.
    func testQuantizingTheGridGivesTheCodesBack() {
        for (s, zp) in [(Float(0.1), UInt8(0)), (0.0713, 131), (1 / 255, 0), (37.5, 255), (1e-30, 7)] {
            let q = (0...255).map { UInt8($0) }
            let f = dequantize(q, s, zp)
            for path in int8AvailablePaths {
                var back = [UInt8](repeating: 0, count: 256)
                mpq_quantize_u8(path, f, 256, s, zp, &back)
                XCTAssertEqual(back, q, "\(int8PathName(path)) s \(s) zp \(zp)")
            }
        }
    }
}
