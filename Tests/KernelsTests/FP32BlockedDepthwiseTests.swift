import CKernels
import XCTest
import ONNX
@testable import Kernels

/// The FP32 depthwise 3x3 on channel-blocked images (`mpq_depthwise3x3_f32_blocked`,
/// depthwise_f32_blocked.c) against the NCHW reference (`mpq_depthwise_f32` on the reference
/// path, then `mpq_conv_epilogue_f32`) bit for bit, and MobileNet-shaped chains running their
/// stem, 1x1 and depthwise Convs blocked with the bytes of the layout off.
final class FP32BlockedDepthwiseTests: XCTestCase {
    struct Case: CustomStringConvertible {
        var images = 1, c = 1, h = 1, w = 1
        var stride = (1, 1), pads = (1, 1, 1, 1)  // top, left, bottom, right
        var shape: mpq_conv2d_shape {
            mpq_conv2d_shape(channels: Int32(c), height: Int32(h), width: Int32(w), kernel_h: 3, kernel_w: 3,
                             pad_top: Int32(pads.0), pad_left: Int32(pads.1), pad_bottom: Int32(pads.2), pad_right: Int32(pads.3),
                             stride_h: Int32(stride.0), stride_w: Int32(stride.1), dilation_h: 1, dilation_w: 1, group: Int32(c))
        }
        var description: String { "N\(images) C\(c) \(h)x\(w) stride \(stride) pads \(pads)" }
    }

    /// MobileNetV2's shapes (stride 1 and 2, 112-7 planes scaled down), planes narrower than
    /// the kernel, no padding, asymmetric pads (TF "SAME" stride 2), a vertical stride of 3,
    /// channel counts around the 16-lane block, several images.
    static let cases: [Case] = [
        Case(c: 16, h: 20, w: 20), Case(c: 24, h: 14, w: 14, stride: (2, 2)), Case(c: 35, h: 7, w: 7),
        Case(images: 3, c: 5, h: 9, w: 11), Case(c: 17, h: 1, w: 1), Case(c: 3, h: 2, w: 2), Case(c: 20, h: 3, w: 5, stride: (2, 2)),
        Case(c: 33, h: 12, w: 9, pads: (0, 0, 0, 0)), Case(c: 18, h: 13, w: 16, stride: (2, 2), pads: (0, 0, 1, 1)),
        Case(c: 9, h: 17, w: 6, stride: (3, 2), pads: (2, 0, 1, 2)), Case(images: 2, c: 48, h: 28, w: 28, stride: (1, 2)),
        Case(c: 7, h: 40, w: 3, pads: (1, 2, 1, 2)),
    ]

    var paths: [mpq_kernel_path] {
        [MPQ_PATH_REFERENCE] + [MPQ_PATH_AVX2, MPQ_PATH_VNNI].filter { mpq_kernel_path_available($0) != 0 }
    }

    /// NCHW reference: each image's planes by `mpq_depthwise_f32` (reference path), then the
    /// epilogue (reference path).
    static func reference(_ t: Case, x: [Float], w: [Float], bias: [Float]?, act: mpq_activation, lo: Float, hi: Float) -> [Float] {
        var s = t.shape
        let oh = Int(mpq_conv2d_out_h(&s)), ow = Int(mpq_conv2d_out_w(&s))
        var y = [Float](repeating: .nan, count: t.images * t.c * oh * ow)
        for i in 0..<t.images {
            x.withUnsafeBufferPointer { px in
                y.withUnsafeMutableBufferPointer { py in
                    let yi = py.baseAddress! + i * t.c * oh * ow
                    XCTAssertEqual(mpq_depthwise_f32(MPQ_PATH_REFERENCE, px.baseAddress! + i * t.c * t.h * t.w, &s, w, yi), 0)
                    mpq_conv_epilogue_f32(MPQ_PATH_REFERENCE, yi, t.c, oh * ow, oh * ow, bias, act, lo, hi)
                }
            }
        }
        return y
    }

    static func data(_ t: Case, seed: UInt64) -> (x: [Float], w: [Float], bias: [Float]) {
        var rng = TestRNG(seed: seed)
        var x = (0..<t.images * t.c * t.h * t.w).map { _ in rng.float(-2...2) }
        var w = (0..<t.c * 9).map { _ in rng.float(-1...1) }
        var bias = (0..<t.c).map { _ in rng.float(-0.5...0.5) }
        // Signed zeros and products that underflow (a -0 partial sum), zero biases.
        for i in stride(from: 0, to: x.count, by: 7) { x[i] = i % 2 == 0 ? -0.0 : 1e-30 }
        for i in stride(from: 0, to: w.count, by: 5) { w[i] = i % 3 == 0 ? -1e-20 : 0 }
        for i in stride(from: 0, to: bias.count, by: 3) { bias[i] = 0 }
        return (x, w, bias)
    }

    func testBlockedDepthwiseEqualsNCHWReference() {
        var compared = 0
        for (i, t) in Self.cases.enumerated() {
            var s = t.shape
            XCTAssertNotEqual(mpq_depthwise3x3_f32_blocked_applies(&s), 0, t.description)
            let oh = Int(mpq_conv2d_out_h(&s)), ow = Int(mpq_conv2d_out_w(&s))
            let (x, w, bias) = Self.data(t, seed: UInt64(3100 + i))
            let xb = FP32BlockedConvTests.blocked(x, images: t.images, c: t.c, h: t.h, w: t.w, path: MPQ_PATH_REFERENCE)
            let per = Int(mpq_blocked_image_floats(Int32(t.c), Int32(oh), Int32(ow)))
            for (act, lo, hi, b) in [(MPQ_ACT_NONE, Float(0), Float(0), nil as [Float]?), (MPQ_ACT_CLAMP, 0, 6, bias),
                                     (MPQ_ACT_CLAMP, 0.25, 0.5, bias), (MPQ_ACT_NONE, 0, 0, bias)] {
                let want = Self.reference(t, x: x, w: w, bias: b, act: act, lo: lo, hi: hi)
                for path in paths {
                    for threads: Int32 in [1, 2, 3] {
                        var yb = [Float](repeating: .nan, count: t.images * per)
                        XCTAssertEqual(mpq_depthwise3x3_f32_blocked(path, xb, Int32(t.images), &s, w, b, act, lo, hi, &yb, threads), 0)
                        for img in 0..<t.images {
                            for k in 0..<per where (k / (oh * ow * 16)) * 16 + k % 16 >= t.c && yb[img * per + k].bitPattern != 0 {
                                XCTFail("\(t): lane past C not +0 (act \(act.rawValue) lo \(lo))"); break
                            }
                        }
                        let got = FP32BlockedConvTests.unblocked(yb, images: t.images, c: t.c, h: oh, w: ow, path: MPQ_PATH_REFERENCE)
                        XCTAssertEqual(got.map(\.bitPattern), want.map(\.bitPattern),
                                       "\(t) act \(act.rawValue) \(lo)...\(hi) bias \(b != nil) path \(path.rawValue) threads \(threads)")
                        compared += 1
                    }
                }
            }
        }
        XCTAssertGreaterThan(compared, 100)
    }

    /// A weight that is not finite (w * 0 = NaN on a padding tap), SiLU, an empty clamp range,
    /// another kernel size or a grouped (not depthwise) shape: -1, nothing written.
    func testRefusals() {
        let t = Case(c: 4, h: 5, w: 5)
        var s = t.shape
        let (x, w, _) = Self.data(t, seed: 9)
        let xb = FP32BlockedConvTests.blocked(x, images: 1, c: 4, h: 5, w: 5, path: MPQ_PATH_REFERENCE)
        var y = [Float](repeating: 7, count: 16 * 25)
        var inf = w
        inf[3] = .infinity
        XCTAssertEqual(mpq_depthwise3x3_f32_blocked(MPQ_PATH_AUTO, xb, 1, &s, inf, nil, MPQ_ACT_NONE, 0, 0, &y, 1), -1)
        XCTAssertEqual(mpq_depthwise3x3_f32_blocked(MPQ_PATH_AUTO, xb, 1, &s, w, nil, MPQ_ACT_SILU, 0, 0, &y, 1), -1)
        XCTAssertEqual(mpq_depthwise3x3_f32_blocked(MPQ_PATH_AUTO, xb, 1, &s, w, nil, MPQ_ACT_CLAMP, 1, 0, &y, 1), -1)
        XCTAssertTrue(y.allSatisfy { $0 == 7 }, "a refused call writes nothing")
        var five = s
        five.kernel_h = 5; five.kernel_w = 5
        XCTAssertEqual(mpq_depthwise3x3_f32_blocked_applies(&five), 0)
        var grouped = s
        grouped.group = 2
        XCTAssertEqual(mpq_depthwise3x3_f32_blocked_applies(&grouped), 0)
        var dilated = s
        dilated.dilation_w = 2
        XCTAssertEqual(mpq_depthwise3x3_f32_blocked_applies(&dilated), 0)
    }

    /// MobileNet-shaped chains (stem, 1x1 expand + Clip, depthwise + Relu6, 1x1 project +
    /// residual Add, a stride-2 depthwise with BatchNormalization): the stem, 1x1 and depthwise
    /// Convs are chosen and run blocked, and the outputs are the bytes of the layout off, at
    /// batch 1 and 3, image chains on and off, with partial channel blocks (8 and 24, 20 and 40).
    func testMobileChainBlockedGivesNCHWBytes() throws {
        for (c, e) in [(8, 24), (20, 40)] {
            let graph = GraphPasses.optimize(ImageChainTests.mobileGraph(channels: c, expand: e))
            let session = try Session(graph: graph)
            let dws = graph.nodes.filter { $0.opType == "Conv" && $0.int("group", default: 1) > 1 }.count
            XCTAssertGreaterThanOrEqual(session.blockedConvs.count, 4, "C \(c) E \(e): Convs chosen to run blocked")
            XCTAssertTrue(session.blockedConvs.contains { session.plan[$0].int("group", default: 1) > 1 }, "a depthwise Conv chosen")
            XCTAssertGreaterThan(dws, 0)
            var rng = TestRNG(seed: UInt64(c))
            for (n, h, w) in [(1, 24, 20), (3, 17, 9), (1, 5, 4)] {
                let x = Tensor(shape: [n, 3, h, w], floats: (0..<n * 3 * h * w).map { _ in rng.float(-2...2) })
                for imageChains: Bool? in [true, false] {
                    session.fp32ImageChains = imageChains
                    session.runsBlockedConvs = false
                    let plain = try session.run(["x": x])
                    session.runsBlockedConvs = true
                    let before = session.blockedConvsRun
                    let blocked = try session.run(["x": x])
                    XCTAssertEqual(blocked["y"]?.floats.map(\.bitPattern), plain["y"]?.floats.map(\.bitPattern),
                                   "C \(c) E \(e) input \([n, 3, h, w]) image chains \(String(describing: imageChains))")
                    if BlockedChainTests.blockedRuns {
                        XCTAssertGreaterThanOrEqual(session.blockedConvsRun - before, 4, "C \(c) E \(e) \([n, h, w]): blocked Convs ran")
                    }
                }
            }
            session.fp32ImageChains = Session.fp32ImageChainsDefault
        }
    }
}
