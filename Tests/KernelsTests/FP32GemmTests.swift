import CKernels
import XCTest
import ONNX
@testable import Kernels

/// mpq's FP32 Conv GEMM (`mpq_sconv2d_f32`, docs/fp32-gemm.md): every path and thread
/// count against the scalar reference bit for bit, the reference against a naive
/// double-precision convolution, the fused epilogue against the unfused one, and the
/// Conv op on it against the OpenBLAS im2col path, over awkward shapes (M, N, K tails
/// around the 6 x 64 tile and the 256-deep K block, groups, strides, pads, dilations).
final class FP32GemmTests: XCTestCase {
    /// Float agreement with a differently ordered sum: |got - want| <= this times the sum
    /// of |w * x| over the dot (its magnitude), plus a floor for dots that cancel to ~0.
    /// K <= 600 here: the error of a float FMA chain is about K * 2^-24 of that magnitude
    /// in the worst case and ~sqrt(K) * 2^-24 in practice, well inside 1e-5.
    static let relativeTolerance = 1e-5
    static let absoluteFloor = 1e-6

    var paths: [mpq_kernel_path] {
        [MPQ_PATH_AUTO] + [MPQ_PATH_AVX2, MPQ_PATH_VNNI].filter { mpq_kernel_path_available($0) != 0 }
    }

    struct Case {
        var images = 1, c = 3, h = 5, w = 7, m = 4, kh = 3, kw = 3
        var stride = (1, 1), pads = (1, 1, 1, 1), dilation = (1, 1), group = 1

        var shape: mpq_conv2d_shape {
            mpq_conv2d_shape(channels: Int32(c), height: Int32(h), width: Int32(w), kernel_h: Int32(kh), kernel_w: Int32(kw),
                             pad_top: Int32(pads.0), pad_left: Int32(pads.1), pad_bottom: Int32(pads.2), pad_right: Int32(pads.3),
                             stride_h: Int32(stride.0), stride_w: Int32(stride.1), dilation_h: Int32(dilation.0),
                             dilation_w: Int32(dilation.1), group: Int32(group))
        }
        var k: Int { c / group * kh * kw }
        var description: String {
            "N\(images) C\(c) \(h)x\(w) M\(m) k\(kh)x\(kw) s\(stride) p\(pads) d\(dilation) g\(group)"
        }
    }

    /// Shapes around the tile edges: M 1-13 (MR 6), pixels 1-135 (NR 64, vector 16),
    /// K past one 256 block (c 30 x 3x3 = 270, 64 x 3x3 = 576), batches whose small maps
    /// are stacked into one GEMM, and the classes the models have.
    static let cases: [Case] = [
        Case(), Case(images: 2, c: 1, h: 1, w: 1, m: 1, kh: 1, kw: 1, pads: (0, 0, 0, 0)),
        Case(c: 4, h: 8, w: 8, m: 13, kh: 1, kw: 1, pads: (0, 0, 0, 0)),
        Case(c: 3, h: 17, w: 19, m: 7, kh: 7, kw: 7, stride: (2, 2), pads: (3, 3, 3, 3)),
        Case(images: 3, c: 30, h: 9, w: 15, m: 12, kh: 3, kw: 3),
        Case(c: 6, h: 13, w: 17, m: 10, stride: (2, 2), pads: (2, 1, 0, 2), group: 2),
        Case(c: 5, h: 9, w: 11, m: 7, dilation: (2, 3)),
        Case(c: 8, h: 3, w: 70, m: 9, kh: 2, kw: 2, pads: (0, 0, 0, 0)),
        Case(images: 2, c: 16, h: 10, w: 13, m: 17, kh: 1, kw: 1, stride: (2, 2), pads: (0, 0, 0, 0)),
        Case(c: 12, h: 6, w: 6, m: 6, kh: 3, kw: 1, stride: (1, 3), pads: (1, 0, 1, 2), group: 3),
        Case(c: 64, h: 11, w: 12, m: 5, kh: 3, kw: 3, stride: (1, 1), pads: (0, 1, 2, 0)),
        Case(c: 2, h: 1, w: 40, m: 3, kh: 1, kw: 5, stride: (1, 2), pads: (0, 2, 0, 2)),
        // Batches of small maps: stacked images as the columns of one GEMM (49 pixels each).
        Case(images: 5, c: 8, h: 7, w: 7, m: 11),
        Case(images: 4, c: 6, h: 13, w: 13, m: 9, kh: 1, kw: 1, stride: (2, 2), pads: (0, 0, 0, 0), group: 3),
    ]

    /// The convolution in double, summed over the taps inside the input, and the sum of
    /// |w * x| per output (the tolerance's scale).
    static func naive(_ t: Case, x: [Float], w: [Float], bias: [Float]?) -> (value: [Double], magnitude: [Double]) {
        let s = t.shape
        let oh = Int(mpq_conv2d_out_h([s])), ow = Int(mpq_conv2d_out_w([s]))
        let cg = t.c / t.group, mg = t.m / t.group
        var y = [Double](repeating: 0, count: t.images * t.m * oh * ow), mag = y
        for img in 0..<t.images {
            for m in 0..<t.m {
                let g = m / mg
                for i in 0..<oh { for j in 0..<ow {
                    var acc = Double(bias?[m] ?? 0), a = abs(acc)
                    for c in 0..<cg { for r in 0..<t.kh { for q in 0..<t.kw {
                        let ih = i * t.stride.0 - t.pads.0 + r * t.dilation.0, iw = j * t.stride.1 - t.pads.1 + q * t.dilation.1
                        guard ih >= 0, ih < t.h, iw >= 0, iw < t.w else { continue }
                        let p = Double(w[((m * cg + c) * t.kh + r) * t.kw + q]) * Double(x[((img * t.c + g * cg + c) * t.h + ih) * t.w + iw])
                        acc += p; a += abs(p)
                    } } }
                    let o = ((img * t.m + m) * oh + i) * ow + j
                    y[o] = acc; mag[o] = a
                } }
            }
        }
        return (y, mag)
    }

    static func run(_ t: Case, x: [Float], packed: PackedConvWeights, bias: [Float]?, act: mpq_activation = MPQ_ACT_NONE,
                    lo: Float = 0, hi: Float = 0, path: mpq_kernel_path, threads: Int32) -> [Float] {
        var s = t.shape
        let count = t.images * t.m * Int(mpq_conv2d_out_h(&s)) * Int(mpq_conv2d_out_w(&s))
        var y = [Float](repeating: .nan, count: count)
        let rc = mpq_sconv2d_f32(path, x, Int32(t.images), &s, packed.pointer, bias, act, lo, hi, &y, threads)
        XCTAssertEqual(rc, 0, t.description)
        return y
    }

    static func data(_ t: Case, seed: UInt64) -> (x: [Float], w: [Float], bias: [Float]) {
        var rng = TestRNG(seed: seed)
        let x = (0..<t.images * t.c * t.h * t.w).map { _ in rng.float(-2...2) }
        let w = (0..<t.m * t.k).map { _ in rng.float(-1...1) }
        let bias = (0..<t.m).map { i in i % 4 == 1 ? 0 : rng.float(-1...1) }
        return (x, w, bias)
    }

    func testEveryPathAndThreadCountEqualsReferenceAndReferenceMatchesNaiveConv() {
        var covered = Set<String>()
        for (i, t) in Self.cases.enumerated() {
            let (x, w, _) = Self.data(t, seed: UInt64(i + 1))
            let packed = PackedConvWeights(Tensor(shape: [t.m, t.c / t.group, t.kh, t.kw], floats: w), group: t.group)
            let ref = Self.run(t, x: x, packed: packed, bias: nil, path: MPQ_PATH_REFERENCE, threads: 1)
            let (want, mag) = Self.naive(t, x: x, w: w, bias: nil)
            for o in ref.indices {
                let err = abs(Double(ref[o]) - want[o])
                XCTAssertLessThanOrEqual(err, Self.relativeTolerance * mag[o] + Self.absoluteFloor,
                                         "\(t.description) output \(o): \(ref[o]) vs naive \(want[o])")
                if err > Self.relativeTolerance * mag[o] + Self.absoluteFloor { break }
            }
            for path in paths {
                for threads: Int32 in [1, 2, 3] {
                    let got = Self.run(t, x: x, packed: packed, bias: nil, path: path, threads: threads)
                    XCTAssertEqual(got.map(\.bitPattern), ref.map(\.bitPattern), "\(t.description) path \(path.rawValue) threads \(threads)")
                    covered.insert(String(cString: mpq_kernel_path_name(mpq_resolve_kernel_path(path))))
                }
            }
        }
        print("FP32 Conv GEMM paths covered: \(covered.sorted())")
    }

    /// The direct path (stride 1, no packing) gives the packed path's bits on every path,
    /// thread count and epilogue: the same FMA chain on the same values. The stride-1
    /// cases cover pads on some sides only, dilation, groups, 1x1 kernels read in place and
    /// batches; the first also runs with 64 channels so K blocks of the packed path differ.
    /// The 1x1 at 112x112 writes 2.5 MB (s13: blocks of two weight panels over every column,
    /// one image split by weight panel; 50 channels = 9 panels, the last partial). The last
    /// extra case is the packing bug s21 fixed (sgemm_pack.c, fill_row).
    func testDirectPathEqualsPackedPath() {
        var compared = 0
        let extra = [Case(images: 2, c: 16, h: 20, w: 21, m: 16), Case(c: 64, h: 7, w: 7, m: 20),
                     Case(images: 3, c: 24, h: 9, w: 17, m: 40, group: 2), Case(c: 32, h: 12, w: 12, m: 70, kh: 1, kw: 1, pads: (0, 0, 0, 0)),
                     Case(c: 16, h: 112, w: 112, m: 50, kh: 1, kw: 1, pads: (0, 0, 0, 0)),
                     // s21 regression (random-geometry harness): right padding as wide as the
                     // kernel, so the second 64-column panel starts at output column 12 of 13,
                     // left of which the kw = 2 taps already leave the row; the packed path's
                     // packing zeroed the two columns before that stretch, in the panel's
                     // previous row (wrong outputs at flat positions 62-63).
                     Case(c: 13, h: 11, w: 11, m: 7, pads: (0, 1, 3, 3))]
        for (i, t) in (Self.cases + extra).enumerated() {
            var s = t.shape
            guard mpq_sconv2d_f32_direct_applies(&s) != 0 else { continue }
            let (x, w, bias) = Self.data(t, seed: UInt64(300 + i))
            let packed = PackedConvWeights(Tensor(shape: [t.m, t.c / t.group, t.kh, t.kw], floats: w), group: t.group)
            let count = t.images * t.m * Int(mpq_conv2d_out_h(&s)) * Int(mpq_conv2d_out_w(&s))
            for (act, lo, hi) in [(MPQ_ACT_NONE, Float(0), Float(0)), (MPQ_ACT_CLAMP, 0, 6), (MPQ_ACT_SILU, 0, 0)] {
                for path in [MPQ_PATH_REFERENCE] + paths {
                    for threads: Int32 in [1, 2, 3] {
                        let b: [Float]? = act == MPQ_ACT_NONE ? nil : bias
                        var want = [Float](repeating: .nan, count: count), got = want
                        XCTAssertEqual(mpq_sconv2d_f32_packed(path, x, Int32(t.images), &s, packed.pointer, b, act, lo, hi, &want, threads), 0)
                        XCTAssertEqual(mpq_sconv2d_f32_direct(path, x, Int32(t.images), &s, packed.pointer, b, act, lo, hi, &got, threads), 0)
                        XCTAssertEqual(got.map(\.bitPattern), want.map(\.bitPattern),
                                       "\(t.description) act \(act.rawValue) path \(path.rawValue) threads \(threads)")
                        compared += 1
                    }
                }
            }
        }
        XCTAssertGreaterThan(compared, 100)
    }

    /// Small planes (8x8, 4x4 and below, strided, batched, grouped, M not a multiple of 6):
    /// the direct path's narrow column tiles, where the AVX-512 path runs tall tiles of 2-4
    /// weight panels (sgemm_direct_tall_avx512.c) and splits output channels by whole tall
    /// tiles, give the packed path's 6-row tiles' bits on every path, thread count and
    /// epilogue (same FMA chain per output), and the reference stays within the
    /// double-precision bound of the naive convolution.
    func testSmallPlaneTallTilesEqualPackedPath() {
        let small = [Case(c: 48, h: 8, w: 8, m: 48), Case(c: 64, h: 4, w: 4, m: 64), Case(c: 32, h: 16, w: 16, m: 48, stride: (2, 2)),
                     Case(c: 48, h: 8, w: 8, m: 64, stride: (2, 2)), Case(images: 2, c: 16, h: 4, w: 3, m: 23),
                     Case(c: 20, h: 6, w: 6, m: 13), Case(c: 112, h: 8, w: 8, m: 64), Case(c: 9, h: 2, w: 2, m: 130, kh: 1, kw: 1, pads: (0, 0, 0, 0)),
                     Case(c: 12, h: 5, w: 5, m: 31, group: 1), Case(images: 3, c: 8, h: 3, w: 3, m: 20, group: 2),
                     Case(c: 16, h: 4, w: 4, m: 25, kh: 1, kw: 1, pads: (0, 0, 0, 0)), Case(c: 24, h: 7, w: 2, m: 19, stride: (1, 2))]
        var compared = 0
        for (i, t) in small.enumerated() {
            var s = t.shape
            XCTAssertNotEqual(mpq_sconv2d_f32_direct_applies(&s), 0, t.description)
            let (x, w, bias) = Self.data(t, seed: UInt64(500 + i))
            let packed = PackedConvWeights(Tensor(shape: [t.m, t.c / t.group, t.kh, t.kw], floats: w), group: t.group)
            let count = t.images * t.m * Int(mpq_conv2d_out_h(&s)) * Int(mpq_conv2d_out_w(&s))
            let ref = Self.run(t, x: x, packed: packed, bias: bias, path: MPQ_PATH_REFERENCE, threads: 1)
            let (exact, mag) = Self.naive(t, x: x, w: w, bias: bias)
            for o in ref.indices where abs(Double(ref[o]) - exact[o]) > Self.relativeTolerance * mag[o] + Self.absoluteFloor {
                XCTFail("\(t.description) output \(o): \(ref[o]) vs naive \(exact[o])"); break
            }
            for (act, lo, hi) in [(MPQ_ACT_NONE, Float(0), Float(0)), (MPQ_ACT_CLAMP, 0, 6), (MPQ_ACT_SILU, 0, 0)] {
                for path in [MPQ_PATH_REFERENCE] + paths {
                    for threads: Int32 in [1, 2, 3] {
                        var want = [Float](repeating: .nan, count: count), got = want
                        XCTAssertEqual(mpq_sconv2d_f32_packed(path, x, Int32(t.images), &s, packed.pointer, bias, act, lo, hi, &want, threads), 0)
                        XCTAssertEqual(mpq_sconv2d_f32_direct(path, x, Int32(t.images), &s, packed.pointer, bias, act, lo, hi, &got, threads), 0)
                        XCTAssertEqual(got.map(\.bitPattern), want.map(\.bitPattern),
                                       "\(t.description) act \(act.rawValue) path \(path.rawValue) threads \(threads)")
                        compared += 1
                    }
                }
            }
        }
        XCTAssertGreaterThan(compared, 100)
        print("FP32 small-plane direct tiles compared on paths \(([MPQ_PATH_REFERENCE] + paths).map { String(cString: mpq_kernel_path_name(mpq_resolve_kernel_path($0))) }); tall AVX-512 tiles \(mpq_kernel_path_available(MPQ_PATH_VNNI) != 0 ? "covered" : "not available on this CPU")")
    }

    /// Stride-2 padding copies of the direct path (the image split into column and row
    /// phase planes; the AVX-512 de-interleave wherever the CPU has it, on every kernel path)
    /// give the packed path's bits (its packing gathers im2col rows on its own): left pads
    /// 0-3, odd and even widths, planes on both sides of the small-plane copy's 4096-float
    /// threshold (64x64: one memset per channel range vs row by row), kernels that read one
    /// column phase only, widths under one 16-float vector, the detector's down1 shape.
    func testStrideTwoPhasePlanesEqualPackedPath() {
        let cases = [Case(c: 3, h: 64, w: 64, m: 7, stride: (2, 2)), Case(images: 2, c: 2, h: 66, w: 67, m: 5, stride: (2, 2), pads: (0, 0, 1, 1)),
                     Case(c: 2, h: 65, w: 70, m: 6, kh: 5, kw: 5, stride: (2, 2), pads: (2, 2, 2, 2)),
                     Case(c: 2, h: 64, w: 71, m: 4, kh: 7, kw: 7, stride: (2, 2), pads: (3, 3, 3, 3)),
                     Case(c: 5, h: 9, w: 9, m: 8, stride: (2, 2), pads: (1, 2, 1, 0)), Case(c: 4, h: 5, w: 3, m: 3, stride: (2, 2), pads: (1, 3, 0, 1)),
                     Case(c: 3, h: 64, w: 66, m: 5, kh: 3, kw: 1, stride: (2, 2), pads: (1, 0, 1, 0)),
                     Case(c: 16, h: 32, w: 33, m: 24, stride: (2, 2)), Case(c: 6, h: 7, w: 1, m: 2, kh: 1, kw: 3, stride: (2, 2), pads: (0, 1, 0, 1))]
        var compared = 0
        for (i, t) in cases.enumerated() {
            var s = t.shape
            XCTAssertNotEqual(mpq_sconv2d_f32_direct_applies(&s), 0, t.description)
            let (x, w, bias) = Self.data(t, seed: UInt64(700 + i))
            let packed = PackedConvWeights(Tensor(shape: [t.m, t.c / t.group, t.kh, t.kw], floats: w), group: t.group)
            let count = t.images * t.m * Int(mpq_conv2d_out_h(&s)) * Int(mpq_conv2d_out_w(&s))
            for path in [MPQ_PATH_REFERENCE] + paths {
                for threads: Int32 in [1, 2, 3] {
                    var want = [Float](repeating: .nan, count: count), got = want
                    XCTAssertEqual(mpq_sconv2d_f32_packed(path, x, Int32(t.images), &s, packed.pointer, bias, MPQ_ACT_NONE, 0, 0, &want, threads), 0)
                    XCTAssertEqual(mpq_sconv2d_f32_direct(path, x, Int32(t.images), &s, packed.pointer, bias, MPQ_ACT_NONE, 0, 0, &got, threads), 0)
                    XCTAssertEqual(got.map(\.bitPattern), want.map(\.bitPattern), "\(t.description) path \(path.rawValue) threads \(threads)")
                    compared += 1
                }
            }
        }
        XCTAssertGreaterThan(compared, 20)
        print("FP32 stride-2 phase planes compared on paths \(([MPQ_PATH_REFERENCE] + paths).map { String(cString: mpq_kernel_path_name(mpq_resolve_kernel_path($0))) }); AVX-512 de-interleave \(mpq_kernel_path_available(MPQ_PATH_VNNI) != 0 ? "covered" : "maybe not on this CPU (no AVX-512 VNNI)")")
    }

    /// Bias, Relu/Clip and SiLU applied per tile give the bits of the plain GEMM followed by
    /// `mpq_conv_epilogue_f32` over the whole output on the same path.
    func testFusedEpilogueEqualsGemmThenEpilogue() {
        for (i, t) in Self.cases.enumerated() where i % 2 == 0 || t.group > 1 || t.images > 1 {
            let (x, w, bias) = Self.data(t, seed: UInt64(100 + i))
            let packed = PackedConvWeights(Tensor(shape: [t.m, t.c / t.group, t.kh, t.kw], floats: w), group: t.group)
            let plane = t.images * t.m > 0 ? Self.run(t, x: x, packed: packed, bias: nil, path: MPQ_PATH_REFERENCE, threads: 1).count / (t.images * t.m) : 0
            for (act, lo, hi) in [(MPQ_ACT_NONE, Float(0), Float(0)), (MPQ_ACT_CLAMP, 0, 6), (MPQ_ACT_SILU, 0, 0)] {
                for path in [MPQ_PATH_REFERENCE] + paths {
                    var want = Self.run(t, x: x, packed: packed, bias: nil, path: path, threads: 1)
                    want.withUnsafeMutableBufferPointer { p in
                        for img in 0..<t.images {
                            mpq_conv_epilogue_f32(path, p.baseAddress! + img * t.m * plane, t.m, plane, plane, bias, act, lo, hi)
                        }
                    }
                    let got = Self.run(t, x: x, packed: packed, bias: bias, act: act, lo: lo, hi: hi, path: path, threads: 2)
                    XCTAssertEqual(got.map(\.bitPattern), want.map(\.bitPattern), "\(t.description) act \(act.rawValue) path \(path.rawValue)")
                }
            }
        }
    }

    /// The Conv op on the packed GEMM against the same op on OpenBLAS (im2col + sgemm), with
    /// a fused Relu, batch 1 (the one-image split) and 2.
    func testConvOpAgreesWithOpenBLASPath() throws {
        for (i, t) in Self.cases.enumerated() {
            let (x, w, bias) = Self.data(t, seed: UInt64(200 + i))
            let xt = Tensor(shape: [t.images, t.c, t.h, t.w], floats: x)
            let wt = Tensor(shape: [t.m, t.c / t.group, t.kh, t.kw], floats: w)
            let bt = Tensor(shape: [t.m], floats: bias)
            func conv(_ gemm: FP32GemmChoice) throws -> Tensor {
                try ConvOps.Conv(x: xt, w: wt, b: bt, autoPad: "NOTSET", dilations: [t.dilation.0, t.dilation.1], group: t.group,
                                 kernelShape: nil, pads: [t.pads.0, t.pads.1, t.pads.2, t.pads.3], strides: [t.stride.0, t.stride.1],
                                 epilogue: .clamp(lo: 0, hi: .infinity), gemm: gemm)
            }
            let got = try conv(.mpq), blas = try conv(.openblas)
            XCTAssertEqual(got.shape, blas.shape, t.description)
            let (want, mag) = Self.naive(t, x: x, w: w, bias: bias)
            for o in got.floats.indices {
                // Both within the tolerance of the exact value, so within twice it of each other.
                let bound = 2 * (Self.relativeTolerance * mag[o] + Self.absoluteFloor)
                XCTAssertLessThanOrEqual(abs(Double(got.floats[o]) - Double(blas.floats[o])), bound,
                                         "\(t.description) output \(o): mpq \(got.floats[o]) OpenBLAS \(blas.floats[o]) (exact \(max(want[o], 0)))")
                if abs(Double(got.floats[o]) - Double(blas.floats[o])) > bound { break }
            }
        }
    }

    /// A session packs each constant Conv weight once and reuses it; a tensor that only has
    /// the constant's name (a feed replacing an initializer) is packed for its call.
    func testSessionPacksConstantWeightsOnce() {
        let w = Tensor(shape: [4, 3, 3, 3], floats: (0..<108).map { Float($0 % 7) - 3 })
        let cache = PreparedWeights(constants: ["w": w])
        let a = cache.convWeights("w", w, group: 1), b = cache.convWeights("w", w, group: 1)
        XCTAssertTrue(a === b)
        var other = w
        other.floats[0] = 99  // copy-on-write: new storage, same name
        XCTAssertFalse(cache.convWeights("w", other, group: 1) === a)
        XCTAssertFalse(cache.convWeights("x", w, group: 1) === a)
    }
}
