import CKernels
import XCTest
import ONNX
@testable import Kernels

/// The channel-vector FP32 Conv for small planes (`mpq_sconv2d_f32_cv`, sconv_cv*.c): the
/// same FMA chain per output as the packed path, so its bits on every path (AVX-512 tile, AVX2
/// tile (s21) and scalar reference tile), thread count, epilogue and fused residual Add, over odd widths,
/// strides 1-3, pads on some sides, dilation, groups, unpadded Convs read in place, batches,
/// and output-channel tails around the 16-lane vector and the 64-channel block.
final class FP32ChannelVectorTests: XCTestCase {
    typealias Case = FP32GemmTests.Case

    static let cases: [Case] = [
        Case(c: 48, h: 8, w: 8, m: 48), Case(c: 64, h: 4, w: 4, m: 64), Case(c: 32, h: 16, w: 16, m: 48, stride: (2, 2)),
        Case(c: 48, h: 8, w: 8, m: 64, stride: (2, 2)), Case(images: 2, c: 16, h: 4, w: 3, m: 23),
        Case(c: 20, h: 6, w: 6, m: 13), Case(c: 112, h: 8, w: 8, m: 65), Case(c: 9, h: 2, w: 2, m: 130, kh: 1, kw: 1, pads: (0, 0, 0, 0)),
        Case(c: 12, h: 5, w: 5, m: 31), Case(images: 3, c: 8, h: 3, w: 3, m: 20, group: 2),
        Case(c: 16, h: 4, w: 4, m: 1, kh: 1, kw: 1, pads: (0, 0, 0, 0)), Case(c: 24, h: 7, w: 2, m: 19, stride: (1, 2)),
        Case(c: 5, h: 9, w: 11, m: 17, dilation: (2, 3)), Case(c: 7, h: 13, w: 9, m: 33, stride: (2, 2), pads: (2, 1, 0, 2)),
        Case(images: 4, c: 16, h: 16, w: 16, m: 32), Case(c: 3, h: 15, w: 17, m: 16, kh: 3, kw: 3, stride: (2, 2), pads: (1, 1, 1, 1)),
        Case(c: 10, h: 11, w: 7, m: 80, kh: 1, kw: 1, stride: (2, 2), pads: (0, 0, 0, 0)),
        Case(c: 6, h: 9, w: 10, m: 15, kh: 5, kw: 3, stride: (3, 1), pads: (2, 1, 2, 1), group: 3),
        Case(images: 2, c: 64, h: 4, w: 4, m: 128, stride: (2, 2)),
        // 24-channel tiles on AVX2 (a vector and the next one's 1-8 rows; s22), K in 2-3 blocks.
        Case(c: 16, h: 20, w: 18, m: 24, stride: (2, 2)), Case(images: 2, c: 40, h: 9, w: 9, m: 56),
        // A plane over the AVX2 part kernel's 2048-pixel slices (2 slices, K in 2 blocks).
        Case(c: 16, h: 98, w: 100, m: 32, stride: (2, 2)),
        // One image over 2-3 threads in contiguous unit ranges (2 blocks x 4-5 pixel chunks),
        // pads different on every side.
        Case(c: 24, h: 14, w: 13, m: 128, pads: (1, 0, 2, 1)),
        // Planes of 1-3 pixels: tiles over two weights blocks (5-8 vectors).
        Case(c: 40, h: 2, w: 2, m: 200, stride: (2, 2)), Case(images: 2, c: 32, h: 1, w: 3, m: 100, kh: 1, kw: 3, pads: (0, 1, 0, 1)),
        Case(c: 16, h: 1, w: 1, m: 128, kh: 1, kw: 1, pads: (0, 0, 0, 0)), Case(c: 24, h: 1, w: 2, m: 96, kh: 1, kw: 2, pads: (0, 0, 0, 0)),
        // Batches of small planes with 3-5 MB of weights: (weights block, image) units, blocks
        // outermost (`blocks_over_images`, for L2s up to 4 MiB per core): padded images together,
        // unpadded read in place, two-block tiles, 17 images (two groups of images).
        Case(images: 3, c: 1024, h: 2, w: 2, m: 128), Case(images: 2, c: 8192, h: 3, w: 3, m: 80, kh: 1, kw: 1, stride: (2, 2), pads: (0, 0, 0, 0)),
        Case(images: 3, c: 4096, h: 1, w: 1, m: 130, kh: 1, kw: 1, pads: (0, 0, 0, 0)), Case(images: 17, c: 1024, h: 2, w: 2, m: 65),
    ]

    var paths: [mpq_kernel_path] {
        [MPQ_PATH_REFERENCE] + [MPQ_PATH_AVX2, MPQ_PATH_VNNI].filter { mpq_kernel_path_available($0) != 0 }
    }

    static func cvWeights(_ packed: PackedConvWeights) -> UnsafeMutableRawPointer { packed.channelVector }

    /// Both weights layouts (rows for the AVX-512 tile, sliced for the AVX2 part kernel),
    /// whichever the host packs by default.
    static let layouts: [Int32] = [Int32(MPQ_SCONV_CV_ROWS), Int32(MPQ_SCONV_CV_SLICED)]

    /// Against `mpq_sconv2d_f32_packed` (the packed tiles' chain), bit for bit, on both layouts.
    func testChannelVectorEqualsPackedPath() {
        var compared = 0
        for (i, t) in Self.cases.enumerated() {
            var s = t.shape
            XCTAssertNotEqual(mpq_sconv2d_f32_cv_applies(&s), 0, t.description)
            let (x, w, bias) = FP32GemmTests.data(t, seed: UInt64(900 + i))
            let packed = PackedConvWeights(Tensor(shape: [t.m, t.c / t.group, t.kh, t.kw], floats: w), group: t.group)
            let count = t.images * t.m * Int(mpq_conv2d_out_h(&s)) * Int(mpq_conv2d_out_w(&s))
            for layout in Self.layouts {
                let cv = packed.channelVector(layout: layout)
                defer { cv.deallocate() }
                for (act, lo, hi, b) in [(MPQ_ACT_NONE, Float(0), Float(0), nil as [Float]?), (MPQ_ACT_NONE, 0, 0, bias),
                                         (MPQ_ACT_CLAMP, 0, 6, bias), (MPQ_ACT_CLAMP, -0.5, 0.25, nil), (MPQ_ACT_SILU, 0, 0, bias)] {
                    for path in paths {
                        for threads: Int32 in [1, 2, 3] {
                            var want = [Float](repeating: .nan, count: count), got = want
                            XCTAssertEqual(mpq_sconv2d_f32_packed(path, x, Int32(t.images), &s, packed.pointer, b, act, lo, hi, &want, threads), 0)
                            XCTAssertEqual(mpq_sconv2d_f32_cv(path, x, Int32(t.images), &s, cv, b, act, lo, hi, nil, &got, threads), 0)
                            XCTAssertEqual(got.map(\.bitPattern), want.map(\.bitPattern),
                                           "\(t.description) layout \(layout) act \(act.rawValue) bias \(b != nil) path \(path.rawValue) threads \(threads)")
                            compared += 1
                        }
                    }
                }
            }
        }
        XCTAssertGreaterThan(compared, 400)
        print("FP32 channel-vector tiles compared on paths \(paths.map { String(cString: mpq_kernel_path_name(mpq_resolve_kernel_path($0))) })")
    }

    /// The sliced layout holds the rows' numbers rearranged: per block of 64 output channels
    /// and K block of 128, each 16-channel vector's weights contiguous over k (a packing that
    /// swapped two k or two channels would fail here even where a test product hides it).
    /// Shapes: K across the 128 block (27, 128, 300), one, two and a partial 64-channel block,
    /// two groups.
    func testSlicedLayoutIsTheRowsRearranged() {
        for (m, k, group) in [(16, 27, 1), (64, 128, 1), (136, 300, 1), (48, 200, 2)] {
            let w = (0..<m * k).map { Float($0) }
            let packed = PackedConvWeights(Tensor(shape: [m, k, 1, 1], floats: w), group: group)
            let rows = packed.channelVector(layout: Int32(MPQ_SCONV_CV_ROWS))
            let sliced = packed.channelVector(layout: Int32(MPQ_SCONV_CV_SLICED))
            defer { rows.deallocate(); sliced.deallocate() }
            let hr = rows.assumingMemoryBound(to: mpq_sconv_weights_header.self).pointee
            let hs = sliced.assumingMemoryBound(to: mpq_sconv_weights_header.self).pointee
            XCTAssertEqual(hr.cv_layout, Int32(MPQ_SCONV_CV_ROWS))
            XCTAssertEqual(hs.cv_layout, Int32(MPQ_SCONV_CV_SLICED))
            let kg = Int(hr.k), mg = Int(hr.mg), blocks = (mg + 63) / 64
            let r = (rows + 64).assumingMemoryBound(to: Float.self), s = (sliced + 64).assumingMemoryBound(to: Float.self)
            var misplaced = 0, compared = 0
            for g in 0..<group {
                for b in 0..<blocks {
                    let width = min(64, (mg - 64 * b + 15) / 16 * 16), base = (g * blocks + b) * kg * 64
                    for kk in 0..<kg {
                        let k0 = kk / 128 * 128, kb = min(128, kg - k0)
                        for i in 0..<width {
                            let at = base + k0 * width + ((i / 16) * kb + kk - k0) * 16 + i % 16
                            if s[at] != r[base + kk * width + i] { misplaced += 1 }
                            compared += 1
                        }
                    }
                }
            }
            XCTAssertEqual(misplaced, 0, "m\(m) k\(k) group\(group): \(misplaced) of \(compared) weights misplaced")
            // Rows: output channel 1's first weight (k = 0) is w[1 * kg], at column 1 of row 0.
            XCTAssertEqual(r[1], Float(kg), "m\(m) k\(k) group\(group)")
        }
    }

    /// The fused residual Add (+ Relu, either operand order) gives `mpq_sconv2d_f32_residual`'s
    /// bits (the packed path's Conv, then the separate Add's call).
    func testResidualEqualsPackedPathThenAdd() {
        var compared = 0
        for (i, t) in Self.cases.enumerated() where i % 3 == 0 || t.images > 1 {
            var s = t.shape
            let (x, w, bias) = FP32GemmTests.data(t, seed: UInt64(1300 + i))
            let packed = PackedConvWeights(Tensor(shape: [t.m, t.c / t.group, t.kh, t.kw], floats: w), group: t.group)
            let count = t.images * t.m * Int(mpq_conv2d_out_h(&s)) * Int(mpq_conv2d_out_w(&s))
            var rng = TestRNG(seed: UInt64(77 + i))
            let shortcut = (0..<count).map { _ in rng.float(-3...3) }
            for (first, relu) in [(0, 1), (1, 0), (1, 1)] {
                for path in paths {
                    for threads: Int32 in [1, 2] {
                        var want = [Float](repeating: .nan, count: count), got = want
                        shortcut.withUnsafeBufferPointer { ps in
                            var r = mpq_sconv_residual(shortcut: ps.baseAddress, shortcut_first: Int32(first), relu: Int32(relu))
                            XCTAssertEqual(mpq_sconv2d_f32_packed(path, x, Int32(t.images), &s, packed.pointer, bias, MPQ_ACT_CLAMP, 0, 6,
                                                                  &want, threads), 0)
                            let conv = want
                            conv.withUnsafeBufferPointer { pc in
                                mpq_binary_f32(path, 0, Int32(relu), first == 1 ? ps.baseAddress : pc.baseAddress,
                                               first == 1 ? pc.baseAddress : ps.baseAddress, count, &want, 1)
                            }
                            XCTAssertEqual(mpq_sconv2d_f32_cv(path, x, Int32(t.images), &s, Self.cvWeights(packed), bias, MPQ_ACT_CLAMP, 0, 6,
                                                              &r, &got, threads), 0)
                        }
                        XCTAssertEqual(got.map(\.bitPattern), want.map(\.bitPattern),
                                       "\(t.description) first \(first) relu \(relu) path \(path.rawValue) threads \(threads)")
                        compared += 1
                    }
                }
            }
        }
        XCTAssertGreaterThan(compared, 30)
    }

    /// The scalar reference tile against the double-precision convolution (the bound
    /// FP32GemmTests uses), so the bit-equality above is not two equal mistakes.
    func testReferenceMatchesNaiveConv() {
        for (i, t) in Self.cases.enumerated() {
            var s = t.shape
            let (x, w, bias) = FP32GemmTests.data(t, seed: UInt64(1700 + i))
            let packed = PackedConvWeights(Tensor(shape: [t.m, t.c / t.group, t.kh, t.kw], floats: w), group: t.group)
            let count = t.images * t.m * Int(mpq_conv2d_out_h(&s)) * Int(mpq_conv2d_out_w(&s))
            var got = [Float](repeating: .nan, count: count)
            XCTAssertEqual(mpq_sconv2d_f32_cv(MPQ_PATH_REFERENCE, x, Int32(t.images), &s, Self.cvWeights(packed), bias, MPQ_ACT_NONE, 0, 0,
                                              nil, &got, 1), 0)
            let (want, mag) = FP32GemmTests.naive(t, x: x, w: w, bias: bias)
            for o in got.indices where abs(Double(got[o]) - want[o]) > FP32GemmTests.relativeTolerance * mag[o] + FP32GemmTests.absoluteFloor {
                XCTFail("\(t.description) output \(o): \(got[o]) vs naive \(want[o])"); break
            }
        }
    }

    /// Which Convs take it: small output planes on the AVX-512 path, a narrower measured set on
    /// the AVX2 path, none on the reference path; bad weights rejected.
    func testSelectionAndArgumentChecks() {
        var small = Case(c: 16, h: 8, w: 8, m: 16).shape, large = Case(c: 16, h: 64, w: 64, m: 16).shape
        XCTAssertEqual(mpq_sconv2d_f32_cv_preferred(MPQ_PATH_REFERENCE, &small, 16, 1, 1), 0)
        XCTAssertEqual(mpq_sconv2d_f32_cv_preferred(MPQ_PATH_VNNI, &large, 16, 1, 1), 0)
        let env = ProcessInfo.processInfo.environment
        if mpq_kernel_path_available(MPQ_PATH_AVX2) != 0, env["MPQ_FP32_CONV_CV"] != "0", env["MPQ_FP32_CONV_CV_AVX2"] == nil {
            // s22 (sconv_cv.c, cv_preferred_avx2): 16-channel vectors; non-1x1 strided at any
            // size, stride 1 onto up to 56x56; 1x1 strided onto <= 14x14, stride 1 onto <= 7x7
            // or 14x14 narrowing from >= 192 channels to at most half.
            var strided = Case(c: 32, h: 28, w: 28, m: 64, stride: (2, 2)).shape
            var stridedDeep = Case(c: 256, h: 14, w: 14, m: 512, stride: (2, 2)).shape
            var plane28 = Case(c: 64, h: 28, w: 28, m: 64).shape, plane56 = Case(c: 64, h: 56, w: 56, m: 64).shape
            var head = Case(c: 960, h: 7, w: 7, m: 320, kh: 1, kw: 1, pads: (0, 0, 0, 0)).shape
            var project14 = Case(c: 576, h: 14, w: 14, m: 96, kh: 1, kw: 1, pads: (0, 0, 0, 0)).shape
            var expand14 = Case(c: 96, h: 14, w: 14, m: 576, kh: 1, kw: 1, pads: (0, 0, 0, 0)).shape
            var stem112 = Case(c: 3, h: 224, w: 224, m: 32, stride: (2, 2)).shape
            var down28 = Case(c: 64, h: 56, w: 56, m: 128, kh: 1, kw: 1, stride: (2, 2), pads: (0, 0, 0, 0)).shape
            var down7 = Case(c: 256, h: 14, w: 14, m: 512, kh: 1, kw: 1, stride: (2, 2), pads: (0, 0, 0, 0)).shape
            XCTAssertEqual(mpq_sconv2d_f32_cv_preferred(MPQ_PATH_AVX2, &small, 16, 1, 1), 1)
            XCTAssertEqual(mpq_sconv2d_f32_cv_preferred(MPQ_PATH_AVX2, &small, 24, 1, 1), 1)
            XCTAssertEqual(mpq_sconv2d_f32_cv_preferred(MPQ_PATH_AVX2, &small, 28, 1, 1), 0)
            XCTAssertEqual(mpq_sconv2d_f32_cv_preferred(MPQ_PATH_AVX2, &small, 8, 1, 1), 0)
            XCTAssertEqual(mpq_sconv2d_f32_cv_preferred(MPQ_PATH_AVX2, &large, 16, 1, 1), 0)
            XCTAssertEqual(mpq_sconv2d_f32_cv_preferred(MPQ_PATH_AVX2, &strided, 64, 1, 1), 1)
            XCTAssertEqual(mpq_sconv2d_f32_cv_preferred(MPQ_PATH_AVX2, &stridedDeep, 512, 16, 2), 1)
            XCTAssertEqual(mpq_sconv2d_f32_cv_preferred(MPQ_PATH_AVX2, &plane28, 64, 1, 2), 1)
            XCTAssertEqual(mpq_sconv2d_f32_cv_preferred(MPQ_PATH_AVX2, &plane56, 64, 1, 2), 1)
            XCTAssertEqual(mpq_sconv2d_f32_cv_preferred(MPQ_PATH_AVX2, &stem112, 32, 1, 2), 1)
            XCTAssertEqual(mpq_sconv2d_f32_cv_preferred(MPQ_PATH_AVX2, &head, 320, 16, 2), 1)
            XCTAssertEqual(mpq_sconv2d_f32_cv_preferred(MPQ_PATH_AVX2, &project14, 96, 1, 2), 1)
            XCTAssertEqual(mpq_sconv2d_f32_cv_preferred(MPQ_PATH_AVX2, &expand14, 576, 1, 2), 0)
            XCTAssertEqual(mpq_sconv2d_f32_cv_preferred(MPQ_PATH_AVX2, &down28, 128, 1, 2), 0)
            XCTAssertEqual(mpq_sconv2d_f32_cv_preferred(MPQ_PATH_AVX2, &down7, 512, 1, 2), 1)
        }
        if mpq_kernel_path_available(MPQ_PATH_VNNI) != 0, env["MPQ_FP32_CONV_CV"] != "0", env["MPQ_FP32_CONV_CV_PIXELS"] == nil {
            XCTAssertEqual(mpq_sconv2d_f32_cv_preferred(MPQ_PATH_VNNI, &small, 16, 1, 1), 1)
            // 28x28: 3x3 or strided with M a multiple of 16 only; never 1x1 stride 1.
            var mid = Case(c: 16, h: 28, w: 28, m: 32).shape, midStrided = Case(c: 16, h: 56, w: 56, m: 32, stride: (2, 2)).shape
            var midPointwise = Case(c: 16, h: 28, w: 28, m: 32, kh: 1, kw: 1, pads: (0, 0, 0, 0)).shape
            XCTAssertEqual(mpq_sconv2d_f32_cv_preferred(MPQ_PATH_VNNI, &mid, 32, 1, 1), 1)
            XCTAssertEqual(mpq_sconv2d_f32_cv_preferred(MPQ_PATH_VNNI, &midStrided, 32, 1, 1), 1)
            XCTAssertEqual(mpq_sconv2d_f32_cv_preferred(MPQ_PATH_VNNI, &mid, 24, 1, 1), 0)
            XCTAssertEqual(mpq_sconv2d_f32_cv_preferred(MPQ_PATH_VNNI, &midPointwise, 32, 1, 1), 0)
            // 1x1 stride 1 at 14x14: from K = 128 only.
            var expand = Case(c: 64, h: 14, w: 14, m: 384, kh: 1, kw: 1, pads: (0, 0, 0, 0)).shape
            var project = Case(c: 384, h: 14, w: 14, m: 64, kh: 1, kw: 1, pads: (0, 0, 0, 0)).shape
            XCTAssertEqual(mpq_sconv2d_f32_cv_preferred(MPQ_PATH_VNNI, &expand, 384, 1, 1), 0)
            XCTAssertEqual(mpq_sconv2d_f32_cv_preferred(MPQ_PATH_VNNI, &project, 64, 1, 1), 1)
            // One core, 56x56: 3x3 Convs with 32 or more output channels (a multiple of 16), not 16.
            var wide = Case(c: 64, h: 56, w: 56, m: 64).shape, narrow = Case(c: 16, h: 56, w: 56, m: 16).shape
            XCTAssertEqual(mpq_sconv2d_f32_cv_preferred(MPQ_PATH_VNNI, &wide, 64, 1, 1), 1)
            XCTAssertEqual(mpq_sconv2d_f32_cv_preferred(MPQ_PATH_VNNI, &wide, 48, 1, 1), 1)
            XCTAssertEqual(mpq_sconv2d_f32_cv_preferred(MPQ_PATH_VNNI, &wide, 40, 1, 1), 0)
            XCTAssertEqual(mpq_sconv2d_f32_cv_preferred(MPQ_PATH_VNNI, &narrow, 16, 1, 1), 0)
            // One image on two threads: up to 64x64 for any Conv but 1x1 stride 1; a batch on
            // two threads (one image per thread) keeps the one-core rule.
            var stem = Case(c: 3, h: 64, w: 64, m: 16).shape
            XCTAssertEqual(mpq_sconv2d_f32_cv_preferred(MPQ_PATH_VNNI, &stem, 16, 1, 1), 0)
            XCTAssertEqual(mpq_sconv2d_f32_cv_preferred(MPQ_PATH_VNNI, &stem, 16, 1, 2), 1)
            XCTAssertEqual(mpq_sconv2d_f32_cv_preferred(MPQ_PATH_VNNI, &stem, 16, 16, 2), 0)
            // ResNet's 224x224 stem (112x112 out): on two threads at batch 1 only.
            var stem224 = Case(c: 3, h: 224, w: 224, m: 64, kh: 7, kw: 7, stride: (2, 2), pads: (3, 3, 3, 3)).shape
            XCTAssertEqual(mpq_sconv2d_f32_cv_preferred(MPQ_PATH_VNNI, &stem224, 64, 1, 2), 1)
            XCTAssertEqual(mpq_sconv2d_f32_cv_preferred(MPQ_PATH_VNNI, &stem224, 64, 1, 1), 0)
            XCTAssertEqual(mpq_sconv2d_f32_cv_preferred(MPQ_PATH_VNNI, &stem224, 64, 16, 2), 0)
            XCTAssertEqual(mpq_sconv2d_f32_cv_preferred(MPQ_PATH_VNNI, &midPointwise, 32, 1, 2), 0)
            XCTAssertEqual(mpq_sconv2d_f32_cv_preferred(MPQ_PATH_VNNI, &project, 64, 1, 2), 0)
            XCTAssertEqual(mpq_sconv2d_f32_cv_preferred(MPQ_PATH_VNNI, &project, 64, 2, 2), 1)
            // s15-split: one image on two threads, 1x1 stride 1 on 7x7 with M >= 256 (MobileNetV2's
            // 960 -> 320, 320 -> 1280), not M = 160 and not 14x14.
            if env["MPQ_FP32_CONV_CV_PW_PIXELS"] == nil {
                var head = Case(c: 960, h: 7, w: 7, m: 320, kh: 1, kw: 1, pads: (0, 0, 0, 0)).shape
                var narrow7 = Case(c: 960, h: 7, w: 7, m: 160, kh: 1, kw: 1, pads: (0, 0, 0, 0)).shape
                XCTAssertEqual(mpq_sconv2d_f32_cv_preferred(MPQ_PATH_VNNI, &head, 320, 1, 2), 1)
                XCTAssertEqual(mpq_sconv2d_f32_cv_preferred(MPQ_PATH_VNNI, &narrow7, 160, 1, 2), 0)
                XCTAssertEqual(mpq_sconv2d_f32_cv_preferred(MPQ_PATH_VNNI, &expand, 384, 1, 2), 0)
            }
        }
        let t = Case(c: 16, h: 8, w: 8, m: 16)
        let (x, w, _) = FP32GemmTests.data(t, seed: 5)
        let packed = PackedConvWeights(Tensor(shape: [t.m, t.c, t.kh, t.kw], floats: w), group: 1)
        var y = [Float](repeating: 0, count: t.m * 64)
        // Panel-layout weights are not channel-vector weights.
        XCTAssertEqual(mpq_sconv2d_f32_cv(MPQ_PATH_REFERENCE, x, 1, &small, packed.pointer, nil, MPQ_ACT_NONE, 0, 0, nil, &y, 1), -1)
        var other = Case(c: 8, h: 8, w: 8, m: 16).shape  // K differs
        XCTAssertEqual(mpq_sconv2d_f32_cv(MPQ_PATH_REFERENCE, x, 1, &other, packed.channelVector, nil, MPQ_ACT_NONE, 0, 0, nil, &y, 1), -1)
    }
}
