import CKernels
import XCTest
import ONNX
@testable import Kernels

/// s12-dwlanes: `mpq_depthwise3x3_f32_lanes` (16 channels in the vector lanes, padded taps
/// added as fma(w, 0, acc), the sum started at the first product, bias and clamp fused) must give
/// the bits of the scalar reference (`mpq_depthwise_f32` on the reference path, taps inside the
/// input from +0 in (kh, kw) order by fused multiply-adds, + 0, then `mpq_conv_epilogue_f32`'s
/// bias-if-not-0 and clamp)
/// on every geometry it takes: channel counts that are not multiples of 16 (a partial last
/// block), planes from 1x1 (every tap but one padded) to 60x60, strides 1 and 2 across and
/// 1-3 down, asymmetric pads up to 2, zero and -0 biases (the case where the reference skips the
/// add), Relu, Relu6 and an odd Clip, inputs with -0, NaN and infinities, tiny inputs whose
/// products underflow (s13: signed zero sums), one thread and two (row strips). On the AVX2
/// path the entry runs the 8-lane form (depthwise_f32_lanes_avx2.c, s21) on small planes and
/// the padded-plane kernel (depthwise_f32_padded_avx2.c, s18) on large ones: every case runs
/// on every path the CPU has, and on the AVX2 path with each of its two kernels taking every
/// geometry (`mpq_set_fp32_depthwise_lanes_pixels`).
final class DepthwiseF32LanesTests: XCTestCase {
    private var lanesAvailable: Bool { mpq_kernel_path_available(MPQ_PATH_AVX2) != 0 }
    private var paths: [mpq_kernel_path] { [MPQ_PATH_VNNI, MPQ_PATH_AVX2].filter { mpq_kernel_path_available($0) != 0 } }

    /// Runs `body` once with the AVX2 path's padded-plane kernel taking every geometry and once
    /// with its 8-lane kernel taking every geometry, then restores the default.
    private func eachAVX2Kernel(_ body: (String) throws -> Void) rethrows {
        for (label, pixels) in [("padded-plane kernel", 0), ("8-lane kernel", 1 << 30)] {
            let before = mpq_set_fp32_depthwise_lanes_pixels(pixels)
            defer { _ = mpq_set_fp32_depthwise_lanes_pixels(before) }
            try body(label)
        }
    }

    /// Reference conv then reference epilogue: the bits the lanes kernel must give.
    private func reference(_ x: [Float], _ s: mpq_conv2d_shape, _ w: [Float], _ bias: [Float]?, _ act: mpq_activation,
                           _ lo: Float, _ hi: Float) -> [Float] {
        var s = s
        let count = Int(s.channels) * Int(mpq_conv2d_out_h(&s)) * Int(mpq_conv2d_out_w(&s))
        let plane = Int(mpq_conv2d_out_h(&s)) * Int(mpq_conv2d_out_w(&s))
        var y = [Float](repeating: .nan, count: count)
        XCTAssertEqual(mpq_depthwise_f32(MPQ_PATH_REFERENCE, x, &s, w, &y), 0)
        y.withUnsafeMutableBufferPointer { py in
            if let bias {
                bias.withUnsafeBufferPointer { pb in
                    mpq_conv_epilogue_f32(MPQ_PATH_REFERENCE, py.baseAddress!, Int(s.channels), plane, plane, pb.baseAddress, act, lo, hi)
                }
            } else {
                mpq_conv_epilogue_f32(MPQ_PATH_REFERENCE, py.baseAddress!, Int(s.channels), plane, plane, nil, act, lo, hi)
            }
        }
        return y
    }

    private func lanes(_ x: [Float], _ s: mpq_conv2d_shape, _ w: [Float], _ bias: [Float]?, _ act: mpq_activation,
                       _ lo: Float, _ hi: Float, threads: Int, count: Int, path: mpq_kernel_path = MPQ_PATH_AUTO) -> (rc: Int32, y: [Float]) {
        var s = s
        var y = [Float](repeating: .nan, count: count)
        let rc = bias.map { b in mpq_depthwise3x3_f32_lanes(path, x, &s, w, b, act, lo, hi, &y, Int32(threads)) }
            ?? mpq_depthwise3x3_f32_lanes(path, x, &s, w, nil, act, lo, hi, &y, Int32(threads))
        return (rc, y)
    }

    func testLanesKernelEqualsScalarReferenceBitForBit() throws {
        eachAVX2Kernel { lanesKernelEqualsScalarReference(kernel: $0) }
    }

    private func lanesKernelEqualsScalarReference(kernel: String) {
        var rng = TestRNG(seed: 1212)
        var cases = 0, partialBlocks = 0, stride2 = 0, twoThreads = 0
        // (act, lo, hi): none, Relu, Relu6, a Clip whose bounds are not 0.
        let acts: [(mpq_activation, Float, Float)] = [(MPQ_ACT_NONE, 0, 0), (MPQ_ACT_CLAMP, 0, .infinity),
                                                      (MPQ_ACT_CLAMP, 0, 6), (MPQ_ACT_CLAMP, -0.5, 0.25)]
        for k in 0..<120 {
            let c = k < 4 ? [16, 17, 31, 80][k] : rng.int(16...80)
            let h = k % 10 == 0 ? 1 : rng.int(1...60), w = k % 10 == 0 ? 1 : rng.int(1...60)
            let sh = rng.int(1...3), sw = rng.int(1...2)  // stride 3 down: the ring skips input rows
            let pads = (0..<4).map { _ in rng.int(0...2) }
            var s = mpq_conv2d_shape(channels: Int32(c), height: Int32(h), width: Int32(w), kernel_h: 3, kernel_w: 3,
                                     pad_top: Int32(pads[0]), pad_left: Int32(pads[1]), pad_bottom: Int32(pads[2]),
                                     pad_right: Int32(pads[3]), stride_h: Int32(sh), stride_w: Int32(sw),
                                     dilation_h: 1, dilation_w: 1, group: Int32(c))
            let oh = Int(mpq_conv2d_out_h(&s)), ow = Int(mpq_conv2d_out_w(&s))
            guard oh > 0, ow > 0 else { continue }
            // Every fourth case tiny (s13): products ~1e-44 underflow, so fused sums end at -0,
            // which the reference's final + 0 turns into +0 as the lanes kernel's last add does.
            let scale: Float = k % 4 == 3 ? 1e-22 : 1
            let x: [Float] = (0..<c * h * w).map { i in
                switch rng.int(0...199) {
                case 0: return -0.0
                case 1: return .nan
                case 2: return rng.int(0...1) == 0 ? .infinity : -.infinity
                default: return rng.float(-3...3) * scale
                }
            }
            let wts: [Float] = (0..<c * 9).map { _ in rng.int(0...19) == 0 ? -0.0 : rng.float(-1...1) * scale }
            let bias: [Float]? = rng.int(0...2) == 0 ? nil : (0..<c).map { _ in
                switch rng.int(0...5) { case 0: return 0; case 1: return -0.0; default: return rng.float(-1...1) }
            }
            let (act, lo, hi) = rng.pick(acts)
            let threads = rng.int(1...2)
            let ref = reference(x, s, wts, bias, act, lo, hi)
            if !lanesAvailable {
                let got = lanes(x, s, wts, bias, act, lo, hi, threads: threads, count: c * oh * ow)
                XCTAssertEqual(got.rc, -1, "no AVX2: the kernel must decline")
                continue
            }
            for path in paths {
                let got = lanes(x, s, wts, bias, act, lo, hi, threads: threads, count: c * oh * ow, path: path)
                let what = "\(kernel), path \(path.rawValue) c \(c) \(h)x\(w) stride (\(sh), \(sw)) pads \(pads) bias \(bias != nil) act \(act.rawValue) [\(lo), \(hi)] threads \(threads)"
                XCTAssertEqual(got.rc, 0, what)
                if let i = got.y.indices.first(where: { got.y[$0].bitPattern != ref[$0].bitPattern }) {
                    XCTFail("\(what): output \(i) \(got.y[i]) != reference \(ref[i])")
                }
            }
            cases += 1
            partialBlocks += c % 16 != 0 ? 1 : 0
            stride2 += sw == 2 ? 1 : 0
            twoThreads += threads == 2 ? 1 : 0
        }
        if lanesAvailable {
            XCTAssertGreaterThan(cases, 100)
            XCTAssertGreaterThan(partialBlocks, 50)
            XCTAssertGreaterThan(stride2, 30)
            XCTAssertGreaterThan(twoThreads, 30)
        }
    }

    /// Whatever it cannot match bit for bit it declines, writing nothing: a non-finite weight
    /// (w * 0 on a padded tap would be NaN where the reference skips the tap), a SiLU, Clip
    /// bounds out of order, kernels other than undilated 3x3, stride 3 across.
    func testDeclinesWhatItCannotMatch() throws {
        let c = 16, h = 9, w = 9
        let x = [Float](repeating: 1, count: c * h * w)
        func shape(k: Int32 = 3, sw: Int32 = 1, dil: Int32 = 1) -> mpq_conv2d_shape {
            mpq_conv2d_shape(channels: Int32(c), height: Int32(h), width: Int32(w), kernel_h: k, kernel_w: k, pad_top: 1,
                             pad_left: 1, pad_bottom: 1, pad_right: 1, stride_h: 1, stride_w: sw, dilation_h: dil,
                             dilation_w: dil, group: Int32(c))
        }
        var finite = [Float](repeating: 0.5, count: c * 25)
        let cases: [(String, mpq_conv2d_shape, [Float], mpq_activation, Float, Float)] = [
            ("infinite weight", shape(), finite.enumerated().map { $0.offset == 40 ? .infinity : $0.element }, MPQ_ACT_NONE, 0, 0),
            ("NaN weight", shape(), finite.enumerated().map { $0.offset == 3 ? .nan : $0.element }, MPQ_ACT_NONE, 0, 0),
            ("SiLU", shape(), finite, MPQ_ACT_SILU, 0, 0),
            ("lo > hi", shape(), finite, MPQ_ACT_CLAMP, 1, 0),
            ("NaN bound", shape(), finite, MPQ_ACT_CLAMP, .nan, 6),
            ("5x5", shape(k: 5), finite, MPQ_ACT_NONE, 0, 0),
            ("dilation 2", shape(dil: 2), finite, MPQ_ACT_NONE, 0, 0),
            ("stride 3 across", shape(sw: 3), finite, MPQ_ACT_NONE, 0, 0),
        ]
        for (what, s0, wts, act, lo, hi) in cases {
            for path in paths + [MPQ_PATH_AUTO] {
                var s = s0
                var y = [Float](repeating: 42, count: c * h * w)
                XCTAssertEqual(mpq_depthwise3x3_f32_lanes(path, x, &s, wts, nil, act, lo, hi, &y, 1), -1, "\(what), path \(path.rawValue)")
                XCTAssertTrue(y.allSatisfy { $0 == 42 }, "\(what), path \(path.rawValue): nothing written")
            }
        }
        finite[0] = 0.25
        var s = shape()
        var y = [Float](repeating: 42, count: c * h * w)
        XCTAssertEqual(mpq_depthwise3x3_f32_lanes(MPQ_PATH_REFERENCE, x, &s, finite, nil, MPQ_ACT_NONE, 0, 0, &y, 1), -1,
                       "the reference path has no lanes kernel")
        if lanesAvailable {
            XCTAssertEqual(mpq_depthwise3x3_f32_lanes(MPQ_PATH_AUTO, x, &s, finite, nil, MPQ_ACT_NONE, 0, 0, &y, 1), 0)
        }
    }

    /// Through `ConvOps.Conv` (the op the runtime calls): MobileNetV2-like layers at batch 1
    /// (split into row strips over the pool) and batch 3 (one image per task), with a bias and
    /// Relu6 or no epilogue, equal the reference conv + epilogue bit for bit.
    func testConvOpEqualsReferenceBitForBit() throws {
        try eachAVX2Kernel { try convOpEqualsReference(kernel: $0) }
    }

    private func convOpEqualsReference(kernel: String) throws {
        var rng = TestRNG(seed: 77)
        let cases: [(n: Int, c: Int, h: Int, stride: Int, pads: [Int])] = [
            (1, 32, 40, 1, [1, 1, 1, 1]), (1, 96, 30, 2, [0, 0, 1, 1]), (1, 144, 14, 1, [1, 1, 1, 1]), (1, 40, 7, 1, [1, 1, 1, 1]),
            (3, 48, 20, 2, [1, 1, 1, 1]), (3, 24, 9, 1, [1, 1, 1, 1]),
        ]
        for (n, c, h, stride, pads) in cases {
            let xs: [Float] = (0..<n * c * h * h).map { _ in rng.float(-2...2) }
            let ws: [Float] = (0..<c * 9).map { _ in rng.float(-1...1) }
            let bs: [Float] = (0..<c).map { i in i % 7 == 0 ? 0 : rng.float(-1...1) }
            let x = Tensor(shape: [n, c, h, h], floats: xs), w = Tensor(shape: [c, 1, 3, 3], floats: ws), b = Tensor(shape: [c], floats: bs)
            var s = mpq_conv2d_shape(channels: Int32(c), height: Int32(h), width: Int32(h), kernel_h: 3, kernel_w: 3,
                                     pad_top: Int32(pads[0]), pad_left: Int32(pads[1]), pad_bottom: Int32(pads[2]),
                                     pad_right: Int32(pads[3]), stride_h: Int32(stride), stride_w: Int32(stride),
                                     dilation_h: 1, dilation_w: 1, group: Int32(c))
            let oh = Int(mpq_conv2d_out_h(&s)), ow = Int(mpq_conv2d_out_w(&s)), img = c * h * h
            for (ep, act, lo, hi) in [(ConvEpilogue.clamp(lo: 0, hi: 6), MPQ_ACT_CLAMP, Float(0), Float(6)), (.none, MPQ_ACT_NONE, 0, 0)] {
                let y = try ConvOps.Conv(x: x, w: w, b: b, autoPad: "NOTSET", dilations: nil, group: c, kernelShape: nil,
                                         pads: pads, strides: [stride, stride], epilogue: ep)
                XCTAssertEqual(y.shape, [n, c, oh, ow])
                var want: [Float] = []
                for i in 0..<n { want += reference(Array(xs[i * img..<(i + 1) * img]), s, ws, bs, act, lo, hi) }
                XCTAssertTrue(y.floats.elementsEqual(want, by: { $0.bitPattern == $1.bitPattern }),
                              "\(kernel): n \(n) c \(c) \(h)x\(h) /\(stride) \(ep): Conv != reference")
            }
        }
    }
}
