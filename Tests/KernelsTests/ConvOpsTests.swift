import XCTest
@testable import Kernels
import ONNX

final class ConvOpsTests: XCTestCase {
    /// A convolution case at any spatial rank (1-3); pads are heads then tails.
    struct Case {
        var x: [Int]          // [N, C, spatial...]
        var m: Int
        var k: [Int]
        var group = 1
        var strides: [Int]? = nil
        var dilations: [Int]? = nil
        var pads: [Int]? = nil
        var bias = true
    }

    /// Direct convolution by definition, padded to 3-D. Never optimised.
    static func referenceConv(_ x: Tensor, _ w: Tensor, _ b: Tensor?, group: Int, strides: [Int], dilations: [Int], pads: [Int]) -> Tensor {
        let r = x.rank - 2, lead = 3 - r
        func p3(_ v: [Int], _ f: Int) -> [Int] { [Int](repeating: f, count: lead) + v }
        let inS = p3(Array(x.shape[2...]), 1), kS = p3(Array(w.shape[2...]), 1)
        let s = p3(strides, 1), d = p3(dilations, 1), ph = p3(Array(pads.prefix(r)), 0), pt = p3(Array(pads.suffix(r)), 0)
        var outS = [Int](repeating: 1, count: 3)
        for i in 0..<3 {
            let span: Int = inS[i] + ph[i] + pt[i] - d[i] * (kS[i] - 1) - 1
            outS[i] = span / s[i] + 1
        }
        let n = x.shape[0], c = x.shape[1], m = w.shape[0], cg = c / group, mg = m / group
        var out: [Float] = []
        for img in 0..<n { for oc in 0..<m {
            let g = oc / mg
            for od in 0..<outS[0] { for oh in 0..<outS[1] { for ow in 0..<outS[2] {
                var acc: Float = b?.floats[oc] ?? 0
                for ic in 0..<cg { for kd in 0..<kS[0] { for kh in 0..<kS[1] { for kw in 0..<kS[2] {
                    let id = od * s[0] - ph[0] + kd * d[0], ih = oh * s[1] - ph[1] + kh * d[1], iw = ow * s[2] - ph[2] + kw * d[2]
                    guard id >= 0, id < inS[0], ih >= 0, ih < inS[1], iw >= 0, iw < inS[2] else { continue }
                    let xv = x.floats[(((img * c + g * cg + ic) * inS[0] + id) * inS[1] + ih) * inS[2] + iw]
                    let wv = w.floats[(((oc * cg + ic) * kS[0] + kd) * kS[1] + kh) * kS[2] + kw]
                    acc += xv * wv
                }}}}
                out.append(acc)
            }}}
        }}
        return Tensor(shape: [n, m] + Array(outS.suffix(r)), floats: out)
    }

    func run(_ cs: Case, autoPad: String = "NOTSET", expectPads: [Int]? = nil, seed: UInt64) throws {
        var rng = OpTestRandom(seed: seed)
        let r = cs.k.count
        let x = rng.tensor(cs.x), w = rng.tensor([cs.m, cs.x[1] / cs.group] + cs.k)
        let b = cs.bias ? rng.tensor([cs.m]) : nil
        let got = try ConvOps.Conv(x: x, w: w, b: b, autoPad: autoPad, dilations: cs.dilations, group: cs.group,
                                   kernelShape: nil, pads: cs.pads, strides: cs.strides)
        let want = Self.referenceConv(x, w, b, group: cs.group, strides: cs.strides ?? [Int](repeating: 1, count: r),
                                      dilations: cs.dilations ?? [Int](repeating: 1, count: r),
                                      pads: expectPads ?? cs.pads ?? [Int](repeating: 0, count: 2 * r))
        assertClose(got, want, "Conv \(cs) auto_pad \(autoPad)")
    }

    func testConv2DOverAwkwardShapes() throws {
        let cases: [Case] = [
            Case(x: [1, 3, 7, 9], m: 5, k: [3, 3]),
            Case(x: [2, 4, 15, 17], m: 6, k: [3, 5], group: 2, strides: [2, 1], pads: [1, 2, 0, 1]),
            Case(x: [1, 6, 16, 16], m: 9, k: [3, 3], group: 3, strides: [2, 2], dilations: [2, 1], pads: [2, 1, 2, 0]),
            Case(x: [1, 5, 9, 11], m: 7, k: [1, 1], bias: false),                              // pointwise, no im2col
            Case(x: [2, 5, 9, 11], m: 4, k: [1, 1], strides: [2, 3]),                          // strided 1x1
            Case(x: [1, 8, 13, 10], m: 8, k: [3, 3], group: 8, pads: [1, 1, 1, 1]),            // depthwise 3x3, small plane
            Case(x: [2, 6, 11, 37], m: 6, k: [3, 3], group: 6, strides: [2, 2], pads: [0, 1, 2, 0]), // depthwise 3x3, stride 2
            Case(x: [1, 2, 5, 40], m: 2, k: [3, 3], group: 2, pads: [1, 1, 1, 1]),            // depthwise 3x3, wide rows: tap loop
            Case(x: [1, 3, 6, 7], m: 6, k: [3, 3], group: 3, strides: [1, 2], pads: [1, 0, 1, 1]), // 3x3, multiplier 2
            Case(x: [1, 2, 2, 2], m: 2, k: [3, 3], group: 2, pads: [1, 1, 1, 1]),             // 3x3, border only
            Case(x: [2, 4, 12, 9], m: 8, k: [5, 3], group: 4, strides: [2, 2], dilations: [1, 2], pads: [2, 0, 1, 3]), // depth multiplier 2
            Case(x: [1, 3, 5, 5], m: 2, k: [5, 5], pads: [0, 0, 0, 0]),                        // 1x1 output
            Case(x: [1, 1, 31, 33], m: 3, k: [4, 2], strides: [3, 2], pads: [3, 1, 0, 1]),
            Case(x: [3, 1, 8, 8], m: 8, k: [3, 3], pads: [1, 1, 1, 1]),                         // one input channel, GEMM path
            Case(x: [37, 3, 6, 5], m: 5, k: [3, 3], pads: [1, 1, 1, 0]),                       // many small images
            Case(x: [45, 2, 20, 20], m: 4, k: [3, 3], strides: [1, 1], pads: [1, 1, 1, 1]),   // many images
            // Batches big enough to split by image over the cores (imageTasks >= 1M MACs):
            Case(x: [16, 32, 24, 24], m: 32, k: [3, 3], group: 32, pads: [1, 1, 1, 1]),    // depthwise, split
            Case(x: [1, 48, 40, 40], m: 48, k: [3, 3], group: 48, pads: [1, 1, 1, 1]),     // depthwise, 2 epilogue chunks
            Case(x: [8, 32, 16, 16], m: 32, k: [1, 1], group: 2, bias: true),              // pointwise grouped, split
            Case(x: [7, 8, 19, 17], m: 16, k: [3, 3], strides: [2, 1], pads: [1, 0, 1, 1]), // im2col, odd image count, split
        ]
        for (i, c) in cases.enumerated() { try run(c, seed: UInt64(100 + i)) }
    }

    func testConv1DAnd3D() throws {
        try run(Case(x: [2, 3, 17], m: 4, k: [3], strides: [2], pads: [1, 2]), seed: 1)
        try run(Case(x: [1, 4, 15], m: 4, k: [5], group: 4, dilations: [2], pads: [4, 3]), seed: 2)
        try run(Case(x: [1, 2, 5, 6, 7], m: 3, k: [3, 2, 3], strides: [1, 2, 2], pads: [1, 0, 1, 1, 1, 0]), seed: 3)
        try run(Case(x: [1, 4, 5, 6, 5], m: 4, k: [3, 3, 3], group: 4, pads: [1, 1, 1, 1, 1, 1]), seed: 4)
    }

    /// SAME_UPPER puts the odd unit of padding at the tail, SAME_LOWER at the head.
    func testAutoPad() throws {
        // in 7, k 4, stride 2: output 4, padding needed (4-1)*2+4-7 = 3.
        let c = Case(x: [1, 2, 7, 7], m: 3, k: [4, 4], strides: [2, 2])
        try run(c, autoPad: "SAME_UPPER", expectPads: [1, 1, 2, 2], seed: 5)
        try run(c, autoPad: "SAME_LOWER", expectPads: [2, 2, 1, 1], seed: 6)
        var v = c; v.pads = [3, 3, 3, 3]
        try run(v, autoPad: "VALID", expectPads: [0, 0, 0, 0], seed: 7)
        // Depthwise with SAME_UPPER, odd input, stride 1: padding 2 split 1/1.
        try run(Case(x: [1, 3, 9, 8], m: 3, k: [3, 3], group: 3), autoPad: "SAME_UPPER", expectPads: [1, 1, 1, 1], seed: 8)
    }

    /// The by-image split (single-threaded sgemm per core) gives bit for bit what each
    /// image alone gives (one image never splits by image; its GEMM may use OpenBLAS's
    /// threads, which split rows and columns, not the sum; a big depthwise image splits by
    /// channel).
    func testBatchSplitIsBitIdenticalToOneImageAtATime() throws {
        var rng = OpTestRandom(seed: 77)
        for (xs, ws, group, pads) in [([6, 8, 20, 20], [16, 8, 3, 3], 1, [1, 1, 1, 1]),
                                      ([4, 32, 48, 48], [32, 1, 3, 3], 32, [1, 1, 1, 1]),
                                      ([5, 32, 16, 16], [64, 32, 1, 1], 1, [0, 0, 0, 0]),
                                      // one image of this depthwise conv (2.2M MACs) splits by channel instead
                                      ([2, 96, 50, 50], [96, 1, 3, 3], 96, [1, 1, 1, 1]),
                                      ([32, 96, 7, 7], [96, 1, 3, 3], 96, [1, 1, 1, 1])] {
            let x = rng.tensor(xs), w = rng.tensor(ws), b = rng.tensor([ws[0]])
            if ProcessInfo.processInfo.activeProcessorCount > 1, xs[2] == 50 {
                XCTAssertGreaterThan(depthwiseChannelTasks(macs: ws[0] * xs[2] * xs[3] * ws[2] * ws[3]), 1, "one image must split")
            }
            if ProcessInfo.processInfo.activeProcessorCount > 1 {
                XCTAssertGreaterThan(imageTasks(images: xs[0], macsPerImage: ws[0] * xs[2] * xs[3] * ws[1] * ws[2] * ws[3]), 1,
                                     "the case must split")
            }
            let batch = try ConvOps.Conv(x: x, w: w, b: b, autoPad: "NOTSET", dilations: nil, group: group,
                                         kernelShape: nil, pads: pads, strides: nil)
            let per = xs[1...].reduce(1, *), outPer = batch.count / xs[0]
            for img in 0..<xs[0] {
                let one = Tensor(shape: [1] + Array(xs[1...]), floats: Array(x.floats[img * per..<(img + 1) * per]))
                let alone = try ConvOps.Conv(x: one, w: w, b: b, autoPad: "NOTSET", dilations: nil, group: group,
                                             kernelShape: nil, pads: pads, strides: nil)
                XCTAssertEqual(alone.floats, Array(batch.floats[img * outPer..<(img + 1) * outPer]), "image \(img) of \(xs) group \(group)")
            }
        }
    }

    func testConvRejectsBadShapes() {
        var rng = OpTestRandom(seed: 9)
        XCTAssertThrowsError(try ConvOps.Conv(x: rng.tensor([1, 3, 5, 5]), w: rng.tensor([2, 2, 3, 3]), b: nil, autoPad: "NOTSET",
                                              dilations: nil, group: 1, kernelShape: nil, pads: nil, strides: nil))
        XCTAssertThrowsError(try ConvOps.Conv(x: rng.tensor([1, 3, 2, 2]), w: rng.tensor([2, 3, 3, 3]), b: nil, autoPad: "NOTSET",
                                              dilations: nil, group: 1, kernelShape: nil, pads: nil, strides: nil))
        XCTAssertThrowsError(try ConvOps.Conv(x: rng.tensor([1, 3, 5, 5]), w: rng.tensor([2, 3, 3, 3]), b: nil, autoPad: "SAME",
                                              dilations: nil, group: 1, kernelShape: nil, pads: nil, strides: nil))
    }

    /// ConvTranspose by definition: every input value scattered through the kernel.
    static func referenceConvTranspose(_ x: Tensor, _ w: Tensor, _ b: Tensor?, group: Int, strides: [Int], dilations: [Int],
                                       pads: [Int], outSpatial: [Int]) -> Tensor {
        let r = x.rank - 2, lead = 3 - r
        func p3(_ v: [Int], _ f: Int) -> [Int] { [Int](repeating: f, count: lead) + v }
        let inS = p3(Array(x.shape[2...]), 1), kS = p3(Array(w.shape[2...]), 1), outS = p3(outSpatial, 1)
        let s = p3(strides, 1), d = p3(dilations, 1), ph = p3(Array(pads.prefix(r)), 0)
        let n = x.shape[0], c = x.shape[1], mg = w.shape[1], m = mg * group, cg = c / group
        var out = [Float](repeating: 0, count: n * m * outS.reduce(1, *))
        for img in 0..<n { for ic in 0..<c {
            let g = ic / cg
            for id in 0..<inS[0] { for ih in 0..<inS[1] { for iw in 0..<inS[2] {
                let xv = x.floats[(((img * c + ic) * inS[0] + id) * inS[1] + ih) * inS[2] + iw]
                for oc in 0..<mg { for kd in 0..<kS[0] { for kh in 0..<kS[1] { for kw in 0..<kS[2] {
                    let od = id * s[0] - ph[0] + kd * d[0], oh = ih * s[1] - ph[1] + kh * d[1], ow = iw * s[2] - ph[2] + kw * d[2]
                    guard od >= 0, od < outS[0], oh >= 0, oh < outS[1], ow >= 0, ow < outS[2] else { continue }
                    let wv = w.floats[(((ic * mg + oc) * kS[0] + kd) * kS[1] + kh) * kS[2] + kw]
                    out[(((img * m + g * mg + oc) * outS[0] + od) * outS[1] + oh) * outS[2] + ow] += xv * wv
                }}}}
            }}}
        }}
        if let b {
            let plane = outS.reduce(1, *)
            for i in 0..<out.count { out[i] += b.floats[(i / plane) % m] }
        }
        return Tensor(shape: [n, m] + outSpatial, floats: out)
    }

    func testConvTransposeMatchesReference() throws {
        struct T { var x: [Int]; var mg: Int; var k: [Int]; var group = 1; var strides: [Int]; var dil: [Int]; var pads: [Int]; var adj: [Int] }
        let cases = [
            T(x: [1, 3, 5, 6], mg: 2, k: [3, 3], strides: [2, 2], dil: [1, 1], pads: [1, 0, 1, 1], adj: [1, 0]),
            T(x: [2, 4, 4, 5], mg: 3, k: [3, 2], group: 2, strides: [1, 3], dil: [2, 1], pads: [0, 1, 2, 0], adj: [0, 2]),
            T(x: [1, 2, 7], mg: 2, k: [4], strides: [3], dil: [1], pads: [2, 1], adj: [1]),
            T(x: [1, 2, 3, 4, 3], mg: 2, k: [2, 3, 2], strides: [2, 1, 2], dil: [1, 1, 1], pads: [0, 1, 0, 0, 1, 1], adj: [1, 0, 0]),
            T(x: [1, 5, 6, 6], mg: 4, k: [1, 1], strides: [1, 1], dil: [1, 1], pads: [0, 0, 0, 0], adj: [0, 0]),   // pointwise
        ]
        for (i, t) in cases.enumerated() {
            var rng = OpTestRandom(seed: UInt64(200 + i))
            let x = rng.tensor(t.x), w = rng.tensor([t.x[1], t.mg] + t.k), b = rng.tensor([t.mg * t.group])
            let r = t.k.count
            var outSpatial: [Int] = []
            for j in 0..<r {
                let full: Int = t.strides[j] * (t.x[2 + j] - 1) + t.adj[j] + (t.k[j] - 1) * t.dil[j] + 1
                outSpatial.append(full - t.pads[j] - t.pads[r + j])
            }
            let got = try ConvOps.ConvTranspose(x: x, w: w, b: b, autoPad: "NOTSET", dilations: t.dil, group: t.group,
                                                kernelShape: nil, outputPadding: t.adj, outputShape: nil, pads: t.pads,
                                                strides: t.strides)
            let want = Self.referenceConvTranspose(x, w, b, group: t.group, strides: t.strides, dilations: t.dil,
                                                   pads: t.pads, outSpatial: outSpatial)
            assertClose(got, want, "ConvTranspose case \(i)")
        }
    }

    /// Values from ONNX Runtime 1.32: X = 1...9 as [1,1,3,3], W all ones 3x3, stride 2.
    /// ORT puts the odd padding unit at the tail for SAME_UPPER and at the head for
    /// SAME_LOWER and for an explicit output_shape.
    func testConvTransposeAutoPadAndOutputShapeMatchOnnxRuntime() throws {
        let x = Tensor(shape: [1, 1, 3, 3], floats: (1...9).map(Float.init))
        let w = Tensor(shape: [1, 1, 3, 3], floats: [Float](repeating: 1, count: 9))
        let upper: [Float] = [1, 1, 3, 2, 5, 3, 1, 1, 3, 2, 5, 3, 5, 5, 12, 7, 16, 9, 4, 4, 9, 5, 11, 6,
                              11, 11, 24, 13, 28, 15, 7, 7, 15, 8, 17, 9]
        let lower: [Float] = [1, 3, 2, 5, 3, 3, 5, 12, 7, 16, 9, 9, 4, 9, 5, 11, 6, 6, 11, 24, 13, 28, 15, 15,
                              7, 15, 8, 17, 9, 9, 7, 15, 8, 17, 9, 9]
        func run(_ autoPad: String, _ outputShape: [Int]?) throws -> Tensor {
            try ConvOps.ConvTranspose(x: x, w: w, b: nil, autoPad: autoPad, dilations: nil, group: 1, kernelShape: nil,
                                      outputPadding: nil, outputShape: outputShape, pads: nil, strides: [2, 2])
        }
        assertClose(try run("SAME_UPPER", nil), Tensor(shape: [1, 1, 6, 6], floats: upper), "SAME_UPPER")
        assertClose(try run("SAME_LOWER", nil), Tensor(shape: [1, 1, 6, 6], floats: lower), "SAME_LOWER")
        assertClose(try run("NOTSET", [6, 6]), Tensor(shape: [1, 1, 6, 6], floats: lower), "output_shape")
        assertClose(try run("SAME_UPPER", [1, 1, 6, 6]), Tensor(shape: [1, 1, 6, 6], floats: upper), "output_shape + SAME_UPPER")
        XCTAssertEqual(try run("NOTSET", nil).shape, [1, 1, 7, 7])
    }
}
