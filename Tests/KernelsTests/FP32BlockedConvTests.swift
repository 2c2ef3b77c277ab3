import CKernels
import XCTest
import ONNX
@testable import Kernels

/// The channel-blocked FP32 Conv (`mpq_sconv2d_f32_blocked`, sconv_blocked*.c) and the
/// reorders NCHW <-> [C/16][H][W][16] (docs/fp32-blocked-layout.md): the blocked output,
/// reordered back, is today's channel-vector Conv's output bit for bit on every path (AVX-512
/// tile and scalar reference tile), thread count, epilogue and residual, in row mode (interior
/// tiles read in place, border tiles from their patch) and flat mode (small planes), including
/// the signed zeros, underflowing products and non-finite weights that a skipped padding tap
/// would get wrong.
final class FP32BlockedConvTests: XCTestCase {
    typealias Case = FP32GemmTests.Case

    /// The channel-vector cases with group 1, and wider planes that take row mode (output
    /// rows of 16 or more: interior and border tiles, pads different on every side, strides,
    /// dilation, a 7x7 stride-2 stem).
    static let cases: [Case] = FP32ChannelVectorTests.cases.filter { $0.group == 1 } + [
        Case(c: 16, h: 20, w: 40, m: 16), Case(images: 2, c: 3, h: 18, w: 33, m: 24, pads: (1, 0, 2, 1)),
        Case(c: 17, h: 21, w: 37, m: 70, stride: (2, 1), pads: (0, 2, 1, 1)),
        Case(c: 3, h: 40, w: 44, m: 16, kh: 7, kw: 7, stride: (2, 2), pads: (3, 3, 3, 3)),
        Case(c: 32, h: 34, w: 34, m: 32, stride: (2, 2)), Case(c: 5, h: 19, w: 40, m: 17, dilation: (2, 3)),
        Case(c: 40, h: 18, w: 36, m: 33, kh: 1, kw: 1, stride: (2, 2), pads: (0, 0, 0, 0)),
        Case(images: 3, c: 8, h: 16, w: 17, m: 20, kh: 1, kw: 1, pads: (0, 0, 0, 0)),
        // 1x1 stride 1 unpadded (read in place, chunks of ~24 pixels): MobileNetV2's expand and
        // project shapes, a plane of one pixel, more than 64 output channels (two weights blocks).
        Case(c: 24, h: 14, w: 14, m: 144, kh: 1, kw: 1, pads: (0, 0, 0, 0)),
        Case(c: 96, h: 7, w: 7, m: 24, kh: 1, kw: 1, pads: (0, 0, 0, 0)),
        Case(images: 2, c: 33, h: 1, w: 1, m: 70, kh: 1, kw: 1, pads: (0, 0, 0, 0)),
        Case(c: 5, h: 3, w: 29, m: 17, kh: 1, kw: 1, pads: (0, 0, 0, 0)),
        // The AVX2 path's contiguous-pixel 1x1 (s30, mpq_sconv_blocked_pointwise_avx2): a block
        // ending in a half vector (pairs of 4 pixels), a lone half vector, K over two of the
        // weights' 128-deep blocks, chunks of 1-5 pixels.
        Case(images: 3, c: 16, h: 9, w: 13, m: 40, kh: 1, kw: 1, pads: (0, 0, 0, 0)),
        Case(c: 40, h: 6, w: 6, m: 8, kh: 1, kw: 1, pads: (0, 0, 0, 0)),
        Case(c: 130, h: 5, w: 7, m: 24, kh: 1, kw: 1, pads: (0, 0, 0, 0)),
        Case(images: 2, c: 32, h: 1, w: 5, m: 96, kh: 1, kw: 1, pads: (0, 0, 0, 0)),
        // Rows of more than 32 tiles: the AVX2 driver's runs of tiles (BK_RUN) in several
        // batches, border tiles in each (6-pixel tiles; 16-pixel ones where a block ends in a
        // half vector).
        Case(c: 5, h: 3, w: 230, m: 16), Case(c: 4, h: 4, w: 530, m: 20, stride: (1, 1), pads: (1, 2, 0, 1)),
        // Rows of 16-32 pixels at stride 1 with 32 or more output channels: flat mode without
        // the padding taps on the AVX-512 path (s35), its interior rows as pixel runs.
        Case(c: 20, h: 18, w: 24, m: 40), Case(images: 2, c: 8, h: 17, w: 30, m: 64, pads: (2, 1, 0, 2)),
    ]

    var paths: [mpq_kernel_path] {
        [MPQ_PATH_REFERENCE] + [MPQ_PATH_AVX2, MPQ_PATH_VNNI].filter { mpq_kernel_path_available($0) != 0 }
    }

    static func blocked(_ x: [Float], images: Int, c: Int, h: Int, w: Int, path: mpq_kernel_path) -> [Float] {
        var y = [Float](repeating: .nan, count: images * mpq_blocked_image_floats(Int32(c), Int32(h), Int32(w)))
        XCTAssertEqual(mpq_reorder_to_blocked_f32(path, x, Int32(images), Int32(c), Int32(h), Int32(w), &y), 0)
        return y
    }

    static func unblocked(_ x: [Float], images: Int, c: Int, h: Int, w: Int, path: mpq_kernel_path) -> [Float] {
        var y = [Float](repeating: .nan, count: images * c * h * w)
        XCTAssertEqual(mpq_reorder_from_blocked_f32(path, x, Int32(images), Int32(c), Int32(h), Int32(w), &y), 0)
        return y
    }

    /// Both reorders on every path: the reference's values, lanes past C +0, a round trip
    /// gives the bytes back (NaN payloads and -0 included).
    func testReordersMatchReferenceAndRoundTrip() {
        var rng = TestRNG(seed: 41)
        for (images, c, h, w) in [(1, 1, 1, 1), (2, 3, 5, 7), (1, 16, 4, 4), (1, 17, 3, 11), (3, 33, 2, 9), (1, 64, 7, 7), (1, 20, 1, 37)] {
            var x = (0..<images * c * h * w).map { _ in rng.float(-2...2) }
            x[0] = -0.0
            if x.count > 2 { x[2] = Float(bitPattern: 0x7FC0_1234) }
            let ref = Self.blocked(x, images: images, c: c, h: h, w: w, path: MPQ_PATH_REFERENCE)
            let per = Int(mpq_blocked_image_floats(Int32(c), Int32(h), Int32(w)))
            for img in 0..<images {
                for i in 0..<per where (i / (h * w * 16)) * 16 + i % 16 >= c {
                    XCTAssertEqual(ref[img * per + i].bitPattern, 0, "lane past C, image \(img) index \(i)")
                }
            }
            for path in paths {
                let got = Self.blocked(x, images: images, c: c, h: h, w: w, path: path)
                XCTAssertEqual(got.map(\.bitPattern), ref.map(\.bitPattern), "to blocked N\(images) C\(c) \(h)x\(w) path \(path.rawValue)")
                let back = Self.unblocked(got, images: images, c: c, h: h, w: w, path: path)
                XCTAssertEqual(back.map(\.bitPattern), x.map(\.bitPattern), "round trip N\(images) C\(c) \(h)x\(w) path \(path.rawValue)")
            }
        }
    }

    /// Runs the blocked Conv on x (NCHW, reordered here) and returns its output reordered
    /// back, after checking that the lanes past M are +0.
    static func runBlocked(_ t: Case, x: [Float], cv: UnsafeMutableRawPointer, bias: [Float]?, act: mpq_activation,
                           lo: Float, hi: Float, shortcut: [Float]? = nil, first: Int32 = 0, relu: Int32 = 0,
                           path: mpq_kernel_path, threads: Int32, fromNCHW: Bool = false) -> [Float] {
        var s = t.shape
        let oh = Int(mpq_conv2d_out_h(&s)), ow = Int(mpq_conv2d_out_w(&s))
        let xb = fromNCHW ? x : blocked(x, images: t.images, c: t.c, h: t.h, w: t.w, path: MPQ_PATH_REFERENCE)
        let conv = fromNCHW ? mpq_sconv2d_f32_blocked_from_nchw : mpq_sconv2d_f32_blocked
        let per = Int(mpq_blocked_image_floats(Int32(t.m), Int32(oh), Int32(ow)))
        var yb = [Float](repeating: .nan, count: t.images * per)
        if let shortcut {
            let sb = blocked(shortcut, images: t.images, c: t.m, h: oh, w: ow, path: MPQ_PATH_REFERENCE)
            sb.withUnsafeBufferPointer { ps in
                var r = mpq_sconv_residual(shortcut: ps.baseAddress, shortcut_first: first, relu: relu)
                XCTAssertEqual(conv(path, xb, Int32(t.images), &s, cv, bias, act, lo, hi, &r, &yb, threads), 0)
            }
        } else {
            XCTAssertEqual(conv(path, xb, Int32(t.images), &s, cv, bias, act, lo, hi, nil, &yb, threads), 0)
        }
        for img in 0..<t.images {
            for i in 0..<per where (i / (oh * ow * 16)) * 16 + i % 16 >= t.m && yb[img * per + i].bitPattern != 0 {
                XCTFail("\(t.description): lane past M not +0"); break
            }
        }
        return unblocked(yb, images: t.images, c: t.m, h: oh, w: ow, path: MPQ_PATH_REFERENCE)
    }

    /// Against `mpq_sconv2d_f32_cv` (today's NCHW kernel), bit for bit.
    func testBlockedEqualsChannelVector() {
        var compared = 0
        for (i, t) in Self.cases.enumerated() {
            var s = t.shape
            XCTAssertNotEqual(mpq_sconv2d_f32_blocked_applies(&s), 0, t.description)
            let (x, w, bias) = FP32GemmTests.data(t, seed: UInt64(2100 + i))
            let packed = PackedConvWeights(Tensor(shape: [t.m, t.c, t.kh, t.kw], floats: w), group: 1)
            let count = t.images * t.m * Int(mpq_conv2d_out_h(&s)) * Int(mpq_conv2d_out_w(&s))
            for (act, lo, hi, b) in [(MPQ_ACT_NONE, Float(0), Float(0), nil as [Float]?), (MPQ_ACT_CLAMP, 0, 6, bias),
                                     (MPQ_ACT_CLAMP, 0.5, 0.75, nil), (MPQ_ACT_SILU, 0, 0, bias)] {
                for path in paths {
                    var want = [Float](repeating: .nan, count: count)
                    XCTAssertEqual(mpq_sconv2d_f32_cv(path, x, Int32(t.images), &s, packed.channelVector, b, act, lo, hi, nil, &want, 1), 0)
                    // Both weights layouts on the AVX2 path (its tile reads rows and slices); the
                    // host's elsewhere (the scalar reference is most of this test's time).
                    for layout in path == MPQ_PATH_AVX2 ? FP32ChannelVectorTests.layouts.map({ Optional($0) }) : [nil] {
                        let cv = layout.map { packed.channelVector(layout: $0) } ?? packed.channelVector
                        defer { if layout != nil { cv.deallocate() } }
                        for threads: Int32 in [1, 2, 3] {
                            for fromNCHW in [false, true] {
                                let got = Self.runBlocked(t, x: x, cv: cv, bias: b, act: act, lo: lo, hi: hi, path: path,
                                                          threads: threads, fromNCHW: fromNCHW)
                                XCTAssertEqual(got.map(\.bitPattern), want.map(\.bitPattern),
                                               "\(t.description) act \(act.rawValue) bias \(b != nil) path \(path.rawValue) layout \(String(describing: layout)) threads \(threads) NCHW in \(fromNCHW)")
                                compared += 1
                            }
                        }
                    }
                }
            }
        }
        XCTAssertGreaterThan(compared, 200)
    }

    /// The residual Add (+ Relu, either operand order) on the blocked shortcut: the channel-
    /// vector kernel's fused residual's bits.
    func testResidualEqualsChannelVector() {
        var compared = 0
        for (i, t) in Self.cases.enumerated() where i % 3 == 0 || t.images > 1 || t.w >= 16 {
            var s = t.shape
            let (x, w, bias) = FP32GemmTests.data(t, seed: UInt64(2500 + i))
            let packed = PackedConvWeights(Tensor(shape: [t.m, t.c, t.kh, t.kw], floats: w), group: 1)
            let count = t.images * t.m * Int(mpq_conv2d_out_h(&s)) * Int(mpq_conv2d_out_w(&s))
            var rng = TestRNG(seed: UInt64(97 + i))
            let shortcut = (0..<count).map { _ in rng.float(-3...3) }
            for (first, relu) in [(Int32(0), Int32(1)), (1, 0), (1, 1)] {
                for path in paths {
                    var want = [Float](repeating: .nan, count: count)
                    shortcut.withUnsafeBufferPointer { ps in
                        var r = mpq_sconv_residual(shortcut: ps.baseAddress, shortcut_first: first, relu: relu)
                        XCTAssertEqual(mpq_sconv2d_f32_cv(path, x, Int32(t.images), &s, packed.channelVector, bias, MPQ_ACT_CLAMP, 0, 6,
                                                          &r, &want, 1), 0)
                    }
                    for threads: Int32 in [1, 2] {
                        let got = Self.runBlocked(t, x: x, cv: packed.channelVector, bias: bias, act: MPQ_ACT_CLAMP, lo: 0, hi: 6,
                                                  shortcut: shortcut, first: first, relu: relu, path: path, threads: threads)
                        XCTAssertEqual(got.map(\.bitPattern), want.map(\.bitPattern),
                                       "\(t.description) first \(first) relu \(relu) path \(path.rawValue) threads \(threads)")
                        compared += 1
                    }
                }
            }
        }
        XCTAssertGreaterThan(compared, 30)
    }

    /// Values where a padding tap skipped instead of multiplied would change bits: inputs of
    /// +-0 and tiny magnitudes, weights of +-0, tiny (products underflow to +-0, so partial
    /// sums become -0 and a later fmaf(w >= +0, +0, -0) turns them +0), infinite and NaN
    /// (w * padding = NaN). The patch holds +0 where today's padded copy does: same bits.
    func testSignedZerosUnderflowAndNonFiniteWeights() {
        let xs: [Float] = [0, -0.0, 1e-30, -1e-30, 1, -1, 0, -0.0]
        let ws: [Float] = [-0.0, 0, 1e-20, -1e-20, -1e-20, 1e-20, -0.0, 1]
        var rng = TestRNG(seed: 7)
        var compared = 0, negativeZeros = 0
        for (i, t) in [Case(c: 16, h: 5, w: 5, m: 16), Case(c: 3, h: 9, w: 20, m: 17, pads: (1, 2, 0, 1)),
                       Case(c: 8, h: 18, w: 36, m: 16, stride: (2, 2)), Case(images: 2, c: 20, h: 4, w: 6, m: 40)].enumerated() {
            var s = t.shape
            let count = t.images * t.m * Int(mpq_conv2d_out_h(&s)) * Int(mpq_conv2d_out_w(&s))
            let x = (0..<t.images * t.c * t.h * t.w).map { _ in xs[Int(rng.next() % UInt64(xs.count))] }
            for nonFinite in [false, true] {
                var w = (0..<t.m * t.k).map { _ in ws[Int(rng.next() % UInt64(ws.count))] }
                if nonFinite { for j in stride(from: i, to: w.count, by: 29) { w[j] = j % 2 == 0 ? .infinity : .nan } }
                let packed = PackedConvWeights(Tensor(shape: [t.m, t.c, t.kh, t.kw], floats: w), group: 1)
                for path in paths {
                    var want = [Float](repeating: .nan, count: count)
                    XCTAssertEqual(mpq_sconv2d_f32_cv(path, x, Int32(t.images), &s, packed.channelVector, nil, MPQ_ACT_NONE, 0, 0, nil,
                                                      &want, 1), 0)
                    for fromNCHW in [false, true] {
                        let got = Self.runBlocked(t, x: x, cv: packed.channelVector, bias: nil, act: MPQ_ACT_NONE, lo: 0, hi: 0, path: path,
                                                  threads: 1, fromNCHW: fromNCHW)
                        XCTAssertEqual(got.map(\.bitPattern), want.map(\.bitPattern),
                                       "\(t.description) nonFinite \(nonFinite) path \(path.rawValue) NCHW in \(fromNCHW)")
                    }
                    negativeZeros += want.filter { $0.bitPattern == (-0.0 as Float).bitPattern }.count
                    compared += 1
                }
            }
        }
        XCTAssertGreaterThan(compared, 7)
        XCTAssertGreaterThan(negativeZeros, 20, "the cases make -0 sums")
    }

    /// The padding-tap skip's guard (s35, sconv_blocked_skip.c): flat mode on the AVX-512 path
    /// skips taps on the zero padding only where that cannot change a bit. Two kinds of data
    /// where skipping them would (checked here against a scalar chain that skips them):
    /// weights the guard accepts with inputs of +-0 and the least subnormal (products round to
    /// -0, so partial sums are -0 and the reference's padding taps turn them +0: the input scan
    /// must refuse), and ordinary inputs with infinite and NaN weights (the reference's padding
    /// taps give NaN: the weights' flag must refuse). Whole images per thread and one image over
    /// two threads (the per-image guard taken before the split), a block of 40 channels.
    func testSkippedPaddingTapsOnlyUnderTheGuard() throws {
        guard mpq_kernel_path_available(MPQ_PATH_VNNI) != 0 else { throw XCTSkip("needs the AVX-512 path") }
        let tiny = Float.leastNonzeroMagnitude
        var rng = TestRNG(seed: 35)
        var differing = 0
        for t in [Case(images: 2, c: 16, h: 6, w: 6, m: 40), Case(c: 20, h: 7, w: 9, m: 16, pads: (1, 2, 0, 1)),
                  Case(c: 20, h: 18, w: 24, m: 40)] {
            var s = t.shape
            let count = t.images * t.m * Int(mpq_conv2d_out_h(&s)) * Int(mpq_conv2d_out_w(&s))
            for kind in ["subnormal inputs", "non-finite weights"] {
                let subnormal = kind == "subnormal inputs"
                let x = (0..<t.images * t.c * t.h * t.w).map { _ in
                    subnormal ? [0, -0.0, -tiny, tiny, -tiny][Int(rng.next() % 5)] : rng.float(-1...1)
                }
                var w = (0..<t.m * t.k).map { _ in [Float(0.25), 0.5, -0.25, 0][Int(rng.next() % 4)] }
                if !subnormal { for j in stride(from: 3, to: w.count, by: 23) { w[j] = j % 2 == 0 ? .infinity : .nan } }
                let packed = PackedConvWeights(Tensor(shape: [t.m, t.c, t.kh, t.kw], floats: w), group: 1)
                var want = [Float](repeating: .nan, count: count)
                XCTAssertEqual(mpq_sconv2d_f32_cv(MPQ_PATH_REFERENCE, x, Int32(t.images), &s, packed.channelVector, nil, MPQ_ACT_NONE,
                                                  0, 0, nil, &want, 1), 0)
                let skipped = Self.convSkippingPadding(t, x: x, w: w)
                differing += zip(skipped, want).filter { $0.bitPattern != $1.bitPattern }.count
                for threads: Int32 in [1, 2] {
                    let got = Self.runBlocked(t, x: x, cv: packed.channelVector, bias: nil, act: MPQ_ACT_NONE, lo: 0, hi: 0,
                                              path: MPQ_PATH_VNNI, threads: threads)
                    XCTAssertEqual(got.map(\.bitPattern), want.map(\.bitPattern), "\(t.description) \(kind) threads \(threads)")
                }
            }
        }
        XCTAssertGreaterThan(differing, 50, "the data make skipped padding taps change bits")
    }

    /// Since s36 an image that passes the guard reads itself (no padded copy) while one that
    /// fails it reads the padded copy with every tap: two images, the second with subnormal
    /// inputs, split over 3 threads (one image per unit) and over 1-2 (whole images). Reading
    /// the image itself where the copy is due, or skipping on the failing image, changes bits.
    func testTameAndUntameImagesInOneCall() throws {
        guard mpq_kernel_path_available(MPQ_PATH_VNNI) != 0 else { throw XCTSkip("needs the AVX-512 path") }
        let tiny = Float.leastNonzeroMagnitude
        var rng = TestRNG(seed: 36)
        // (The third: rows of 40 pixels, skipped since s36 at any width; the failing image's
        // padded copy is grown only then. The fourth: 16 output channels, skipped since s37.)
        for t in [Case(images: 2, c: 16, h: 6, w: 6, m: 40), Case(images: 2, c: 20, h: 18, w: 24, m: 40, pads: (1, 2, 0, 1)),
                  Case(images: 2, c: 20, h: 9, w: 40, m: 40), Case(images: 2, c: 16, h: 7, w: 36, m: 16)] {
            var s = t.shape
            let per = t.c * t.h * t.w
            let x = (0..<t.images * per).map { i in
                i < per ? rng.float(-1...1) : [0, -0.0, -tiny, tiny, -tiny][Int(rng.next() % 5)]
            }
            let w = (0..<t.m * t.k).map { _ in [Float(0.25), 0.5, -0.25, 0][Int(rng.next() % 4)] }
            let packed = PackedConvWeights(Tensor(shape: [t.m, t.c, t.kh, t.kw], floats: w), group: 1)
            var want = [Float](repeating: .nan, count: t.images * t.m * Int(mpq_conv2d_out_h(&s)) * Int(mpq_conv2d_out_w(&s)))
            XCTAssertEqual(mpq_sconv2d_f32_cv(MPQ_PATH_REFERENCE, x, Int32(t.images), &s, packed.channelVector, nil, MPQ_ACT_NONE,
                                              0, 0, nil, &want, 1), 0)
            XCTAssertNotEqual(Self.convSkippingPadding(t, x: x, w: w).map(\.bitPattern), want.map(\.bitPattern),
                              "the second image's data make skipped taps change bits")
            for threads: Int32 in [1, 2, 3] {
                let got = Self.runBlocked(t, x: x, cv: packed.channelVector, bias: nil, act: MPQ_ACT_NONE, lo: 0, hi: 0,
                                          path: MPQ_PATH_VNNI, threads: threads)
                XCTAssertEqual(got.map(\.bitPattern), want.map(\.bitPattern), "\(t.description) threads \(threads)")
            }
        }
    }

    /// One geometry, two Convs on one thread: weights the guard accepts (rows of 24 pixels:
    /// flat mode, padding skipped) and the same with one weight of 1e-20 (row mode, every
    /// tap), alternated. The per-thread tap tables differ between the modes; a table kept
    /// by geometry alone gave the second Conv the first one's offsets (every output wrong).
    func testOneGeometryInBothModes() throws {
        guard mpq_kernel_path_available(MPQ_PATH_VNNI) != 0 else { throw XCTSkip("needs the AVX-512 path") }
        let t = Case(c: 20, h: 18, w: 24, m: 40)
        var s = t.shape
        let (x, w, bias) = FP32GemmTests.data(t, seed: 3535)
        var untame = w
        untame[7] = 1e-20
        let count = t.m * Int(mpq_conv2d_out_h(&s)) * Int(mpq_conv2d_out_w(&s))
        for weights in [w, untame, w, untame] {
            let packed = PackedConvWeights(Tensor(shape: [t.m, t.c, t.kh, t.kw], floats: weights), group: 1)
            var want = [Float](repeating: .nan, count: count)
            XCTAssertEqual(mpq_sconv2d_f32_cv(MPQ_PATH_VNNI, x, 1, &s, packed.channelVector, bias, MPQ_ACT_NONE, 0, 0, nil, &want, 1), 0)
            let got = Self.runBlocked(t, x: x, cv: packed.channelVector, bias: bias, act: MPQ_ACT_NONE, lo: 0, hi: 0,
                                      path: MPQ_PATH_VNNI, threads: 1)
            XCTAssertEqual(got.map(\.bitPattern), want.map(\.bitPattern), "tame weights \(weights == w)")
        }
    }

    /// Since s36 the input guard scans only what pixels with clipped taps read (rows and
    /// columns near the edges; the rest keep every tap). Subnormal inputs in one region at a
    /// time, ordinary values elsewhere: in an edge region the guard must trip (skipping there
    /// changes bits, shown against the skipping scalar chain), in the interior it need not.
    func testGuardScansWhatClippedPixelsRead() throws {
        guard mpq_kernel_path_available(MPQ_PATH_VNNI) != 0 else { throw XCTSkip("needs the AVX-512 path") }
        let tiny = Float.leastNonzeroMagnitude
        var rng = TestRNG(seed: 3636)
        var differing: [String: Int] = [:]
        for t in [Case(c: 20, h: 18, w: 24, m: 40), Case(c: 16, h: 9, w: 11, m: 40, pads: (1, 2, 0, 1)),
                  Case(c: 17, h: 13, w: 12, m: 24, stride: (2, 2))] {
            var s = t.shape
            let regions: [(String, (Int, Int) -> Bool)] = [
                ("top", { r, _ in r < 2 }), ("bottom", { r, _ in r >= t.h - 2 }),
                ("left", { _, c in c < 2 }), ("right", { _, c in c >= t.w - 2 }),
                ("interior", { r, c in r >= 3 && r < t.h - 3 && c >= 3 && c < t.w - 3 }),
            ]
            let w = (0..<t.m * t.k).map { _ in [Float(0.25), 0.5, -0.25, 0][Int(rng.next() % 4)] }
            let packed = PackedConvWeights(Tensor(shape: [t.m, t.c, t.kh, t.kw], floats: w), group: 1)
            for (name, inside) in regions {
                let x = (0..<t.c * t.h * t.w).map { i in
                    inside(i / t.w % t.h, i % t.w) ? [0, -0.0, -tiny, tiny, -tiny][Int(rng.next() % 5)] : rng.float(-1...1)
                }
                var want = [Float](repeating: .nan, count: t.m * Int(mpq_conv2d_out_h(&s)) * Int(mpq_conv2d_out_w(&s)))
                XCTAssertEqual(mpq_sconv2d_f32_cv(MPQ_PATH_REFERENCE, x, 1, &s, packed.channelVector, nil, MPQ_ACT_NONE, 0, 0, nil,
                                                  &want, 1), 0)
                differing[name, default: 0] += zip(Self.convSkippingPadding(t, x: x, w: w), want)
                    .filter { $0.bitPattern != $1.bitPattern }.count
                for threads: Int32 in [1, 2] {
                    let got = Self.runBlocked(t, x: x, cv: packed.channelVector, bias: nil, act: MPQ_ACT_NONE, lo: 0, hi: 0,
                                              path: MPQ_PATH_VNNI, threads: threads)
                    XCTAssertEqual(got.map(\.bitPattern), want.map(\.bitPattern), "\(t.description) \(name) threads \(threads)")
                }
            }
        }
        for name in ["top", "bottom", "left", "right"] {
            XCTAssertGreaterThan(differing[name, default: 0], 0, "subnormals in the \(name) region make skipped taps change bits")
        }
        XCTAssertEqual(differing["interior"], 0, "the interior's pixels keep every tap")
    }

    /// The guard's scan (`mpq_f32_tame`) on every path: one offending value anywhere in
    /// 1-40 floats (the vector loop's tail included) flips it; +-0, 2^-50 itself, large
    /// values and, unless finiteness is asked, infinities and NaN pass.
    func testTameScanOnEveryPath() {
        let offending: [(Float, Bool)] = [(Float.leastNonzeroMagnitude, false), (-0x1p-51, false), (-Float.leastNormalMagnitude, false),
                                          (.infinity, true), (-.infinity, true), (.nan, true)]
        for path in paths {
            for n in [1, 15, 16, 17, 40] {
                let fine = (0..<n).map { i in [Float(0), -0.0, 0x1p-50, -3, 1e30][i % 5] }
                for finite: Int32 in [0, 1] {
                    XCTAssertEqual(mpq_f32_tame(path, fine, n, finite), 1, "path \(path.rawValue) n \(n)")
                }
                for at in [0, n / 2, n - 1] {
                    for (v, onlyFinite) in offending {
                        var x = fine
                        x[at] = v
                        for finite: Int32 in [0, 1] {
                            let want: Int32 = onlyFinite && finite == 0 ? 1 : 0
                            XCTAssertEqual(mpq_f32_tame(path, x, n, finite), want, "path \(path.rawValue) n \(n) at \(at) value \(v) finite \(finite)")
                        }
                    }
                }
            }
        }
    }

    /// The scalar chain with the taps on padding left out (each output: fmaf over (c, kh, kw)
    /// in order from +0, taps outside the image skipped).
    static func convSkippingPadding(_ t: Case, x: [Float], w: [Float]) -> [Float] {
        var s = t.shape
        let oh = Int(mpq_conv2d_out_h(&s)), ow = Int(mpq_conv2d_out_w(&s))
        var y = [Float](repeating: 0, count: t.images * t.m * oh * ow)
        for n in 0..<t.images {
            for m in 0..<t.m {
                for r in 0..<oh {
                    for q in 0..<ow {
                        var acc: Float = 0
                        for c in 0..<t.c {
                            for a in 0..<t.kh {
                                for b in 0..<t.kw {
                                    let ih = r * t.stride.0 - t.pads.0 + a * t.dilation.0, iw = q * t.stride.1 - t.pads.1 + b * t.dilation.1
                                    guard ih >= 0, ih < t.h, iw >= 0, iw < t.w else { continue }
                                    acc = acc.addingProduct(w[((m * t.c + c) * t.kh + a) * t.kw + b], x[((n * t.c + c) * t.h + ih) * t.w + iw])
                                }
                            }
                        }
                        y[((n * t.m + m) * oh + r) * ow + q] = acc
                    }
                }
            }
        }
        return y
    }

    /// Groups and panel-layout weights are refused.
    func testArgumentChecks() {
        var grouped = Case(c: 8, h: 4, w: 4, m: 8, group: 2).shape
        XCTAssertEqual(mpq_sconv2d_f32_blocked_applies(&grouped), 0)
        let t = Case(c: 16, h: 8, w: 8, m: 16)
        var s = t.shape
        let (x, w, _) = FP32GemmTests.data(t, seed: 5)
        let packed = PackedConvWeights(Tensor(shape: [t.m, t.c, t.kh, t.kw], floats: w), group: 1)
        var y = [Float](repeating: 0, count: 16 * 64)
        XCTAssertEqual(mpq_sconv2d_f32_blocked(MPQ_PATH_REFERENCE, x, 1, &s, packed.pointer, nil, MPQ_ACT_NONE, 0, 0, nil, &y, 1), -1)
        XCTAssertEqual(mpq_sconv2d_f32_blocked(MPQ_PATH_REFERENCE, x, 1, &grouped, packed.channelVector, nil, MPQ_ACT_NONE, 0, 0, nil, &y, 1), -1)
    }
}
