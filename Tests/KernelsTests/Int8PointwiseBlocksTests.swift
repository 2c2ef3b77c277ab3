import CKernels
import XCTest

/// The pointwise engine's codes output (qgemm_pointwise_blocks.c: 64-pixel blocks narrowed by
/// packs, channel-vector tails of 16 pixels or fewer, panel tails of 17-48) and its old panel
/// form (mpq_set_int8_pointwise_blocks(0)), against the scalar im2col + reference GEMM, byte for
/// byte, through mpq_qconv2d_u8s8.
final class Int8PointwiseBlocksTests: XCTestCase {
    override func tearDown() {
        mpq_set_int8_pointwise_blocks(-1)
        super.tearDown()
    }

    /// Random 1x1 stride-1 shapes from 128 pixels (where the engine is the pointwise one): plane
    /// sizes whose last block has 0, 1-16, 17-48 and 49-63 pixels; channels 1-100 (not a
    /// multiple of 4: a K tail); output channels 1-100 (partial 6-channel tiles and 16-channel
    /// panels, so the channel splits cut panels); groups; zero points 0-255 (output 0 in every
/// sixth case); clamps at the code
    /// range (both dropped by the block tile), inside it at the low end, at the high end, both
    /// (non-integer bounds); scales up to 0.9 on some channels (the high clamp must stay); a
    /// float bias or none; 1-3 threads (at 2-3 threads a 4-block plane also splits its output
    /// channels).
    func testPointwiseCodesMatchReference() {
        var rng = Int8TestRNG(seed: 4211)
        let hasVNNI = mpq_kernel_path_available(MPQ_PATH_VNNI) != 0
        var tails = Set<Int>()
        for ci in 0..<48 {
            // Pixel counts (last block): 196 (14x14: 3 blocks + 4), 784 (28x28: + 16, three
            // channel-vector tiles), 128 (whole blocks), 150 (+ 22), 255 (+ 63), 320, 143 (+ 15), 169 (+ 41).
            let (h, w) = [(14, 14), (28, 28), (8, 16), (10, 15), (15, 17), (16, 20), (11, 13), (13, 13)][ci % 8]
            let group = ci % 7 == 6 ? 2 : 1, cg = rng.int(1...100), c = cg * group
            let coutG = [96, 1, 29, 64, 100, 6, 17, 48][(ci / 8) % 8]
            var s = mpq_conv2d_shape(channels: Int32(c), height: Int32(h), width: Int32(w), kernel_h: 1, kernel_w: 1,
                                     pad_top: 0, pad_left: 0, pad_bottom: 0, pad_right: 0, stride_h: 1, stride_w: 1,
                                     dilation_h: 1, dilation_w: 1, group: Int32(group))
            let pixels = h * w
            tails.insert(pixels % 64 == 0 ? 0 : pixels % 64 <= 16 ? 1 : pixels % 64 <= 48 ? 2 : 3)
            if hasVNNI { XCTAssertEqual(mpq_qconv2d_engine(MPQ_PATH_VNNI, &s, Int32(coutG), 0), MPQ_QCONV_POINTWISE) }
            // Output zero point 0 (ReLU6 outputs: the block tile skips the zero-point adds) in every sixth case.
            let zx = UInt8(rng.int(0...255)), zyDrawn = UInt8(rng.int(0...255)), zy = ci % 6 == 0 ? 0 : zyDrawn
            let x = rng.u8s(c * pixels)
            for grp in 0..<group {
                let ref = Int8ConvGroupReference(rng: &rng, x: x, shape: s, group: grp, channelsPerGroup: cg,
                                                 kh: 1, kw: 1, coutG: coutG, zx: zx, zy: zy, khwc: false)
                let clampMode = ci % 4
                var lo = -Float(zy), hi = 255 - Float(zy)
                if clampMode == 1 || clampMode == 3 { lo += Float(rng.int(1...60)) + (clampMode == 3 ? 0.5 : 0) }
                if clampMode == 2 || clampMode == 3 { hi -= Float(rng.int(1...60)) + (clampMode == 3 ? 0.4 : 0) }
                var scales = ref.scales
                if ci % 5 == 3 { for i in stride(from: 0, to: coutG, by: 3) { scales[i] = 0.9 } }
                let bias = ci % 3 == 1 ? ref.bias.map { $0 * 300 } : nil
                let what = "case \(ci) \(h)x\(w) c \(cg) n \(coutG) group \(grp) clamp \(clampMode) zy \(zy)"
                scales.withUnsafeBufferPointer { sp in ref.biasI32.withUnsafeBufferPointer { bip in
                    (bias ?? []).withUnsafeBufferPointer { bp in
                        var ep = mpq_epilogue(a_zero_point: Int32(zx), a_scale: 1, b_scale: sp.baseAddress,
                                              bias: bias == nil ? nil : bp.baseAddress, clamp_lo: lo, clamp_hi: hi,
                                              bias_i32: bip.baseAddress, out_scale: 0.05)
                        var refC = [UInt8](repeating: 0, count: coutG * pixels)
                        XCTAssertEqual(mpq_qgemm_u8s8_u8(MPQ_PATH_REFERENCE, Int32(pixels), Int32(coutG), Int32(cg), ref.col,
                                                         Int32(cg), ref.packedRef, &ep, &refC, Int32(pixels), zy, 1, 1), 0, what)
                        for (blocks, threads) in [(1, 1), (1, 2), (1, 3), (0, 1), (0, 2)] {
                            mpq_set_int8_pointwise_blocks(Int32(blocks))
                            var got = [UInt8](repeating: 0xEE, count: coutG * pixels)
                            let rc = mpq_qconv2d_u8s8(MPQ_PATH_VNNI, x, &s, Int32(grp), 0, zx, ref.packed, &ep, nil, &got, zy,
                                                      Int32(threads))
                            XCTAssertEqual(rc, 0, what)
                            XCTAssertEqual(got, refC, "\(what) blocks \(blocks) threads \(threads)")
                        }
                    }
                } }
            }
        }
        XCTAssertEqual(tails.count, 4, "every kind of last block")
    }

    /// The setter: it returns the previous setting, and -1 hands the choice back to the
    /// environment (on by default).
    func testBlocksSwitch() {
        XCTAssertEqual(mpq_set_int8_pointwise_blocks(0), -1)
        XCTAssertEqual(mpq_set_int8_pointwise_blocks(1), 0)
        XCTAssertEqual(mpq_set_int8_pointwise_blocks(-1), 1)
    }
}
