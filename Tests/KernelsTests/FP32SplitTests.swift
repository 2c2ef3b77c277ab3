import CKernels
import XCTest
import ONNX
@testable import Kernels

/// s15-split: one image of an FP32 Conv split over several threads (batch 1). The direct path's
/// small planes split by output channels (contiguous runs of weight panels per thread) or by one
/// band of 16-column vectors per thread (`mpq_sconv2d_f32_direct_split` lists the units); the
/// depthwise lanes kernel gives each thread a contiguous run of channel blocks. A split only
/// changes which thread (and which tile width) computes an output, never the order of its sum:
/// every unit must cover its outputs exactly once, and every split must give the scalar
/// reference's bytes, on MobileNetV2's shapes and odd ones (channel counts that are not multiples
/// of 6 or 16, 7x7 and 13x11 planes, stride 2, padded 3x3, groups), at 1-4 threads.
final class FP32SplitTests: XCTestCase {
    typealias Case = FP32GemmTests.Case

    /// MobileNetV2's 1x1 layers at 7x7-56x56 (and the 112x112 expand whose output outgrows L2),
    /// then odd shapes.
    static let cases: [Case] = [
        Case(c: 64, h: 14, w: 14, m: 384, kh: 1, kw: 1, pads: (0, 0, 0, 0)), Case(c: 384, h: 14, w: 14, m: 64, kh: 1, kw: 1, pads: (0, 0, 0, 0)),
        Case(c: 96, h: 14, w: 14, m: 576, kh: 1, kw: 1, pads: (0, 0, 0, 0)), Case(c: 576, h: 14, w: 14, m: 96, kh: 1, kw: 1, pads: (0, 0, 0, 0)),
        Case(c: 32, h: 28, w: 28, m: 192, kh: 1, kw: 1, pads: (0, 0, 0, 0)), Case(c: 192, h: 28, w: 28, m: 32, kh: 1, kw: 1, pads: (0, 0, 0, 0)),
        Case(c: 160, h: 7, w: 7, m: 960, kh: 1, kw: 1, pads: (0, 0, 0, 0)), Case(c: 960, h: 7, w: 7, m: 160, kh: 1, kw: 1, pads: (0, 0, 0, 0)),
        Case(c: 24, h: 56, w: 56, m: 144, kh: 1, kw: 1, pads: (0, 0, 0, 0)), Case(c: 16, h: 112, w: 112, m: 96, kh: 1, kw: 1, pads: (0, 0, 0, 0)),
        Case(c: 40, h: 14, w: 14, m: 100, kh: 1, kw: 1, pads: (0, 0, 0, 0)), Case(c: 24, h: 7, w: 7, m: 30, kh: 1, kw: 1, pads: (0, 0, 0, 0)),
        Case(c: 17, h: 13, w: 11, m: 250, kh: 1, kw: 1, pads: (0, 0, 0, 0)), Case(c: 50, h: 9, w: 9, m: 7, kh: 1, kw: 1, pads: (0, 0, 0, 0)),
        Case(c: 64, h: 14, w: 14, m: 128, kh: 1, kw: 1, stride: (2, 2), pads: (0, 0, 0, 0)),
        Case(c: 32, h: 7, w: 7, m: 48), Case(c: 24, h: 14, w: 14, m: 40, stride: (2, 2)), Case(c: 20, h: 28, w: 28, m: 70),
        Case(c: 12, h: 10, w: 9, m: 66, group: 2), Case(c: 8, h: 4, w: 4, m: 5, kh: 1, kw: 1, pads: (0, 0, 0, 0)),
    ]

    private var paths: [mpq_kernel_path] { [MPQ_PATH_REFERENCE] + [MPQ_PATH_AVX2, MPQ_PATH_VNNI].filter { mpq_kernel_path_available($0) != 0 } }

    private static func packed(_ t: Case, _ w: [Float]) -> PackedConvWeights {
        PackedConvWeights(Tensor(shape: [t.m, t.c / t.group, t.kh, t.kw], floats: w), group: t.group)
    }

    /// The split's units as (group, rows, columns), and the flat width they number columns on.
    private static func split(_ t: Case, _ p: PackedConvWeights, path: mpq_kernel_path, threads: Int) -> (mode: Int32, units: [[Int32]], flat: Int) {
        var s = t.shape, mode: Int32 = -1
        let n = mpq_sconv2d_f32_direct_split(path, &s, p.pointer, Int32(threads), &mode, nil, 0)
        XCTAssertGreaterThan(n, 0, t.description)
        var parts = [Int32](repeating: -1, count: 5 * max(Int(n), 0))
        XCTAssertEqual(mpq_sconv2d_f32_direct_split(path, &s, p.pointer, Int32(threads), &mode, &parts, n), n)
        let wq = (t.w + t.pads.1 + t.pads.3 + t.stride.1 - 1) / t.stride.1
        return (mode, stride(from: 0, to: parts.count, by: 5).map { Array(parts[$0..<$0 + 5]) }, Int(mpq_conv2d_out_h(&s)) * wq)
    }

    /// Every (group, output channel, flat column) in exactly one unit: a split that dropped or
    /// doubled a range fails here even where the doubled work would write the same bytes. At two
    /// threads each thread's contiguous range of units is one run of output channels over every
    /// column (the channel split) or one band of whole 16-column vectors (the band split), within
    /// a sixteenth of an even share (panels) or one vector (bands).
    func testSplitUnitsCoverEveryOutputOnce() {
        var modes = Set<Int32>()
        for (i, t) in Self.cases.enumerated() {
            let p = Self.packed(t, Self.weights(t, seed: UInt64(i)))
            let mg = t.m / t.group
            for path in paths {
                for threads in 1...4 {
                    let (mode, units, flat) = Self.split(t, p, path: path, threads: threads)
                    modes.insert(mode)
                    var seen = [Int32](repeating: 0, count: t.group * mg * flat)
                    for u in units {
                        XCTAssertTrue(u[0] >= 0 && u[0] < t.group && u[1] >= 0 && u[1] <= u[2] && u[2] <= mg && u[3] >= 0 && u[3] <= u[4] && u[4] <= flat,
                                      "\(t.description) threads \(threads): unit \(u)")
                        for r in u[1]..<u[2] { for f in u[3]..<u[4] { seen[(Int(u[0]) * mg + Int(r)) * flat + Int(f)] += 1 } }
                    }
                    if let o = seen.firstIndex(where: { $0 != 1 }) {
                        XCTFail("\(t.description) path \(path.rawValue) threads \(threads) mode \(mode): output (\(o / flat), column \(o % flat)) covered \(seen[o]) times")
                    }
                    guard threads == 2, t.group == 1, mode == 2 || mode == 3, units.count >= 2 else { continue }
                    let shares = (0..<2).map { k in Array(units[units.count * k / 2..<units.count * (k + 1) / 2]) }
                    if mode == 2 {
                        for sh in shares {
                            XCTAssertTrue(zip(sh.dropLast(), sh.dropFirst()).allSatisfy { $0[2] == $1[1] } && sh.allSatisfy { $0[3] == 0 && Int($0[4]) == flat },
                                          "\(t.description): a thread's channels are not one run \(sh)")
                        }
                        let panels = (mg + 5) / 6, most = shares.map { sh in (Int(sh.last![2]) - Int(sh.first![1]) + 5) / 6 }.max()!
                        if mg >= 48 { XCTAssertLessThanOrEqual(most * 2 * 16, panels * 17 + 32, "\(t.description): \(shares)") }
                    } else {
                        XCTAssertEqual(units.count, 2, t.description)
                        let widths = units.map { (Int($0[4]) - Int($0[3]) + 15) / 16 }
                        XCTAssertLessThanOrEqual(abs(widths[0] - widths[1]), 1, "\(t.description): bands \(units)")
                        XCTAssertEqual(units[0][4] % 16, 0, "\(t.description): band edge inside a vector")
                    }
                }
            }
        }
        // The MobileNetV2 shapes at two threads take both new splits.
        XCTAssertTrue(modes.isSuperset(of: [1, 2, 3]), "modes \(modes.sorted())")
        if mpq_kernel_path_available(MPQ_PATH_VNNI) != 0 {
            let t = Self.cases[0], p = Self.packed(t, Self.weights(t, seed: 0))
            let (mode, units, _) = Self.split(t, p, path: MPQ_PATH_VNNI, threads: 2)
            XCTAssertEqual(mode, 2, "64 -> 384 at 14x14 splits by output channels")
            XCTAssertEqual(units[units.count / 2][1], 192, "each of two threads half the channels: \(units)")
        }
    }

    static func weights(_ t: Case, seed: UInt64) -> [Float] {
        var rng = TestRNG(seed: 900 + seed)
        return (0..<t.m * t.k).map { _ in rng.float(-1...1) }
    }

    /// The direct path at 1-4 threads on every kernel path, with each epilogue and with the fused
    /// residual Add (+ Relu), gives the scalar reference's bytes at one thread (the unsplit run);
    /// outputs start as NaN, so a dropped range shows.
    func testEverySplitEqualsUnsplitReference() {
        var compared = 0
        for (i, t) in Self.cases.enumerated() {
            var s = t.shape
            let (x, _, bias) = FP32GemmTests.data(t, seed: UInt64(1500 + i))
            let p = Self.packed(t, Self.weights(t, seed: UInt64(i)))
            let count = t.images * t.m * Int(mpq_conv2d_out_h(&s)) * Int(mpq_conv2d_out_w(&s))
            var rng = TestRNG(seed: UInt64(1600 + i))
            let shortcut = (0..<count).map { _ in rng.float(-2...2) }
            let epilogues: [(mpq_activation, Float, Float, Bool)] = [(MPQ_ACT_NONE, 0, 0, false), (MPQ_ACT_CLAMP, 0, 6, false),
                                                                     (MPQ_ACT_SILU, 0, 0, false), (MPQ_ACT_NONE, 0, 0, true)]
            for (act, lo, hi, withResidual) in epilogues {
                func conv(_ path: mpq_kernel_path, _ threads: Int32) -> [Float] {
                    var y = [Float](repeating: .nan, count: count)
                    shortcut.withUnsafeBufferPointer { ps in
                        var r = mpq_sconv_residual(shortcut: ps.baseAddress, shortcut_first: 1, relu: 1)
                        let rc = withResidual
                            ? mpq_sconv2d_f32_direct_residual(path, x, Int32(t.images), &s, p.pointer, bias, act, lo, hi, &r, &y, threads)
                            : mpq_sconv2d_f32_direct_residual(path, x, Int32(t.images), &s, p.pointer, bias, act, lo, hi, nil, &y, threads)
                        XCTAssertEqual(rc, 0, t.description)
                    }
                    return y
                }
                let want = conv(MPQ_PATH_REFERENCE, 1)
                XCTAssertFalse(want.contains { $0.isNaN }, t.description)
                for path in paths {
                    for threads: Int32 in 1...4 {
                        let got = conv(path, threads)
                        if let o = got.indices.first(where: { got[$0].bitPattern != want[$0].bitPattern }) {
                            XCTFail("\(t.description) act \(act.rawValue) residual \(withResidual) path \(path.rawValue) threads \(threads): output \(o) \(got[o]) vs \(want[o])")
                        }
                        compared += 1
                    }
                }
            }
        }
        XCTAssertGreaterThan(compared, 200)
    }

    /// The depthwise lanes kernel's contiguous channel ranges at 1-4 threads give the scalar
    /// reference's bytes on MobileNetV2's depthwise shapes and odd ones (24, 40, 100 channels;
    /// 7x7 out of a stride-2 14x14; 13x11).
    func testDepthwiseLanesSplitEqualsReference() throws {
        try XCTSkipIf(mpq_kernel_path_available(MPQ_PATH_VNNI) == 0, "no AVX-512: the lanes kernel declines (DepthwiseF32LanesTests)")
        let shapes: [(c: Int, h: Int, w: Int, s: Int)] = [(384, 14, 14, 1), (576, 14, 14, 2), (960, 7, 7, 1), (192, 28, 28, 1),
                                                          (144, 56, 56, 2), (24, 7, 7, 1), (40, 14, 14, 2), (100, 13, 11, 1), (8, 5, 5, 1)]
        var rng = TestRNG(seed: 1515)
        for sh in shapes {
            var s = mpq_conv2d_shape(channels: Int32(sh.c), height: Int32(sh.h), width: Int32(sh.w), kernel_h: 3, kernel_w: 3,
                                     pad_top: 1, pad_left: 1, pad_bottom: 1, pad_right: 1, stride_h: Int32(sh.s), stride_w: Int32(sh.s),
                                     dilation_h: 1, dilation_w: 1, group: Int32(sh.c))
            let plane = Int(mpq_conv2d_out_h(&s)) * Int(mpq_conv2d_out_w(&s)), count = sh.c * plane
            let x = (0..<sh.c * sh.h * sh.w).map { _ in rng.float(-3...3) }
            let w = (0..<sh.c * 9).map { _ in rng.float(-1...1) }, bias = (0..<sh.c).map { _ in rng.float(-1...1) }
            var want = [Float](repeating: .nan, count: count)
            XCTAssertEqual(mpq_depthwise_f32(MPQ_PATH_REFERENCE, x, &s, w, &want), 0)
            mpq_conv_epilogue_f32(MPQ_PATH_REFERENCE, &want, sh.c, plane, plane, bias, MPQ_ACT_CLAMP, 0, 6)
            for threads: Int32 in 1...4 {
                var got = [Float](repeating: .nan, count: count)
                XCTAssertEqual(mpq_depthwise3x3_f32_lanes(MPQ_PATH_AUTO, x, &s, w, bias, MPQ_ACT_CLAMP, 0, 6, &got, threads), 0)
                if let o = got.indices.first(where: { got[$0].bitPattern != want[$0].bitPattern }) {
                    XCTFail("dw \(sh) threads \(threads): output \(o) \(got[o]) vs \(want[o])")
                }
            }
        }
    }
}
