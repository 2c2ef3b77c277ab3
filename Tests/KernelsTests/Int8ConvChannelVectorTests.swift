import CKernels
import XCTest

/// The channel-vector INT8 Conv (qgemm_conv_cv.c: output channels in the vector lanes, a padded
/// channels-last copy of the input, no im2col; what mpq_qconv2d_u8s8 runs on small planes on the
/// VNNI path) against the whole-image scalar im2col + reference GEMM, byte for byte: its scalar
/// form (MPQ_PATH_REFERENCE) and its VNNI tiles, and the driver's choice of it.
final class Int8ConvChannelVectorTests: XCTestCase {
    /// Random shapes at every size the path takes: strides 1-3 (both ways apart), kernels 1x1 to
    /// 5x5 and non-square, dilation 1-2, pads 0-3 asymmetric, odd widths, pixel counts that are
    /// not whole 6-pixel tiles or 16-pixel store blocks, output channels not a multiple of 16 or
    /// 64 (1 to 100: partial panels and panel groups), channels 4 to 80 per group (not a multiple
    /// of 16: partial transposes in the copy), groups; float, requantized float and codes; 1-3
    /// threads. Where the CPU has no VNNI the VNNI form must refuse (-1) and the scalar form still
    /// runs.
    func testChannelVectorConvMatchesReference() {
        var rng = Int8TestRNG(seed: 1107)
        let hasVNNI = mpq_kernel_path_available(MPQ_PATH_VNNI) != 0
        var tried = 0
        for ci in 0..<40 {
            let (kh, kw) = [(3, 3), (1, 1), (5, 3), (2, 2), (3, 3), (1, 3), (3, 3), (4, 5)][ci % 8]
            let group = ci % 5 == 4 ? 2 : 1, cg = 4 * rng.int(1...20), c = cg * group
            let h = rng.int(1...16), w = rng.int(1...16), dil = ci % 6 == 5 ? 2 : 1
            let sh = [1, 2, 1, 3][ci % 4], sw = [1, 2, 2, 1][(ci / 4) % 4]
            let pt = rng.int(0...3), pl = rng.int(0...3), pb = rng.int(0...3), pr = rng.int(0...3)
            var s = mpq_conv2d_shape(channels: Int32(c), height: Int32(h), width: Int32(w), kernel_h: Int32(kh), kernel_w: Int32(kw),
                                     pad_top: Int32(pt), pad_left: Int32(pl), pad_bottom: Int32(pb), pad_right: Int32(pr),
                                     stride_h: Int32(sh), stride_w: Int32(sw), dilation_h: Int32(dil), dilation_w: Int32(dil),
                                     group: Int32(group))
            let oh = Int(mpq_conv2d_out_h(&s)), ow = Int(mpq_conv2d_out_w(&s))
            guard oh > 0, ow > 0 else { continue }
            let pixels = oh * ow, coutG = [16, 29, 6, 1, 64, 100, 70, 33][ci % 8]
            let khwc = kh * kw > 1 || ci % 2 == 0  // a 1x1 kernel is taken with either flag
            let zx = UInt8(rng.int(0...255)), zy = UInt8(rng.int(0...255))
            let x = rng.u8s(c * h * w)
            for grp in 0..<group {
                let ref = Int8ConvGroupReference(rng: &rng, x: x, shape: s, group: grp,
                                                 channelsPerGroup: cg, kh: kh, kw: kw, coutG: coutG, zx: zx, zy: zy)
                let packed = ref.packed
                for mode in 0..<3 {  // float, float requantized, codes
                    ref.withMode(mode) { ep, refF, refC in
                        for (path, threads) in [(MPQ_PATH_REFERENCE, Int32(1)), (MPQ_PATH_VNNI, 1), (MPQ_PATH_VNNI, 2), (MPQ_PATH_VNNI, 3)] {
                            var gotF = [Float](repeating: .nan, count: mode == 2 ? 0 : coutG * pixels)
                            var gotC = [UInt8](repeating: 0xEE, count: mode == 2 ? coutG * pixels : 0)
                            let rc = gotF.withUnsafeMutableBufferPointer { fp in gotC.withUnsafeMutableBufferPointer { cp in
                                mpq_qconv2d_u8s8_cv(path, x, &s, Int32(grp), khwc ? 1 : 0, zx, packed, &ep,
                                                    mode == 2 ? nil : fp.baseAddress, mode == 2 ? cp.baseAddress : nil, zy, threads)
                            } }
                            let what = "cv case \(ci) \(s) n \(coutG) group \(grp) mode \(mode) \(int8PathName(path)) threads \(threads)"
                            if path == MPQ_PATH_VNNI && !hasVNNI { XCTAssertEqual(rc, -1, what); continue }
                            XCTAssertEqual(rc, 0, what)
                            if mode == 2 { XCTAssertEqual(gotC, refC, what) }
                            else { XCTAssertEqual(gotF.map(\.bitPattern), refF.map(\.bitPattern), what) }
                        }
                    }
                }
                tried += 1
            }
        }
        XCTAssertGreaterThan(tried, 30)
        print("int8 channel-vector conv: \(hasVNNI ? "scalar and VNNI forms" : "scalar form (no VNNI)") checked on \(tried) cases")
        // Shapes it does not take: C / group not a multiple of 4 (K % 4 != 0), (c, kh, kw) weights
        // of a kernel larger than 1x1.
        for (c, khwc) in [(18, 1), (6, 1), (16, 0)] {
            var s = mpq_conv2d_shape(channels: Int32(c), height: 7, width: 7, kernel_h: 3, kernel_w: 3,
                                     pad_top: 1, pad_left: 1, pad_bottom: 1, pad_right: 1, stride_h: 1, stride_w: 1,
                                     dilation_h: 1, dilation_w: 1, group: 1)
            XCTAssertEqual(mpq_qconv2d_cv_applies(&s, Int32(khwc)), 0, "\(c) \(khwc)")
            let packed = int8Pack([Int8](repeating: 1, count: 8 * c * 9), n: 8, k: c * 9), scales = [Float](repeating: 1, count: 8)
            var codes = [UInt8](repeating: 7, count: 8 * 49)
            scales.withUnsafeBufferPointer { sp in
                var ep = mpq_epilogue(a_zero_point: 0, a_scale: 1, b_scale: sp.baseAddress, bias: nil, clamp_lo: 0, clamp_hi: 255,
                                      bias_i32: nil, out_scale: 1)
                for path in [MPQ_PATH_REFERENCE, MPQ_PATH_VNNI] {
                    XCTAssertEqual(mpq_qconv2d_u8s8_cv(path, [UInt8](repeating: 1, count: c * 49), &s, 0, Int32(khwc), 0,
                                                       packed, &ep, nil, &codes, 0, 1), -1, "\(c) \(khwc)")
                }
            }
            XCTAssertEqual(codes, [UInt8](repeating: 7, count: 8 * 49))
        }
    }

    /// The planes the driver gives the tiles since s33 (qgemm_conv.c cv_wide: up to 56x56 with 32
    /// or more input channels): ResNet-18's 64-channel 56x56 3x3 and its stride-2 form, a 28x28
    /// one with an odd output width, against the scalar form, floats and codes, 1-3 threads (the
    /// random cases above stop at 16x16 inputs).
    func testWidePlanesMatchReference() throws {
        try XCTSkipIf(mpq_kernel_path_available(MPQ_PATH_VNNI) == 0, "no VNNI on this CPU")
        var rng = Int8TestRNG(seed: 3301)
        for (c, h, w, stride, coutG) in [(64, 56, 56, 1, 64), (64, 56, 56, 2, 128), (32, 28, 27, 1, 48)] {
            var s = mpq_conv2d_shape(channels: Int32(c), height: Int32(h), width: Int32(w), kernel_h: 3, kernel_w: 3,
                                     pad_top: 1, pad_left: 1, pad_bottom: 1, pad_right: 1, stride_h: Int32(stride),
                                     stride_w: Int32(stride), dilation_h: 1, dilation_w: 1, group: 1)
            let pixels = Int(mpq_conv2d_out_h(&s)) * Int(mpq_conv2d_out_w(&s))
            let zx = UInt8(rng.int(0...255)), zy = UInt8(rng.int(0...255)), x = rng.u8s(c * h * w)
            let ref = Int8ConvGroupReference(rng: &rng, x: x, shape: s, group: 0, channelsPerGroup: c, kh: 3, kw: 3,
                                             coutG: coutG, zx: zx, zy: zy)
            XCTAssertEqual(mpq_qconv2d_engine(MPQ_PATH_VNNI, &s, Int32(coutG), 1) == MPQ_QCONV_CV,
                           mpq_qgemm_amx_mode() == 0 && ProcessInfo.processInfo.environment["MPQ_INT8_CONV_CV_WIDE"] == nil,
                           "\(s): the driver's choice")
            for mode in [0, 2] {  // floats, codes
                ref.withMode(mode) { ep, refF, refC in
                    for threads: Int32 in [1, 2, 3] {
                        var gotF = [Float](repeating: .nan, count: mode == 2 ? 0 : coutG * pixels)
                        var gotC = [UInt8](repeating: 0xEE, count: mode == 2 ? coutG * pixels : 0)
                        let rc = gotF.withUnsafeMutableBufferPointer { fp in gotC.withUnsafeMutableBufferPointer { cp in
                            mpq_qconv2d_u8s8_cv(MPQ_PATH_VNNI, x, &s, 0, 1, zx, ref.packed, &ep,
                                                mode == 2 ? nil : fp.baseAddress, mode == 2 ? cp.baseAddress : nil, zy, threads)
                        } }
                        let what = "wide cv \(s) n \(coutG) mode \(mode) threads \(threads)"
                        XCTAssertEqual(rc, 0, what)
                        if mode == 2 { XCTAssertEqual(gotC, refC, what) }
                        else { XCTAssertEqual(gotF.map(\.bitPattern), refF.map(\.bitPattern), what) }
                    }
                }
            }
        }
    }

    /// The driver picks the channel-vector tiles on small planes (VNNI) and says so; a 14x14
    /// pointwise conv keeps the pointwise kernel, a 28x28 3x3 conv the implicit one.
    func testEngineChoice() throws {
        try XCTSkipIf(mpq_kernel_path_available(MPQ_PATH_VNNI) == 0, "no VNNI on this CPU")
        try XCTSkipIf(ProcessInfo.processInfo.environment["MPQ_INT8_CONV_CV_PIXELS"] != nil ||
                      ProcessInfo.processInfo.environment["MPQ_INT8_CONV_CV_WIDE"] != nil, "threshold overridden")
        func shape(_ c: Int, _ hw: Int, _ k: Int, _ stride: Int) -> mpq_conv2d_shape {
            let p = Int32(k / 2)
            return mpq_conv2d_shape(channels: Int32(c), height: Int32(hw), width: Int32(hw), kernel_h: Int32(k), kernel_w: Int32(k),
                                    pad_top: p, pad_left: p, pad_bottom: p, pad_right: p, stride_h: Int32(stride),
                                    stride_w: Int32(stride), dilation_h: 1, dilation_w: 1, group: 1)
        }
        let saved = mpq_qgemm_amx_mode()
        XCTAssertEqual(mpq_set_qgemm_amx(0), 0)
        defer { _ = mpq_set_qgemm_amx(saved == 0 ? -1 : saved) }
        for (c, hw, k, stride, want) in [(512, 7, 3, 1, MPQ_QCONV_CV), (256, 14, 3, 2, MPQ_QCONV_CV), (256, 14, 3, 1, MPQ_QCONV_CV),
                                         (960, 7, 1, 1, MPQ_QCONV_CV), (64, 14, 1, 1, MPQ_QCONV_POINTWISE),
                                         (128, 28, 3, 1, MPQ_QCONV_CV), (16, 56, 3, 1, MPQ_QCONV_IMPLICIT),
                                         (64, 64, 3, 1, MPQ_QCONV_IMPLICIT)] {
            var s = shape(c, hw, k, stride)
            let e = mpq_qconv2d_engine(MPQ_PATH_VNNI, &s, 64, k > 1 ? 1 : 0)
            XCTAssertEqual(e, want, "\(c)x\(hw)x\(hw) \(k)x\(k)/\(stride)")
        }
        XCTAssertEqual(String(cString: mpq_qconv2d_engine_name(MPQ_PATH_VNNI, MPQ_QCONV_CV)), "cv+vnni")
    }
}
