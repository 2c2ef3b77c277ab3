import CKernels
import XCTest

final class Int8ConvTests: XCTestCase {
    private struct Geometry {
        var c, h, w, kh, kw, pt, pl, pb, pr, sh, sw, dh, dw, group: Int
        var shape: mpq_conv2d_shape {
            mpq_conv2d_shape(channels: Int32(c), height: Int32(h), width: Int32(w), kernel_h: Int32(kh), kernel_w: Int32(kw),
                             pad_top: Int32(pt), pad_left: Int32(pl), pad_bottom: Int32(pb), pad_right: Int32(pr),
                             stride_h: Int32(sh), stride_w: Int32(sw), dilation_h: Int32(dh), dilation_w: Int32(dw),
                             group: Int32(group))
        }
        var oh: Int { (h + pt + pb - (dh * (kh - 1) + 1)) / sh + 1 }
        var ow: Int { (w + pl + pr - (dw * (kw - 1) + 1)) / sw + 1 }
        /// Input value at (c, ih, iw), or the zero point in the padding.
        func at(_ x: [UInt8], _ ch: Int, _ ih: Int, _ iw: Int, zp: UInt8) -> UInt8 {
            ih >= 0 && ih < h && iw >= 0 && iw < w ? x[(ch * h + ih) * w + iw] : zp
        }
    }

    private func randomGeometry(_ rng: inout Int8TestRNG, depthwise: Bool) -> Geometry {
        while true {
            let group = depthwise ? 0 : rng.pick([1, 1, 2, 3])
            let c = depthwise ? rng.int(1...5) : group * rng.int(1...3)
            var g = Geometry(c: c, h: rng.int(1...12), w: rng.pick(int8AwkwardSizes + [40, 70]),
                             kh: rng.int(1...5), kw: rng.int(1...5),
                             pt: rng.int(0...2), pl: rng.int(0...2), pb: rng.int(0...2), pr: rng.int(0...2),
                             sh: rng.int(1...3), sw: rng.pick([1, 1, 2, 2, 3]), dh: rng.pick([1, 1, 2]), dw: rng.pick([1, 1, 2]),
                             group: group)
            if depthwise { g.group = g.c }
            if g.h + g.pt + g.pb >= g.dh * (g.kh - 1) + 1 && g.w + g.pl + g.pr >= g.dw * (g.kw - 1) + 1 { return g }
        }
    }

    func testIm2colMatchesDirectIndexing() {
        var rng = Int8TestRNG(seed: 2024)
        // 1x1 / stride 1 / no padding takes the 16x16 transpose: sizes around 16.
        let pointwise = [Geometry(c: 20, h: 3, w: 17, kh: 1, kw: 1, pt: 0, pl: 0, pb: 0, pr: 0, sh: 1, sw: 1, dh: 1, dw: 1, group: 1),
                         Geometry(c: 32, h: 4, w: 8, kh: 1, kw: 1, pt: 0, pl: 0, pb: 0, pr: 0, sh: 1, sw: 1, dh: 1, dw: 1, group: 2),
                         Geometry(c: 15, h: 1, w: 15, kh: 1, kw: 1, pt: 0, pl: 0, pb: 0, pr: 0, sh: 1, sw: 1, dh: 1, dw: 1, group: 1),
                         Geometry(c: 48, h: 7, w: 9, kh: 1, kw: 1, pt: 0, pl: 0, pb: 0, pr: 0, sh: 1, sw: 1, dh: 1, dw: 1, group: 3)]
        for trial in 0..<80 {
            let g = trial < pointwise.count ? pointwise[trial] : randomGeometry(&rng, depthwise: false)
            var s = g.shape
            XCTAssertEqual(Int(mpq_conv2d_out_h(&s)), g.oh)
            XCTAssertEqual(Int(mpq_conv2d_out_w(&s)), g.ow)
            let zp = UInt8(rng.int(0...255))
            let x = rng.u8s(g.c * g.h * g.w)
            let cg = g.c / g.group, k = cg * g.kh * g.kw
            for grp in 0..<g.group {
                var col = [UInt8](repeating: 0, count: g.oh * g.ow * k)
                var ref = [UInt8](repeating: 1, count: g.oh * g.ow * k)
                x.withUnsafeBufferPointer { xp in
                    col.withUnsafeMutableBufferPointer { mpq_im2col_u8(xp.baseAddress, &s, Int32(grp), zp, $0.baseAddress) }
                    ref.withUnsafeMutableBufferPointer { mpq_im2col_u8_reference(xp.baseAddress, &s, Int32(grp), zp, $0.baseAddress) }
                }
                XCTAssertEqual(col, ref, "im2col fast vs reference \(g) group \(grp)")
                var expected = [UInt8]()
                for oh in 0..<g.oh {
                    for ow in 0..<g.ow {
                        for c in 0..<cg {
                            for kh in 0..<g.kh {
                                for kw in 0..<g.kw {
                                    expected.append(g.at(x, grp * cg + c, oh * g.sh - g.pt + kh * g.dh, ow * g.sw - g.pl + kw * g.dw, zp: zp))
                                }
                            }
                        }
                    }
                }
                XCTAssertEqual(col, expected, "im2col \(g) group \(grp)")
            }
        }
    }

    /// Shapes with C/g >= 16 and rows >= 32 so the (kh, kw, c) transposes run.
    private let wideGeometries = [
        Geometry(c: 40, h: 5, w: 40, kh: 3, kw: 3, pt: 1, pl: 1, pb: 1, pr: 1, sh: 1, sw: 1, dh: 1, dw: 1, group: 1),
        Geometry(c: 34, h: 6, w: 70, kh: 3, kw: 3, pt: 1, pl: 1, pb: 1, pr: 1, sh: 2, sw: 2, dh: 1, dw: 1, group: 2),
        Geometry(c: 16, h: 8, w: 33, kh: 5, kw: 3, pt: 2, pl: 0, pb: 1, pr: 2, sh: 1, sw: 1, dh: 2, dw: 2, group: 1),
        Geometry(c: 33, h: 3, w: 65, kh: 1, kw: 3, pt: 0, pl: 1, pb: 0, pr: 1, sh: 1, sw: 2, dh: 1, dw: 1, group: 1),
        Geometry(c: 17, h: 2, w: 16, kh: 1, kw: 1, pt: 0, pl: 0, pb: 0, pr: 0, sh: 1, sw: 1, dh: 1, dw: 1, group: 1),
    ]

    /// Group `group`'s (kh, kw, c) im2col rows of `x` by direct indexing (zero point outside).
    private func im2colKHWCByIndexing(_ g: Geometry, _ x: [UInt8], group: Int, zp: UInt8) -> [UInt8] {
        let cg = g.c / g.group
        var rows = [UInt8]()
        for oh in 0..<g.oh {
            for ow in 0..<g.ow {
                for kh in 0..<g.kh {
                    for kw in 0..<g.kw {
                        for c in 0..<cg {
                            rows.append(g.at(x, group * cg + c, oh * g.sh - g.pt + kh * g.dh, ow * g.sw - g.pl + kw * g.dw, zp: zp))
                        }
                    }
                }
            }
        }
        return rows
    }

    /// Every group's `mpq_im2col_u8_khwc` of random codes (a random zero point) against direct
    /// indexing, byte for byte.
    private func assertIm2colKHWCEqualsIndexing(_ g: Geometry, _ rng: inout Int8TestRNG, _ what: String) {
        var s = g.shape
        let zp = UInt8(rng.int(0...255))
        let x = rng.u8s(g.c * g.h * g.w)
        let k = g.c / g.group * g.kh * g.kw
        for grp in 0..<g.group {
            var col = [UInt8](repeating: 0, count: g.oh * g.ow * k)
            x.withUnsafeBufferPointer { xp in
                col.withUnsafeMutableBufferPointer { mpq_im2col_u8_khwc(xp.baseAddress, &s, Int32(grp), zp, $0.baseAddress) }
            }
            XCTAssertEqual(col, im2colKHWCByIndexing(g, x, group: grp, zp: zp), "\(what) \(g) group \(grp)")
        }
    }

    func testIm2colKHWCMatchesDirectIndexing() {
        var rng = Int8TestRNG(seed: 4242)
        for trial in 0..<60 {
            let g = trial < wideGeometries.count ? wideGeometries[trial] : randomGeometry(&rng, depthwise: false)
            assertIm2colKHWCEqualsIndexing(g, &rng, "im2col khwc")
        }
    }

    /// The row-end blocks (s20): a stride-1 tap's last 16 pixels as a block backed up to end at
    /// the row's last pixel, and a stride-2 tap's last block read from one byte earlier (odd
    /// bytes kept), where the block's loads would leave the row: the detector's 16-channel 64x64
    /// stride-2 conv, rows whose length leaves tails of 1-15 pixels, 16-48 channels with and
    /// without a tail under 16, top rows of the tensor's last plane included. Equal to direct
    /// indexing byte for byte.
    func testIm2colKHWCRowEndBlocksMatchDirectIndexing() {
        let geometries = [
            Geometry(c: 16, h: 6, w: 64, kh: 3, kw: 3, pt: 1, pl: 1, pb: 1, pr: 1, sh: 2, sw: 2, dh: 1, dw: 1, group: 1),
            Geometry(c: 24, h: 5, w: 37, kh: 3, kw: 3, pt: 1, pl: 1, pb: 1, pr: 1, sh: 1, sw: 1, dh: 1, dw: 1, group: 1),
            Geometry(c: 32, h: 4, w: 33, kh: 3, kw: 3, pt: 1, pl: 1, pb: 1, pr: 1, sh: 2, sw: 2, dh: 1, dw: 1, group: 1),
            Geometry(c: 48, h: 3, w: 47, kh: 3, kw: 3, pt: 0, pl: 2, pb: 0, pr: 0, sh: 1, sw: 2, dh: 1, dw: 1, group: 1),
            Geometry(c: 16, h: 3, w: 18, kh: 1, kw: 3, pt: 0, pl: 0, pb: 0, pr: 1, sh: 1, sw: 1, dh: 1, dw: 1, group: 1),
            Geometry(c: 40, h: 4, w: 50, kh: 3, kw: 3, pt: 1, pl: 1, pb: 1, pr: 1, sh: 2, sw: 2, dh: 1, dw: 1, group: 2),
        ]
        var rng = Int8TestRNG(seed: 2020)
        for g in geometries {
            assertIm2colKHWCEqualsIndexing(g, &rng, "im2col khwc row ends")
        }
    }

    /// Rows under 16 output pixels (the detector's 8x8 and 4x4 planes) and row ends, which
    /// the (kh, kw, c) im2col copies channel by channel outside its 16x16 transposes, equal
    /// direct indexing: stride 1 and 2, channels 16-112 with and without a tail under 16,
    /// groups (the last group's rows end the buffer), pads on some sides, dilation.
    func testIm2colKHWCNarrowRowsMatchDirectIndexing() {
        let narrow = [
            Geometry(c: 48, h: 8, w: 8, kh: 3, kw: 3, pt: 1, pl: 1, pb: 1, pr: 1, sh: 1, sw: 1, dh: 1, dw: 1, group: 1),
            Geometry(c: 64, h: 4, w: 4, kh: 3, kw: 3, pt: 1, pl: 1, pb: 1, pr: 1, sh: 1, sw: 1, dh: 1, dw: 1, group: 1),
            Geometry(c: 32, h: 16, w: 16, kh: 3, kw: 3, pt: 1, pl: 1, pb: 1, pr: 1, sh: 2, sw: 2, dh: 1, dw: 1, group: 1),
            Geometry(c: 112, h: 8, w: 8, kh: 3, kw: 3, pt: 1, pl: 1, pb: 1, pr: 1, sh: 1, sw: 1, dh: 1, dw: 1, group: 1),
            Geometry(c: 33, h: 5, w: 9, kh: 3, kw: 3, pt: 0, pl: 2, pb: 1, pr: 0, sh: 2, sw: 2, dh: 1, dw: 1, group: 1),
            Geometry(c: 40, h: 3, w: 2, kh: 3, kw: 3, pt: 1, pl: 1, pb: 1, pr: 1, sh: 1, sw: 1, dh: 1, dw: 1, group: 2),
            Geometry(c: 17, h: 7, w: 7, kh: 3, kw: 3, pt: 2, pl: 2, pb: 2, pr: 2, sh: 1, sw: 1, dh: 2, dw: 2, group: 1),
            Geometry(c: 16, h: 2, w: 35, kh: 1, kw: 3, pt: 0, pl: 1, pb: 0, pr: 1, sh: 1, sw: 1, dh: 1, dw: 1, group: 1),
            Geometry(c: 20, h: 4, w: 47, kh: 3, kw: 3, pt: 1, pl: 1, pb: 1, pr: 1, sh: 2, sw: 2, dh: 1, dw: 1, group: 1),
        ]
        var rng = Int8TestRNG(seed: 4343)
        for g in narrow {
            assertIm2colKHWCEqualsIndexing(g, &rng, "im2col khwc narrow")
        }
    }

    /// Reordered weights + (kh, kw, c) im2col + GEMM give the same int32 as the (c, kh, kw) pair.
    func testIm2colKHWCWithReorderedWeightsEqualsCHW() {
        var rng = Int8TestRNG(seed: 99)
        for trial in 0..<12 {
            let g = trial < wideGeometries.count ? wideGeometries[trial] : randomGeometry(&rng, depthwise: false)
            var s = g.shape
            let cg = g.c / g.group, k = cg * g.kh * g.kw, cout = rng.int(1...20), pixels = g.oh * g.ow
            let zp = UInt8(rng.int(0...255))
            let x = rng.u8s(g.c * g.h * g.w), w = rng.s8s(cout * k)
            var wk = [Int8](repeating: 0, count: cout * k)
            w.withUnsafeBufferPointer { wp in
                wk.withUnsafeMutableBufferPointer {
                    mpq_conv_weights_khwc_s8(wp.baseAddress, Int32(cout), Int32(cg), Int32(g.kh), Int32(g.kw), $0.baseAddress)
                }
            }
            func conv(_ im2col: (UnsafePointer<UInt8>?, UnsafePointer<mpq_conv2d_shape>?, Int32, UInt8, UnsafeMutablePointer<UInt8>?) -> Void,
                      _ weights: [Int8]) -> [Int32] {
                var col = [UInt8](repeating: 0, count: pixels * k)
                x.withUnsafeBufferPointer { xp in col.withUnsafeMutableBufferPointer { im2col(xp.baseAddress, &s, 0, zp, $0.baseAddress) } }
                let packed = int8Pack(weights, n: cout, k: k)
                var c = [Int32](repeating: 0, count: pixels * cout)
                _ = mpq_qgemm_u8s8(MPQ_PATH_AUTO, Int32(pixels), Int32(cout), Int32(k), col, Int32(k), packed, Int32(zp), &c, Int32(cout), 1)
                return c
            }
            XCTAssertEqual(conv(mpq_im2col_u8_khwc, wk), conv(mpq_im2col_u8, w), "\(g)")
        }
    }

    /// im2col + packed GEMM equals a direct integer convolution: the pieces fit.
    func testIm2colFeedsGemmAsConv() {
        var rng = Int8TestRNG(seed: 77)
        for _ in 0..<20 {
            let g = randomGeometry(&rng, depthwise: false)
            var s = g.shape
            let cg = g.c / g.group, k = cg * g.kh * g.kw, coutG = rng.int(1...20), pixels = g.oh * g.ow
            let zp = UInt8(rng.int(0...255))
            let x = rng.u8s(g.c * g.h * g.w)
            for grp in 0..<g.group {
                let w = rng.s8s(coutG * k)  // [Cout/g][C/g][KH][KW]
                var col = [UInt8](repeating: 0, count: pixels * k)
                x.withUnsafeBufferPointer { xp in
                    col.withUnsafeMutableBufferPointer { mpq_im2col_u8(xp.baseAddress, &s, Int32(grp), zp, $0.baseAddress) }
                }
                let packed = int8Pack(w, n: coutG, k: k)
                for path in int8AvailablePaths {
                    var c = [Int32](repeating: 0, count: pixels * coutG)
                    col.withUnsafeBufferPointer { ap in
                        packed.withUnsafeBytes { pp in
                            c.withUnsafeMutableBufferPointer {
                                _ = mpq_qgemm_u8s8(path, Int32(pixels), Int32(coutG), Int32(k), ap.baseAddress, Int32(k),
                                                   pp.baseAddress, Int32(zp), $0.baseAddress, Int32(coutG), 1)
                            }
                        }
                    }
                    for o in 0..<coutG {
                        for oh in 0..<g.oh {
                            for ow in 0..<g.ow {
                                var acc: Int32 = 0
                                for ci in 0..<cg {
                                    for kh in 0..<g.kh {
                                        for kw in 0..<g.kw {
                                            let a = g.at(x, grp * cg + ci, oh * g.sh - g.pt + kh * g.dh, ow * g.sw - g.pl + kw * g.dw, zp: zp)
                                            acc += (Int32(a) - Int32(zp)) * Int32(w[o * k + (ci * g.kh + kh) * g.kw + kw])
                                        }
                                    }
                                }
                                XCTAssertEqual(c[(oh * g.ow + ow) * coutG + o], acc, "\(int8PathName(path)) \(g)")
                            }
                        }
                    }
                }
            }
        }
    }

    private func depthwise(_ path: mpq_kernel_path, _ x: [UInt8], _ g: Geometry, _ w: [Int8], za: Int32,
                           scaleA: Float, scaleB: [Float], bias: [Float]?, lo: Float, hi: Float,
                           biasI32: [Int32]? = nil, outScale: Float = 0) -> [Float] {
        var s = g.shape
        var out = [Float](repeating: .nan, count: g.c * g.oh * g.ow)
        let rc = scaleB.withUnsafeBufferPointer { sb in
            (biasI32 ?? []).withUnsafeBufferPointer { bi in
            (bias ?? []).withUnsafeBufferPointer { bb in
                var ep = mpq_epilogue(a_zero_point: za, a_scale: scaleA, b_scale: sb.baseAddress,
                                      bias: bias == nil ? nil : bb.baseAddress, clamp_lo: lo, clamp_hi: hi,
                                      bias_i32: biasI32 == nil ? nil : bi.baseAddress, out_scale: outScale)
                return x.withUnsafeBufferPointer { xp in
                    w.withUnsafeBufferPointer { wp in
                        out.withUnsafeMutableBufferPointer {
                            mpq_depthwise_conv_u8s8(path, xp.baseAddress, &s, wp.baseAddress, &ep, $0.baseAddress)
                        }
                    }
                }
            }
            }
        }
        XCTAssertEqual(rc, 0)
        return out
    }

    func testDepthwiseEveryPathMatchesDirectConv() {
        var rng = Int8TestRNG(seed: 31337)
        // MobileNet-like shapes first, so the 8-pixel SIMD blocks certainly run
        // (stride 1 and 2, 3x3 and 5x5, pad 1/2), then random ones.
        let fixed = [Geometry(c: 3, h: 9, w: 64, kh: 3, kw: 3, pt: 1, pl: 1, pb: 1, pr: 1, sh: 1, sw: 1, dh: 1, dw: 1, group: 3),
                     Geometry(c: 2, h: 9, w: 65, kh: 3, kw: 3, pt: 1, pl: 1, pb: 1, pr: 1, sh: 2, sw: 2, dh: 1, dw: 1, group: 2),
                     Geometry(c: 2, h: 7, w: 33, kh: 5, kw: 5, pt: 2, pl: 2, pb: 2, pr: 2, sh: 1, sw: 1, dh: 1, dw: 1, group: 2),
                     Geometry(c: 1, h: 6, w: 40, kh: 3, kw: 3, pt: 2, pl: 2, pb: 2, pr: 2, sh: 1, sw: 2, dh: 2, dw: 2, group: 1)]
        for trial in 0..<120 {
            let g = trial < fixed.count ? fixed[trial] : randomGeometry(&rng, depthwise: true)
            let za = Int32(rng.int(0...255))
            let x = rng.u8s(g.c * g.h * g.w), w = rng.s8s(g.c * g.kh * g.kw)
            let scaleA = rng.float(0.005...0.05)
            let scaleB = (0..<g.c).map { _ in rng.float(0.005...0.05) }
            let bias: [Float]? = trial % 2 == 0 ? (0..<g.c).map { _ in rng.float(-2...2) } : nil
            let (lo, hi): (Float, Float) = [(-.infinity, .infinity), (0, .infinity), (0, 6)][trial % 3]
            let biasI32: [Int32]? = trial % 4 == 1 ? (0..<g.c).map { _ in Int32(rng.int(0...2000)) - 1000 } : nil
            let outScale: Float = trial % 4 == 1 ? rng.float(0.01...0.1) : 0
            var expected = [Float]()
            for c in 0..<g.c {
                for oh in 0..<g.oh {
                    for ow in 0..<g.ow {
                        var acc: Int32 = 0
                        for kh in 0..<g.kh {
                            for kw in 0..<g.kw {
                                let a = g.at(x, c, oh * g.sh - g.pt + kh * g.dh, ow * g.sw - g.pl + kw * g.dw, zp: UInt8(za))
                                acc += (Int32(a) - za) * Int32(w[(c * g.kh + kh) * g.kw + kw])
                            }
                        }
                        let s = scaleA * scaleB[c]
                        var v = Float(acc + (biasI32?[c] ?? 0)) * s
                        if let bias { v = v + bias[c] }
                        v = min(max(v, lo), hi)
                        if outScale > 0 { v = v.rounded(.toNearestOrEven) * outScale + 0 }
                        expected.append(v)
                    }
                }
            }
            for path in int8AvailablePaths {
                let got = depthwise(path, x, g, w, za: za, scaleA: scaleA, scaleB: scaleB, bias: bias, lo: lo, hi: hi,
                                    biasI32: biasI32, outScale: outScale)
                XCTAssertEqual(got.map(\.bitPattern), expected.map(\.bitPattern), "\(int8PathName(path)) \(g)")
            }
        }
        print("int8 depthwise paths covered: \(int8AvailablePaths.map(int8PathName).joined(separator: ", "))")
    }

    func testDepthwiseRejectsNonDepthwiseShape() {
        var rng = Int8TestRNG(seed: 1)
        var g = randomGeometry(&rng, depthwise: true)
        g.c = 4
        g.group = 2
        let x = [UInt8](repeating: 0, count: g.c * g.h * g.w), w = [Int8](repeating: 0, count: g.c * g.kh * g.kw)
        var s = g.shape
        let scales = [Float](repeating: 1, count: g.c)
        var out = [Float](repeating: 0, count: g.c * g.oh * g.ow)
        scales.withUnsafeBufferPointer { sb in
            var ep = mpq_epilogue(a_zero_point: 0, a_scale: 1, b_scale: sb.baseAddress, bias: nil, clamp_lo: 0, clamp_hi: 0, bias_i32: nil, out_scale: 0)
            XCTAssertEqual(mpq_depthwise_conv_u8s8(MPQ_PATH_AUTO, x, &s, w, &ep, &out), -1)
            g.group = g.c
            s = g.shape
            XCTAssertEqual(mpq_depthwise_conv_u8s8(MPQ_PATH_AUTO, x, &s, w, &ep, &out), 0)
        }
    }
}
