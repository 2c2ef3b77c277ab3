import CKernels
import XCTest
import ONNX
@testable import Kernels

/// `mpq_depthwise3x3_f32`: every path against the scalar reference, and the reference
/// against the Swift tap-by-tap loop (`ConvOps.depthwisePlane`), bit for bit, over odd
/// plane sizes (vector tails, planes narrower than a vector, interiors of 16-38 outputs
/// between the AVX-512 kernel's masked border blocks), strides 1-3, pads 0-2.
final class DepthwiseF32KernelTests: XCTestCase {
    func testEveryPathEqualsReferenceAndTapLoopBitForBit() throws {
        var rng = TestRNG(seed: 17)
        let paths = [MPQ_PATH_AUTO] + (mpq_kernel_path_available(MPQ_PATH_AVX2) != 0 ? [MPQ_PATH_AVX2] : [])
        var planes = 0
        for (h, w) in [(1, 1), (2, 3), (3, 8), (5, 9), (7, 7), (9, 17), (14, 14), (11, 26), (16, 33), (6, 40), (28, 28), (6, 112), (5, 57), (13, 70), (8, 48)] {
            for stride in [(1, 1), (2, 2), (1, 2), (2, 1), (3, 3)] {
                for pad in [(0, 0, 0, 0), (1, 1, 1, 1), (0, 1, 1, 0), (2, 1, 0, 2)] {
                    var geom = try WindowGeometry(input: [h, w], kernel: [3, 3], strides: [stride.0, stride.1],
                                                  dilations: nil, pads: [pad.0, pad.1, pad.2, pad.3], op: "test")
                    guard (try? geom.resolveConv(autoPad: .notSet, op: "test")) != nil,
                          geom.output[1] > 0, geom.output[2] > 0 else { continue }
                    let x: [Float] = (0..<h * w).map { i in i % 13 == 5 ? -0.0 : rng.float(-3...3) }
                    let taps: [Float] = (0..<9).map { _ in rng.float(-1...1) }
                    let (oh, ow) = (geom.output[1], geom.output[2])
                    func run(_ path: mpq_kernel_path) -> [Float] {
                        var y = [Float](repeating: .nan, count: oh * ow)
                        mpq_depthwise3x3_f32(path, x, Int32(h), Int32(w), taps, Int32(stride.0), Int32(stride.1),
                                             Int32(pad.0), Int32(pad.1), Int32(oh), Int32(ow), &y)
                        return y
                    }
                    let ref = run(MPQ_PATH_REFERENCE)
                    var tapLoop = [Float](repeating: 0, count: oh * ow)
                    x.withUnsafeBufferPointer { px in taps.withUnsafeBufferPointer { pw in tapLoop.withUnsafeMutableBufferPointer { py in
                        ConvOps.depthwisePlane(src: px.baseAddress!, weights: pw.baseAddress!, dst: py.baseAddress!, geom)
                    }}}
                    let what = "\(h)x\(w) stride \(stride) pads \(pad)"
                    XCTAssertEqual(ref.map(\.bitPattern), tapLoop.map(\.bitPattern), "reference vs tap loop, \(what)")
                    for p in paths { XCTAssertEqual(run(p).map(\.bitPattern), ref.map(\.bitPattern), "path \(p.rawValue), \(what)") }
                    planes += 1
                }
            }
        }
        XCTAssertGreaterThan(planes, 150)
    }

    /// `mpq_depthwise_f32` (whole image, any kernel): every path against the reference and the
    /// Swift tap loop bit for bit, on the narrow planes the AVX-512 kernel takes (7x7, 14x14,
    /// stride 2 onto 7x7, several rows per vector, 5x5 and 1x7 kernels, dilation, wide pads)
    /// and on wide ones it leaves to the 3x3 plane kernel or the reference.
    func testWholeImageKernelEqualsTapLoopOnEveryPath() throws {
        var rng = TestRNG(seed: 23)
        let paths = [MPQ_PATH_REFERENCE, MPQ_PATH_AUTO] + [MPQ_PATH_AVX2, MPQ_PATH_VNNI].filter { mpq_kernel_path_available($0) != 0 }
        // (h, w, kh, kw, stride, pad, dilation)
        let cases = [(7, 7, 3, 3, 1, 1, 1), (14, 14, 3, 3, 1, 1, 1), (14, 14, 3, 3, 2, 1, 1), (5, 9, 3, 3, 1, 2, 1),
                     (13, 13, 5, 5, 2, 2, 1), (6, 11, 1, 7, 1, 3, 1), (12, 12, 3, 3, 1, 2, 2), (3, 3, 3, 3, 1, 1, 1),
                     (1, 15, 1, 3, 1, 1, 1), (9, 40, 3, 3, 2, 1, 1), (28, 28, 3, 3, 1, 1, 1), (20, 33, 5, 5, 1, 2, 1),
                     (12, 112, 3, 3, 1, 1, 1), (11, 113, 3, 3, 2, 1, 1), (8, 96, 3, 3, 2, 0, 1)]
        // Each case also tiny (s13): products ~1e-44 underflow, fused sums may end at -0, and
        // every path must turn it into +0 as the reference does.
        for (h, w, kh, kw, stride, pad, dil) in cases { for scale: Float in [1, 1e-22] {
            let c = 5
            var geom = try WindowGeometry(input: [h, w], kernel: [kh, kw], strides: [stride, stride], dilations: [dil, dil],
                                          pads: [pad, pad, pad, pad], op: "test")
            try geom.resolveConv(autoPad: .notSet, op: "test")
            let (oh, ow) = (geom.output[1], geom.output[2])
            let x: [Float] = (0..<c * h * w).map { i in i % 13 == 5 ? -0.0 : rng.float(-3...3) * scale }
            let taps: [Float] = (0..<c * kh * kw).map { _ in rng.float(-1...1) * scale }
            let tapLoop = tapLoopReference(x: x, taps: taps, channels: c, plane: (h, w), kernel: (kh, kw), geom)
            var s = mpq_conv2d_shape(channels: Int32(c), height: Int32(h), width: Int32(w), kernel_h: Int32(kh), kernel_w: Int32(kw),
                                     pad_top: Int32(pad), pad_left: Int32(pad), pad_bottom: Int32(pad), pad_right: Int32(pad),
                                     stride_h: Int32(stride), stride_w: Int32(stride), dilation_h: Int32(dil), dilation_w: Int32(dil),
                                     group: Int32(c))
            for p in paths {
                var y = [Float](repeating: .nan, count: c * oh * ow)
                XCTAssertEqual(mpq_depthwise_f32(p, x, &s, taps, &y), 0)
                XCTAssertEqual(y.map(\.bitPattern), tapLoop.map(\.bitPattern), "path \(p.rawValue), \(h)x\(w) k\(kh)x\(kw) /\(stride) pad \(pad) dil \(dil) scale \(scale)")
            }
        } }
        var bad = mpq_conv2d_shape(channels: 4, height: 5, width: 5, kernel_h: 3, kernel_w: 3, pad_top: 0, pad_left: 0, pad_bottom: 0,
                                   pad_right: 0, stride_h: 1, stride_w: 1, dilation_h: 1, dilation_w: 1, group: 2)
        var y = [Float](repeating: 0, count: 36)
        XCTAssertEqual(mpq_depthwise_f32(MPQ_PATH_AUTO, [Float](repeating: 1, count: 100), &bad, [Float](repeating: 1, count: 36), &y), -1,
                       "group != channels is not depthwise")
        print("fp32 depthwise paths covered:", paths.map { String(cString: mpq_kernel_path_name($0)) }.joined(separator: ", "),
              mpq_kernel_path_available(MPQ_PATH_VNNI) != 0 ? "(AVX-512 narrow-plane kernel ran)" : "(no AVX-512)")
    }

    /// The AVX-512 row kernel (`mpq_depthwise_f32_rows_avx512`, wide planes on the VNNI path):
    /// every path against the Swift tap loop bit for bit on rows of 16 to 70 outputs (one
    /// and several 16-lane blocks, tails), strides 1 and 2 across (any down), asymmetric and
    /// wide pads (whole kernel rows and columns in the padding), 3x3 / 5x5 / 1x7 / 3x1
    /// kernels, dilation down, and non-finite values: a padded tap must be skipped, not
    /// added as w * 0 (an infinite weight would make that NaN).
    func testRowKernelEqualsTapLoopOnWidePlanes() throws {
        var rng = TestRNG(seed: 31)
        let paths = [MPQ_PATH_REFERENCE, MPQ_PATH_AUTO] + [MPQ_PATH_AVX2, MPQ_PATH_VNNI].filter { mpq_kernel_path_available($0) != 0 }
        // (h, w, kh, kw, stride h, stride w, pads t l b r, dilation h)
        let cases: [(Int, Int, Int, Int, Int, Int, [Int], Int)] = [
            (4, 16, 3, 3, 1, 1, [1, 1, 1, 1], 1), (5, 17, 3, 3, 1, 1, [1, 1, 1, 1], 1), (9, 33, 3, 3, 1, 1, [0, 1, 1, 0], 1),
            (6, 40, 3, 3, 2, 2, [1, 1, 1, 1], 1), (11, 70, 3, 3, 2, 2, [0, 0, 1, 1], 1), (8, 56, 3, 3, 2, 2, [1, 1, 1, 1], 1),
            (7, 35, 3, 3, 1, 2, [2, 1, 0, 2], 1), (10, 47, 3, 3, 2, 1, [1, 2, 2, 1], 1), (9, 64, 3, 3, 3, 2, [1, 1, 1, 1], 1),
            (12, 36, 5, 5, 1, 1, [2, 2, 2, 2], 1), (6, 50, 1, 7, 1, 2, [0, 3, 0, 3], 1), (13, 20, 3, 1, 1, 1, [1, 0, 1, 0], 2),
            (3, 18, 3, 3, 1, 1, [3, 4, 3, 4], 1), (2, 31, 3, 3, 1, 2, [2, 5, 2, 5], 1), (28, 28, 3, 3, 1, 1, [1, 1, 1, 1], 1),
        ]
        for (index, (h, w, kh, kw, sh, sw, pads, dil)) in cases.enumerated() {
            let c = 3
            var geom = try WindowGeometry(input: [h, w], kernel: [kh, kw], strides: [sh, sw], dilations: [dil, 1],
                                          pads: [pads[0], pads[1], pads[2], pads[3]], op: "test")
            try geom.resolveConv(autoPad: .notSet, op: "test")
            let (oh, ow) = (geom.output[1], geom.output[2])
            var x: [Float] = (0..<c * h * w).map { i in i % 13 == 5 ? -0.0 : rng.float(-3...3) }
            var taps: [Float] = (0..<c * kh * kw).map { _ in rng.float(-1...1) }
            if index % 3 == 0 {
                taps[0] = .infinity  // channel 0's first tap, padded in the first row and column
                taps[kh * kw + kh * kw - 1] = -.infinity  // channel 1's last tap
                x[2 * h * w + w + 1] = .nan  // channel 2
            }
            let tapLoop = tapLoopReference(x: x, taps: taps, channels: c, plane: (h, w), kernel: (kh, kw), geom)
            var s = mpq_conv2d_shape(channels: Int32(c), height: Int32(h), width: Int32(w), kernel_h: Int32(kh), kernel_w: Int32(kw),
                                     pad_top: Int32(pads[0]), pad_left: Int32(pads[1]), pad_bottom: Int32(pads[2]),
                                     pad_right: Int32(pads[3]), stride_h: Int32(sh), stride_w: Int32(sw), dilation_h: Int32(dil),
                                     dilation_w: 1, group: Int32(c))
            for p in paths {
                var y = [Float](repeating: .nan, count: c * oh * ow)
                XCTAssertEqual(mpq_depthwise_f32(p, x, &s, taps, &y), 0)
                XCTAssertEqual(y.map(\.bitPattern), tapLoop.map(\.bitPattern),
                               "path \(p.rawValue), \(h)x\(w) k\(kh)x\(kw) /\(sh),\(sw) pads \(pads) dil \(dil)")
            }
        }
    }

    /// The Swift tap loop (`ConvOps.depthwisePlane`) over every channel: the reference the C
    /// kernels must equal bit for bit.
    private func tapLoopReference(x: [Float], taps: [Float], channels c: Int, plane: (Int, Int), kernel: (Int, Int),
                                  _ geom: WindowGeometry) -> [Float] {
        let (h, w) = plane, (kh, kw) = kernel
        let (oh, ow) = (geom.output[1], geom.output[2])
        var out = [Float](repeating: 0, count: c * oh * ow)
        x.withUnsafeBufferPointer { px in taps.withUnsafeBufferPointer { pw in out.withUnsafeMutableBufferPointer { py in
            for ch in 0..<c {
                ConvOps.depthwisePlane(src: px.baseAddress! + ch * h * w, weights: pw.baseAddress! + ch * kh * kw,
                                       dst: py.baseAddress! + ch * oh * ow, geom)
            }
        }}}
        return out
    }
}
