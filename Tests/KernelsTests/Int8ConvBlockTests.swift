import CKernels
import XCTest

/// mpq_qconv2d_u8s8 (im2col a block of output rows at a time, blocks split over threads)
/// against the whole-image scalar reference im2col + reference GEMM: the same bytes for
/// every kernel path, thread count, column order, and float or codes output.
final class Int8ConvBlockTests: XCTestCase {
    private struct Case {
        var c, h, w, kh, kw, pad, sh, sw, dil, group: Int
        var shape: mpq_conv2d_shape {
            mpq_conv2d_shape(channels: Int32(c), height: Int32(h), width: Int32(w), kernel_h: Int32(kh), kernel_w: Int32(kw),
                             pad_top: Int32(pad), pad_left: Int32(pad), pad_bottom: Int32(pad), pad_right: Int32(pad),
                             stride_h: Int32(sh), stride_w: Int32(sw), dilation_h: Int32(dil), dilation_w: Int32(dil),
                             group: Int32(group))
        }
    }

    /// Several blocks (ResNet-like 3x3), a K % 4 tail (a 7x7 stem on 3 channels), strided
    /// and padded 1x1 (downsample), groups, odd widths whose rows never make 16 pixels.
    private let cases = [
        Case(c: 32, h: 42, w: 42, kh: 3, kw: 3, pad: 1, sh: 1, sw: 1, dil: 1, group: 1),
        Case(c: 3, h: 60, w: 60, kh: 7, kw: 7, pad: 3, sh: 2, sw: 2, dil: 1, group: 1),
        Case(c: 32, h: 40, w: 40, kh: 1, kw: 1, pad: 0, sh: 2, sw: 2, dil: 1, group: 1),
        Case(c: 48, h: 15, w: 31, kh: 1, kw: 1, pad: 1, sh: 1, sw: 2, dil: 1, group: 1),
        Case(c: 64, h: 64, w: 64, kh: 1, kw: 1, pad: 0, sh: 1, sw: 1, dil: 1, group: 1),
        Case(c: 32, h: 20, w: 20, kh: 3, kw: 3, pad: 1, sh: 1, sw: 1, dil: 1, group: 2),
        Case(c: 20, h: 37, w: 23, kh: 5, kw: 3, pad: 2, sh: 2, sw: 1, dil: 2, group: 1),
        Case(c: 5, h: 9, w: 7, kh: 3, kw: 2, pad: 1, sh: 1, sw: 3, dil: 1, group: 1),
        Case(c: 128, h: 7, w: 7, kh: 3, kw: 3, pad: 1, sh: 1, sw: 1, dil: 1, group: 1),
        // Wide planes with C / group a multiple of 4 (the VNNI implicit path from an output
        // width of 14): a ResNet-like 3x3, groups, dilation with an odd width, stride 2.
        Case(c: 16, h: 30, w: 57, kh: 3, kw: 3, pad: 1, sh: 1, sw: 1, dil: 1, group: 1),
        Case(c: 32, h: 9, w: 40, kh: 3, kw: 3, pad: 1, sh: 1, sw: 1, dil: 1, group: 2),
        Case(c: 20, h: 11, w: 33, kh: 3, kw: 5, pad: 2, sh: 1, sw: 1, dil: 2, group: 1),
        Case(c: 16, h: 21, w: 61, kh: 3, kw: 3, pad: 1, sh: 2, sw: 2, dil: 1, group: 1),
        // 1x1 stride 1 (the VNNI pointwise kernel from 128 pixels): channels not a multiple
        // of 4, pixels not of 16 or 64, output channels not of 6, groups.
        Case(c: 19, h: 13, w: 13, kh: 1, kw: 1, pad: 0, sh: 1, sw: 1, dil: 1, group: 1),
        Case(c: 24, h: 23, w: 29, kh: 1, kw: 1, pad: 0, sh: 1, sw: 1, dil: 1, group: 1),
        Case(c: 10, h: 16, w: 16, kh: 1, kw: 1, pad: 0, sh: 1, sw: 1, dil: 1, group: 2),
        Case(c: 144, h: 12, w: 11, kh: 1, kw: 1, pad: 0, sh: 1, sw: 1, dil: 1, group: 1),
        // Few-channel stems (the padded im2col, im2col_padded.c): the detector's 3x3/1 on 3
        // channels (K = 27, one pad column), MobileNetV2's 3x3/2, a 4-channel stem with no
        // pad column (K = 36), widths whose rows are not whole 16-pixel blocks, dilation,
        // two groups of 3, and K = 16 exactly (one block).
        Case(c: 3, h: 64, w: 64, kh: 3, kw: 3, pad: 1, sh: 1, sw: 1, dil: 1, group: 1),
        Case(c: 3, h: 57, w: 45, kh: 3, kw: 3, pad: 1, sh: 2, sw: 2, dil: 1, group: 1),
        Case(c: 4, h: 33, w: 37, kh: 3, kw: 3, pad: 1, sh: 1, sw: 1, dil: 1, group: 1),
        Case(c: 3, h: 30, w: 41, kh: 5, kw: 5, pad: 4, sh: 1, sw: 2, dil: 2, group: 1),
        Case(c: 6, h: 18, w: 35, kh: 3, kw: 3, pad: 1, sh: 2, sw: 1, dil: 1, group: 2),
        Case(c: 1, h: 20, w: 48, kh: 4, kw: 4, pad: 2, sh: 1, sw: 1, dil: 1, group: 1),
        // Small planes (the VNNI channel-vector tiles, qgemm_conv_cv.c, up to 196 output
        // pixels): ResNet's stride-2 3x3 into 7x7, a 14x13 plane, a 1x1 on 9x11, two groups.
        Case(c: 64, h: 14, w: 14, kh: 3, kw: 3, pad: 1, sh: 2, sw: 2, dil: 1, group: 1),
        Case(c: 36, h: 14, w: 13, kh: 3, kw: 3, pad: 1, sh: 1, sw: 1, dil: 1, group: 1),
        Case(c: 40, h: 9, w: 11, kh: 1, kw: 1, pad: 0, sh: 1, sw: 1, dil: 1, group: 1),
        Case(c: 64, h: 6, w: 5, kh: 3, kw: 3, pad: 1, sh: 1, sw: 1, dil: 1, group: 2),
    ]

    /// Stem-like shapes for the padded im2col alone, against the reference: every stride-1/2
    /// and dilation mix, pads 0 to 3, asymmetric pads, widths around 16-pixel blocks.
    func testPaddedIm2colMatchesReference() {
        var rng = Int8TestRNG(seed: 4242)
        var tried = 0
        for c in [1, 2, 3, 4, 7, 15] {
            for (kh, kw) in [(3, 3), (7, 7), (5, 3), (2, 8)] {
                for sw in [1, 2] {
                    let h = rng.int(5...40), w = rng.int(5...70), dil = rng.int(1...2), sh = rng.int(1...3)
                    var s = mpq_conv2d_shape(channels: Int32(c), height: Int32(h), width: Int32(w), kernel_h: Int32(kh), kernel_w: Int32(kw),
                                             pad_top: Int32(rng.int(0...3)), pad_left: Int32(rng.int(0...3)),
                                             pad_bottom: Int32(rng.int(0...3)), pad_right: Int32(rng.int(0...3)),
                                             stride_h: Int32(sh), stride_w: Int32(sw), dilation_h: Int32(dil), dilation_w: Int32(dil), group: 1)
                    let pixels = Int(mpq_conv2d_out_h(&s) * mpq_conv2d_out_w(&s)), k = c * kh * kw
                    let x = rng.u8s(c * h * w), zp = UInt8(rng.int(0...255))
                    var scratch = [UInt8](repeating: 0xAB, count: mpq_im2col_padded_bytes(&s))
                    var fast = [UInt8](repeating: 1, count: pixels * k), ref = [UInt8](repeating: 2, count: pixels * k)
                    let rc = mpq_im2col_u8_padded(x, &s, 0, zp, &fast, &scratch)
                    if pixels == 0 || k < 16 { XCTAssertEqual(rc, -1, "\(s)"); continue }
                    XCTAssertEqual(rc, 0, "\(s)")
                    mpq_im2col_u8_reference(x, &s, 0, zp, &ref)
                    XCTAssertEqual(fast, ref, "\(s)")
                    tried += 1
                }
            }
        }
        XCTAssertGreaterThan(tried, 30)
        // Shapes it does not take: 1x1, stride 3, 16+ channels.
        for (c, k, sw) in [(8, 1, 1), (3, 3, 3), (16, 3, 1)] {
            var s = mpq_conv2d_shape(channels: Int32(c), height: 20, width: 20, kernel_h: Int32(k), kernel_w: Int32(k),
                                     pad_top: 1, pad_left: 1, pad_bottom: 1, pad_right: 1, stride_h: 1, stride_w: Int32(sw),
                                     dilation_h: 1, dilation_w: 1, group: 1)
            var scratch = [UInt8](repeating: 0, count: mpq_im2col_padded_bytes(&s))
            var col = [UInt8](repeating: 0, count: 400 * c * k * k)
            XCTAssertEqual(mpq_im2col_u8_padded([UInt8](repeating: 0, count: c * 400), &s, 0, 0, &col, &scratch), -1, "\(c) \(k) \(sw)")
        }
    }

    func testBlockedConvMatchesReferenceIm2colGemm() {
        var rng = Int8TestRNG(seed: 1313)
        for (ci, t) in cases.enumerated() {
            var s = t.shape
            let oh = Int(mpq_conv2d_out_h(&s)), ow = Int(mpq_conv2d_out_w(&s)), pixels = oh * ow
            let cg = t.c / t.group, coutG = [16, 24, 7, 13][ci % 4]
            let khwc = cg >= 16 && t.kh * t.kw > 1
            let zx = UInt8(rng.int(0...255)), zy = UInt8(rng.int(0...255))
            let x = rng.u8s(t.c * t.h * t.w)
            for grp in 0..<t.group {
                let ref = Int8ConvGroupReference(rng: &rng, x: x, shape: s, group: grp,
                                                 channelsPerGroup: cg, kh: t.kh, kw: t.kw, coutG: coutG, zx: zx, zy: zy, khwc: khwc)
                let packed = ref.packed
                for mode in 0..<3 {  // float, float requantized, codes
                    ref.withMode(mode) { ep, refF, refC in
                        for path in int8AvailablePaths {
                            for threads: Int32 in [1, 2, 3] {
                                let (rc, gotF, gotC) = self.runDriver(path, x, &s, grp, khwc: khwc, zx, packed, &ep, zy, threads,
                                                                      outputs: coutG * pixels, codes: mode == 2)
                                let what = "\(int8PathName(path)) case \(ci) group \(grp) mode \(mode) threads \(threads)"
                                XCTAssertEqual(rc, 0, what)
                                if mode == 2 { XCTAssertEqual(gotC, refC, what) }
                                else { XCTAssertEqual(gotF.map(\.bitPattern), refF.map(\.bitPattern), what) }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Small planes with many output channels on AVX2 split over the threads by 16-column
    /// panels, each thread with its own whole im2col (qgemm_conv.c, panel_split_preferred):
    /// MobileNetV2-like 1x1 layers on 7x7 and 8x8, a 3x3 on 7x7 with K = 576, an odd panel
    /// count, 7- and 8-bit weights; every output kind, 1-3 threads, against the reference.
    func testSmallPlanesSplitByPanelsMatchReference() {
        var rng = Int8TestRNG(seed: 2525)
        let shapes: [(c: Int, h: Int, k: Int, n: Int)] = [(160, 7, 1, 192), (96, 8, 1, 136), (64, 7, 3, 128), (320, 7, 1, 160)]
        for (ci, t) in shapes.enumerated() {
            let pad = Int32(t.k / 2)
            var s = mpq_conv2d_shape(channels: Int32(t.c), height: Int32(t.h), width: Int32(t.h), kernel_h: Int32(t.k),
                                     kernel_w: Int32(t.k), pad_top: pad, pad_left: pad, pad_bottom: pad, pad_right: pad,
                                     stride_h: 1, stride_w: 1, dilation_h: 1, dilation_w: 1, group: 1)
            let pixels = Int(mpq_conv2d_out_h(&s) * mpq_conv2d_out_w(&s))
            let khwc = t.k > 1
            let zx = UInt8(rng.int(0...255)), zy = UInt8(rng.int(0...255))
            let x = rng.u8s(t.c * t.h * t.h)
            for seven in [true, false] {
                let ref = Int8ConvGroupReference(rng: &rng, x: x, shape: s, group: 0, channelsPerGroup: t.c, kh: t.k, kw: t.k,
                                                 coutG: t.n, zx: zx, zy: zy, khwc: khwc, sevenBit: seven)
                for mode in 0..<3 {
                    ref.withMode(mode) { ep, refF, refC in
                        for threads: Int32 in [1, 2, 3] {
                            let (rc, gotF, gotC) = self.runDriver(MPQ_PATH_AVX2, x, &s, 0, khwc: khwc, zx, ref.packed, &ep, zy, threads,
                                                                  outputs: t.n * pixels, codes: mode == 2)
                            let what = "case \(ci) 7-bit \(seven) mode \(mode) threads \(threads)"
                            XCTAssertEqual(rc, 0, what)
                            if mode == 2 { XCTAssertEqual(gotC, refC, what) }
                            else { XCTAssertEqual(gotF.map(\.bitPattern), refF.map(\.bitPattern), what) }
                        }
                    }
                }
            }
        }
    }

    /// mpq_qconv2d_u8s8 (the driver) on `path` into fresh float or code outputs (NaN / 0xEE
    /// filled): its return code and both outputs (the unused one empty).
    private func runDriver(_ path: mpq_kernel_path, _ x: [UInt8], _ s: inout mpq_conv2d_shape, _ grp: Int, khwc: Bool,
                           _ zx: UInt8, _ packed: [UInt8], _ ep: inout mpq_epilogue, _ zy: UInt8, _ threads: Int32,
                           outputs: Int, codes: Bool) -> (Int32, [Float], [UInt8]) {
        var gotF = [Float](repeating: .nan, count: codes ? 0 : outputs)
        var gotC = [UInt8](repeating: 0xEE, count: codes ? outputs : 0)
        let rc = gotF.withUnsafeMutableBufferPointer { fp in gotC.withUnsafeMutableBufferPointer { cp in
            mpq_qconv2d_u8s8(path, x, &s, Int32(grp), khwc ? 1 : 0, zx, packed, &ep,
                             codes ? nil : fp.baseAddress, codes ? cp.baseAddress : nil, zy, threads)
        } }
        return (rc, gotF, gotC)
    }

    /// mpq_qconv2d_u8s8_implicit on `path` ((kh, kw, c) weights) into fresh float or code outputs
    /// (NaN / 0xEE filled): its return code and both outputs (the unused one empty).
    private func runImplicit(_ path: mpq_kernel_path, _ x: [UInt8], _ s: inout mpq_conv2d_shape, _ grp: Int, _ zx: UInt8,
                             _ packed: [UInt8], _ ep: inout mpq_epilogue, _ zy: UInt8, _ threads: Int32,
                             outputs: Int, codes: Bool) -> (Int32, [Float], [UInt8]) {
        var gotF = [Float](repeating: .nan, count: codes ? 0 : outputs)
        var gotC = [UInt8](repeating: 0xEE, count: codes ? outputs : 0)
        let rc = gotF.withUnsafeMutableBufferPointer { fp in gotC.withUnsafeMutableBufferPointer { cp in
            mpq_qconv2d_u8s8_implicit(path, x, &s, Int32(grp), 1, zx, packed, &ep,
                                      codes ? nil : fp.baseAddress, codes ? cp.baseAddress : nil, zy, threads)
        } }
        return (rc, gotF, gotC)
    }

    /// The implicit-GEMM path alone (mpq_qconv2d_u8s8_implicit, VNNI: no im2col, vectors
    /// along padded-width pixels) at every width it takes, not only the wide ones the driver
    /// gives it: stride 1 and 2 (the phase split), odd and small widths (16 lanes across 2-4
    /// output rows), pads 0 to 3 and
    /// asymmetric, kernels 3x3 / 1x3 / 5x5 / 2x2, dilation, groups, output channels not a
    /// multiple of 6 or 16; float, requantized float and codes output; 1-3 threads. Bytes equal
    /// the scalar im2col + reference GEMM. Where the CPU has no VNNI the path resolves to AVX2
    /// and its implicit conv must give the same bytes; with neither it must refuse (-1).
    func testImplicitConvMatchesReference() {
        var rng = Int8TestRNG(seed: 2613)
        let hasVNNI = mpq_kernel_path_available(MPQ_PATH_VNNI) != 0
        let runs = hasVNNI || mpq_kernel_path_available(MPQ_PATH_AVX2) != 0
        var tried = 0
        for ci in 0..<18 {
            let (kh, kw) = [(3, 3), (1, 3), (5, 5), (2, 2), (3, 3), (3, 1), (3, 3)][ci % 7]
            let group = ci % 5 == 4 ? 2 : 1, cg = [4, 8, 16, 64, 12][ci % 5], c = cg * group
            let h = rng.int(1...20), w = rng.int(3...70), dil = ci % 6 == 5 ? 2 : 1, st = ci % 3 == 1 ? 2 : 1
            let pt = rng.int(0...3), pl = rng.int(0...3), pb = rng.int(0...3), pr = rng.int(0...3)
            var s = mpq_conv2d_shape(channels: Int32(c), height: Int32(h), width: Int32(w), kernel_h: Int32(kh), kernel_w: Int32(kw),
                                     pad_top: Int32(pt), pad_left: Int32(pl), pad_bottom: Int32(pb), pad_right: Int32(pr),
                                     stride_h: Int32(st), stride_w: Int32(st), dilation_h: Int32(dil), dilation_w: Int32(dil),
                                     group: Int32(group))
            let oh = Int(mpq_conv2d_out_h(&s)), ow = Int(mpq_conv2d_out_w(&s))
            guard oh > 0, ow > 0, (pl + w + pr + st - 1) / st >= 6 else { continue }
            let pixels = oh * ow, coutG = [16, 29, 6, 1, 64][ci % 5]
            let zx = UInt8(rng.int(0...255)), zy = UInt8(rng.int(0...255))
            let x = rng.u8s(c * h * w)
            for grp in 0..<group {
                let ref = Int8ConvGroupReference(rng: &rng, x: x, shape: s, group: grp,
                                                 channelsPerGroup: cg, kh: kh, kw: kw, coutG: coutG, zx: zx, zy: zy)
                let packed = ref.packed
                for mode in 0..<3 {  // float, float requantized, codes
                    ref.withMode(mode) { ep, refF, refC in
                        for threads: Int32 in [1, 2, 3] {
                            let (rc, gotF, gotC) = runImplicit(MPQ_PATH_VNNI, x, &s, grp, zx, packed, &ep, zy, threads,
                                                               outputs: coutG * pixels, codes: mode == 2)
                            let what = "implicit case \(ci) \(s) group \(grp) mode \(mode) threads \(threads)"
                            // Without VNNI the VNNI path resolves to AVX2, whose implicit conv
                            // runs too (s23); with neither it must refuse.
                            guard runs else { XCTAssertEqual(rc, -1, what); continue }
                            XCTAssertEqual(rc, 0, what)
                            if mode == 2 { XCTAssertEqual(gotC, refC, what) }
                            else { XCTAssertEqual(gotF.map(\.bitPattern), refF.map(\.bitPattern), what) }
                        }
                    }
                }
                tried += 1
            }
        }
        XCTAssertGreaterThan(tried, 8)
        print("int8 implicit conv: \(hasVNNI ? "VNNI path checked" : runs ? "no VNNI on this CPU, its AVX2 form checked" : "no VNNI or AVX2, refusal checked") on \(tried) cases")
        // Shapes it does not take: stride 3, C / group not a multiple of 4, (c, kh, kw) weights.
        for (c, sw, khwc) in [(16, 3, 1), (18, 1, 1), (16, 1, 0)] {
            var s = mpq_conv2d_shape(channels: Int32(c), height: 20, width: 20, kernel_h: 3, kernel_w: 3,
                                     pad_top: 1, pad_left: 1, pad_bottom: 1, pad_right: 1, stride_h: Int32(sw), stride_w: Int32(sw),
                                     dilation_h: 1, dilation_w: 1, group: 1)
            let packed = int8Pack([Int8](repeating: 1, count: 8 * c * 9), n: 8, k: c * 9), scales = [Float](repeating: 1, count: 8)
            var codes = [UInt8](repeating: 7, count: 8 * 400)
            scales.withUnsafeBufferPointer { sp in
                var ep = mpq_epilogue(a_zero_point: 0, a_scale: 1, b_scale: sp.baseAddress, bias: nil, clamp_lo: 0, clamp_hi: 255,
                                      bias_i32: nil, out_scale: 1)
                XCTAssertEqual(mpq_qconv2d_u8s8_implicit(MPQ_PATH_VNNI, [UInt8](repeating: 1, count: c * 400), &s, 0, Int32(khwc), 0,
                                                         packed, &ep, nil, &codes, 0, 1), -1, "\(c) \(sw) \(khwc)")
            }
            XCTAssertEqual(codes, [UInt8](repeating: 7, count: 8 * 400))
        }
    }

    /// The AVX2 implicit conv (qgemm_conv_implicit_avx2.c, 8-pixel vectors) alone, on the VNNI
    /// test's shapes, in both forms: weights in [-64, 63] (vpmaddubsw; also every input 255 with
    /// every weight -64 or 64, the largest pair sums it must not saturate) and 8-bit weights
    /// (int16 channel pairs through vpmaddwd; also inputs 255 with weights -128 / 127). Bytes
    /// equal the scalar im2col + reference GEMM (float, requantized float, codes; 1-3 threads).
    /// Through the driver: a 16-channel stride-1 Conv on a wide plane takes it with either
    /// weights, a 32-channel one only with 7-bit weights.
    func testImplicitConvAVX2MatchesReference() throws {
        guard mpq_kernel_path_available(MPQ_PATH_AVX2) != 0 else { throw XCTSkip("no AVX2 on this CPU") }
        var rng = Int8TestRNG(seed: 2614)
        var tried = 0
        for ci in 0..<40 {
            let eightBit = ci >= 20
            let (kh, kw) = [(3, 3), (1, 3), (5, 5), (2, 2), (3, 3), (3, 1), (3, 3)][ci % 7]
            let group = ci % 5 == 4 ? 2 : 1, cg = [4, 8, 16, 64, 12][ci % 5], c = cg * group
            let h = rng.int(1...20), w = rng.int(3...70), dil = ci % 6 == 5 ? 2 : 1, st = ci % 3 == 1 ? 2 : 1
            let pt = rng.int(0...3), pl = rng.int(0...3), pb = rng.int(0...3), pr = rng.int(0...3)
            var s = mpq_conv2d_shape(channels: Int32(c), height: Int32(h), width: Int32(w), kernel_h: Int32(kh), kernel_w: Int32(kw),
                                     pad_top: Int32(pt), pad_left: Int32(pl), pad_bottom: Int32(pb), pad_right: Int32(pr),
                                     stride_h: Int32(st), stride_w: Int32(st), dilation_h: Int32(dil), dilation_w: Int32(dil),
                                     group: Int32(group))
            let oh = Int(mpq_conv2d_out_h(&s)), ow = Int(mpq_conv2d_out_w(&s))
            guard oh > 0, ow > 0, (pl + w + pr + st - 1) / st >= 6, ow <= (pl + w + pr + st - 1) / st else { continue }
            let pixels = oh * ow, coutG = [16, 29, 6, 1, 64][ci % 5]
            let extreme = ci % 4 == 3
            let zx = extreme ? 0 : UInt8(rng.int(0...255)), zy = UInt8(rng.int(0...255))
            let x = extreme ? [UInt8](repeating: 255, count: c * h * w) : rng.u8s(c * h * w)
            for grp in 0..<group {
                let ref = Int8ConvGroupReference(rng: &rng, x: x, shape: s, group: grp, channelsPerGroup: cg, kh: kh, kw: kw,
                                                 coutG: coutG, zx: zx, zy: zy, sevenBit: !extreme && !eightBit,
                                                 extremeSevenBit: extreme && !eightBit, extremeEightBit: extreme && eightBit)
                let packed = ref.packed
                if !eightBit { XCTAssertEqual(int8PairsFit(packed), 1) }
                for mode in 0..<3 {  // float, float requantized, codes
                    ref.withMode(mode) { ep, refF, refC in
                        for threads: Int32 in [1, 2, 3] {
                            let (rc, gotF, gotC) = runImplicit(MPQ_PATH_AVX2, x, &s, grp, zx, packed, &ep, zy, threads,
                                                               outputs: coutG * pixels, codes: mode == 2)
                            let what = "avx2 implicit case \(ci) (8-bit \(eightBit)) \(s) group \(grp) mode \(mode) threads \(threads)"
                            XCTAssertEqual(rc, 0, what)
                            if mode == 2 { XCTAssertEqual(gotC, refC, what) }
                            else { XCTAssertEqual(gotF.map(\.bitPattern), refF.map(\.bitPattern), what) }
                        }
                    }
                }
                tried += 1
            }
        }
        XCTAssertGreaterThan(tried, 16)
        // The driver with the indirect conv off: a 3x3 on a 40x40 plane; the same bytes as the
        // reference either way.
        let before = mpq_set_int8_avx2_indirect(0)
        defer { mpq_set_int8_avx2_indirect(before) }
        for (c, seven, engine) in [(16, true, "implicit+avx2"), (16, false, "implicit+avx2"), (32, true, "implicit+avx2"),
                                   (32, false, "im2col+avx2")] {
            var s = mpq_conv2d_shape(channels: Int32(c), height: 40, width: 40, kernel_h: 3, kernel_w: 3, pad_top: 1, pad_left: 1,
                                     pad_bottom: 1, pad_right: 1, stride_h: 1, stride_w: 1, dilation_h: 1, dilation_w: 1, group: 1)
            let x = rng.u8s(c * 1600)
            let ref = Int8ConvGroupReference(rng: &rng, x: x, shape: s, group: 0, channelsPerGroup: c, kh: 3, kw: 3, coutG: 24,
                                             zx: 11, zy: 9, sevenBit: seven)
            XCTAssertEqual(int8PairsFit(ref.packed), seven ? 1 : 0)
            ref.withMode(2) { ep, _, refC in
                var got = [UInt8](repeating: 0, count: 24 * 1600)
                XCTAssertEqual(mpq_qconv2d_u8s8(MPQ_PATH_AVX2, x, &s, 0, 1, 11, ref.packed, &ep, nil, &got, 9, 2), 0)
                XCTAssertEqual(got, refC, "driver, \(c) channels, 7-bit \(seven)")
                XCTAssertEqual(String(cString: mpq_last_engine()), engine, "\(c) channels, 7-bit \(seven)")
            }
        }
        print("int8 AVX2 implicit conv (7- and 8-bit weights): \(tried) cases")
    }

    /// The indirect AVX2 conv (qgemm_conv_indirect.c: the GEMM reads each tap's channels from a
    /// padded channels-last copy, no im2col) through the driver, forced on: C / group 4 to 80 (a
    /// multiple of 4, whole and partial 16-channel transposes), kernels 3x3 to 5x5 and non-square
    /// (2 to 25 taps), strides 1-3 each way, dilation, pads 0-3 and asymmetric, widths 1-70 (rows
    /// of whole 16-pixel transposes and partial ones), groups, 1-40 output channels; 7-bit weights
    /// (vpmaddubsw), 8-bit (the widening tile) and their extremes with inputs of 255; float,
    /// requantized float and codes; 1-3 threads. Bytes equal the scalar im2col + reference GEMM,
    /// and the engine says indirect. Shapes it must not take keep their engines.
    func testIndirectConvAVX2MatchesReference() throws {
        guard mpq_kernel_path_available(MPQ_PATH_AVX2) != 0 else { throw XCTSkip("no AVX2 on this CPU") }
        let before = mpq_set_int8_avx2_indirect(1)
        defer { mpq_set_int8_avx2_indirect(before) }
        var rng = Int8TestRNG(seed: 3131)
        var tried = 0
        for ci in 0..<38 {
            let (kh, kw) = ci >= 36 ? (3, 3) : [(3, 3), (1, 3), (5, 5), (2, 2), (3, 3), (3, 1), (5, 3)][ci % 7]
            let group = ci % 5 == 4 && ci < 36 ? 2 : 1, cg = ci >= 36 ? 64 : [4, 16, 20, 64, 80, 36][ci % 6], c = cg * group
            var h = rng.int(1...24), w = ci % 3 == 0 ? rng.int(1...12) : rng.int(13...70)
            var dil = ci % 6 == 5 ? 2 : 1, sh = rng.int(1...3), sw = rng.int(1...3)
            var pt = rng.int(0...3), pl = rng.int(0...3), pb = rng.int(0...3), pr = rng.int(0...3)
            if ci >= 36 {  // ResNet's 56x56 3x3, stride 1 and 2: many row blocks, each from its own first pixel
                (h, w, dil, sh, sw, pt, pl, pb, pr) = (56, 56, 1, ci - 35, ci - 35, 1, 1, 1, 1)
            }
            var s = mpq_conv2d_shape(channels: Int32(c), height: Int32(h), width: Int32(w), kernel_h: Int32(kh), kernel_w: Int32(kw),
                                     pad_top: Int32(pt), pad_left: Int32(pl), pad_bottom: Int32(pb), pad_right: Int32(pr),
                                     stride_h: Int32(sh), stride_w: Int32(sw), dilation_h: Int32(dil), dilation_w: Int32(dil),
                                     group: Int32(group))
            let oh = Int(mpq_conv2d_out_h(&s)), ow = Int(mpq_conv2d_out_w(&s))
            guard oh > 0, ow > 0 else { continue }
            let pixels = oh * ow, coutG = [16, 29, 6, 1, 40, 17][ci % 6]
            let seven = ci % 3 != 2, extreme = ci % 4 == 3
            let zx = extreme ? 0 : UInt8(rng.int(0...255)), zy = UInt8(rng.int(0...255))
            let x = extreme ? [UInt8](repeating: 255, count: c * h * w) : rng.u8s(c * h * w)
            for grp in 0..<group {
                let ref = Int8ConvGroupReference(rng: &rng, x: x, shape: s, group: grp, channelsPerGroup: cg, kh: kh, kw: kw,
                                                 coutG: coutG, zx: zx, zy: zy, sevenBit: seven && !extreme,
                                                 extremeSevenBit: extreme && seven, extremeEightBit: extreme && !seven)
                XCTAssertEqual(int8PairsFit(ref.packed), seven ? 1 : 0)
                for mode in 0..<3 {  // float, float requantized, codes
                    ref.withMode(mode) { ep, refF, refC in
                        for threads: Int32 in [1, 2, 3] {
                            let (rc, gotF, gotC) = self.runDriver(MPQ_PATH_AVX2, x, &s, grp, khwc: true, zx, ref.packed, &ep, zy, threads,
                                                                  outputs: coutG * pixels, codes: mode == 2)
                            let what = "indirect case \(ci) (7-bit \(seven)) \(s) group \(grp) mode \(mode) threads \(threads)"
                            XCTAssertEqual(rc, 0, what)
                            XCTAssertEqual(String(cString: mpq_last_engine()), "indirect+avx2", what)
                            if mode == 2 { XCTAssertEqual(gotC, refC, what) }
                            else { XCTAssertEqual(gotF.map(\.bitPattern), refF.map(\.bitPattern), what) }
                        }
                    }
                }
                tried += 1
            }
        }
        XCTAssertGreaterThan(tried, 25)
        // Not taken: C / group not a multiple of 4, (c, kh, kw) weights, a 1x1 kernel.
        for (c, k, khwc) in [(18, 3, 1), (16, 3, 0), (16, 1, 1)] {
            var s = mpq_conv2d_shape(channels: Int32(c), height: 20, width: 20, kernel_h: Int32(k), kernel_w: Int32(k),
                                     pad_top: 1, pad_left: 1, pad_bottom: 1, pad_right: 1, stride_h: 2, stride_w: 2,
                                     dilation_h: 1, dilation_w: 1, group: 1)
            XCTAssertNotEqual(mpq_qconv2d_engine(MPQ_PATH_AVX2, &s, 8, Int32(khwc)), MPQ_QCONV_INDIRECT, "\(c) \(k) \(khwc)")
        }
        var s = mpq_conv2d_shape(channels: 16, height: 20, width: 20, kernel_h: 3, kernel_w: 3, pad_top: 1, pad_left: 1,
                                 pad_bottom: 1, pad_right: 1, stride_h: 1, stride_w: 1, dilation_h: 1, dilation_w: 1, group: 1)
        XCTAssertEqual(mpq_qconv2d_engine(MPQ_PATH_AVX2, &s, 8, 1), MPQ_QCONV_INDIRECT)
        mpq_set_int8_avx2_indirect(0)
        XCTAssertNotEqual(mpq_qconv2d_engine(MPQ_PATH_AVX2, &s, 8, 1), MPQ_QCONV_INDIRECT)
        print("int8 AVX2 indirect conv (7- and 8-bit weights): \(tried) cases")
    }

    /// Strided or padded 1x1 convs with 784+ output pixels and 7-bit weights on AVX2: the sampled
    /// pixels copied into planes, then the pointwise kernel (qgemm_conv.c, subsampled_pointwise_conv):
    /// stride 2 with whole and overlapping 16-sample loads, odd widths, asymmetric pads (zero-point
    /// rows and columns), stride 3 and 1 (byte by byte and plain runs), rows under 16 wide read by
    /// one load running into the next row, 1-40 channels and output channels, two groups; float,
    /// requantized float and codes; 1-3 threads. Bytes equal the scalar im2col + reference GEMM, and
    /// the engine says so; with 8-bit weights (pairs not fitting int16) the im2col keeps them.
    func testSubsampledPointwiseMatchesReference() throws {
        guard mpq_kernel_path_available(MPQ_PATH_AVX2) != 0 else { throw XCTSkip("no AVX2 on this CPU") }
        var rng = Int8TestRNG(seed: 4141)
        // (channels, h, w, pads top/left/bottom/right, stride h/w, groups, output channels per group)
        let shapes: [(c: Int, h: Int, w: Int, p: (Int, Int, Int, Int), sh: Int, sw: Int, group: Int, n: Int)] = [
            (16, 56, 56, (0, 0, 0, 0), 2, 2, 1, 32), (20, 57, 61, (1, 0, 2, 1), 2, 2, 1, 17),
            (3, 90, 93, (0, 1, 0, 0), 3, 3, 1, 8), (8, 30, 30, (1, 1, 1, 1), 1, 1, 2, 5),
            (40, 130, 26, (0, 0, 0, 0), 2, 2, 1, 40), (1, 64, 64, (2, 2, 2, 2), 2, 2, 1, 1),
        ]
        for (ci, t) in shapes.enumerated() {
            var s = mpq_conv2d_shape(channels: Int32(t.c), height: Int32(t.h), width: Int32(t.w), kernel_h: 1, kernel_w: 1,
                                     pad_top: Int32(t.p.0), pad_left: Int32(t.p.1), pad_bottom: Int32(t.p.2), pad_right: Int32(t.p.3),
                                     stride_h: Int32(t.sh), stride_w: Int32(t.sw), dilation_h: 1, dilation_w: 1, group: Int32(t.group))
            let pixels = Int(mpq_conv2d_out_h(&s) * mpq_conv2d_out_w(&s)), cg = t.c / t.group
            XCTAssertGreaterThanOrEqual(pixels, 784, "case \(ci)")
            let zx = UInt8(rng.int(0...255)), zy = UInt8(rng.int(0...255))
            let x = rng.u8s(t.c * t.h * t.w)
            for grp in 0..<t.group {
                for seven in [true, false] {
                    let ref = Int8ConvGroupReference(rng: &rng, x: x, shape: s, group: grp, channelsPerGroup: cg, kh: 1, kw: 1,
                                                     coutG: t.n, zx: zx, zy: zy, khwc: false, sevenBit: seven)
                    for mode in 0..<3 {
                        ref.withMode(mode) { ep, refF, refC in
                            for threads: Int32 in [1, 2, 3] {
                                let (rc, gotF, gotC) = self.runDriver(MPQ_PATH_AVX2, x, &s, grp, khwc: false, zx, ref.packed, &ep, zy, threads,
                                                                      outputs: t.n * pixels, codes: mode == 2)
                                let what = "subsampled case \(ci) group \(grp) 7-bit \(seven) mode \(mode) threads \(threads)"
                                XCTAssertEqual(rc, 0, what)
                                // (A 1-channel 8-bit B's pairs fit int16 too: the pair's other weight is the pad's 0.)
                                XCTAssertEqual(String(cString: mpq_last_engine()),
                                               int8PairsFit(ref.packed) == 1 ? "subsampled+pointwise+avx2" : "im2col+avx2", what)
                                if mode == 2 { XCTAssertEqual(gotC, refC, what) }
                                else { XCTAssertEqual(gotF.map(\.bitPattern), refF.map(\.bitPattern), what) }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Strided or padded 1x1 convs with 16+ channels take the transposing tap loop now.
    func testStridedPointwiseIm2colMatchesReference() {
        var rng = Int8TestRNG(seed: 77)
        for t in cases where t.kh == 1 && t.kw == 1 {
            var s = t.shape
            let pixels = Int(mpq_conv2d_out_h(&s) * mpq_conv2d_out_w(&s)), k = t.c / t.group
            let x = rng.u8s(t.c * t.h * t.w), zp = UInt8(rng.int(0...255))
            var fast = [UInt8](repeating: 1, count: pixels * k), ref = [UInt8](repeating: 2, count: pixels * k)
            mpq_im2col_u8(x, &s, 0, zp, &fast)
            mpq_im2col_u8_reference(x, &s, 0, zp, &ref)
            XCTAssertEqual(fast, ref, "\(t)")
        }
    }

    func testRejectsMismatchedZeroPointAndTwoOutputs() {
        var s = cases[0].shape
        let x = [UInt8](repeating: 3, count: 32 * 42 * 42), packed = int8Pack([Int8](repeating: 1, count: 16 * 288), n: 16, k: 288)
        let scales = [Float](repeating: 1, count: 16)
        var out = [Float](repeating: 0, count: 16 * 42 * 42), codes = [UInt8](repeating: 0, count: 16 * 42 * 42)
        scales.withUnsafeBufferPointer { sp in
            var ep = mpq_epilogue(a_zero_point: 5, a_scale: 1, b_scale: sp.baseAddress, bias: nil, clamp_lo: 0, clamp_hi: 255,
                                  bias_i32: nil, out_scale: 1)
            XCTAssertEqual(mpq_qconv2d_u8s8(MPQ_PATH_AUTO, x, &s, 0, 1, 4, packed, &ep, &out, nil, 0, 1), -1)
            XCTAssertEqual(mpq_qconv2d_u8s8(MPQ_PATH_AUTO, x, &s, 0, 1, 5, packed, &ep, &out, &codes, 0, 1), -1)
            XCTAssertEqual(mpq_qconv2d_u8s8(MPQ_PATH_AUTO, x, &s, 0, 1, 5, packed, &ep, &out, nil, 0, 1), 0)
        }
    }
}
