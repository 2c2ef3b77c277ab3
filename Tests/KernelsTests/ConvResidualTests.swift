import CKernels
import XCTest
import ONNX
@testable import Kernels

/// The residual Add (+ Relu) fused into the FP32 Conv (`mpq_sconv2d_f32_residual`,
/// `ResidualFusion`): the fused kernel gives the bits of the Conv followed by the separate
/// `mpq_binary_f32` pass over the whole output (every path, thread count, operand order,
/// with and without the Relu and a Conv activation), and a session running it gives the
/// bits of the unfused nodes (an observed run fuses nothing), on ResNet-shaped graphs and
/// the resnet_digits fixture, batch 1 and image chains.
final class ConvResidualTests: XCTestCase {
    typealias Case = FP32GemmTests.Case

    var paths: [mpq_kernel_path] {
        [MPQ_PATH_REFERENCE, MPQ_PATH_AUTO] + [MPQ_PATH_AVX2, MPQ_PATH_VNNI].filter { mpq_kernel_path_available($0) != 0 }
    }

    /// ResNet's classes (3x3 stride 1 and 2, 1x1 stride-2 downsample, the 7x7 stride-2 stem,
    /// 7x7 and 14x14 planes), junk columns, batches, groups, M not a multiple of 6, and
    /// planes wide enough that the direct path's chunks cut rows.
    static let cases: [Case] = [
        Case(c: 16, h: 14, w: 14, m: 16), Case(c: 32, h: 7, w: 7, m: 32), Case(images: 3, c: 8, h: 7, w: 7, m: 13),
        Case(c: 8, h: 16, w: 16, m: 20, stride: (2, 2)), Case(c: 12, h: 14, w: 14, m: 24, kh: 1, kw: 1, stride: (2, 2), pads: (0, 0, 0, 0)),
        Case(c: 3, h: 30, w: 30, m: 16, kh: 7, kw: 7, stride: (2, 2), pads: (3, 3, 3, 3)),
        Case(c: 16, h: 9, w: 9, m: 10, kh: 1, kw: 1, pads: (0, 0, 0, 0)), Case(images: 2, c: 12, h: 10, w: 11, m: 18, group: 2),
        Case(c: 8, h: 56, w: 56, m: 64), Case(images: 2, c: 4, h: 5, w: 40, m: 7, kh: 3, kw: 1, stride: (1, 5), pads: (1, 0, 1, 0)),
    ]

    func testFusedResidualEqualsConvThenAdd() {
        var compared = 0
        for (i, t) in Self.cases.enumerated() {
            var s = t.shape
            let (x, w, bias) = FP32GemmTests.data(t, seed: UInt64(900 + i))
            let packed = PackedConvWeights(Tensor(shape: [t.m, t.c / t.group, t.kh, t.kw], floats: w), group: t.group)
            let count = t.images * t.m * Int(mpq_conv2d_out_h(&s)) * Int(mpq_conv2d_out_w(&s))
            var rng = TestRNG(seed: UInt64(i + 40))
            // Shortcut values around the conv's, so the Relu cuts; one -0 and exact cancellations.
            var shortcut = (0..<count).map { _ in rng.float(-3...3) }
            shortcut[0] = -0.0
            let direct = mpq_sconv2d_f32_direct_applies(&s) != 0
            for (act, lo, hi) in [(MPQ_ACT_NONE, Float(0), Float(0)), (MPQ_ACT_CLAMP, 0, 6), (MPQ_ACT_SILU, 0, 0)] {
                for path in paths {
                    for threads: Int32 in [1, 2, 3] {
                        var conv = [Float](repeating: .nan, count: count)
                        XCTAssertEqual(mpq_sconv2d_f32(path, x, Int32(t.images), &s, packed.pointer, bias, act, lo, hi, &conv, threads), 0)
                        for relu in [0, 1] as [Int32] {
                            for first in [0, 1] as [Int32] {
                                var want = [Float](repeating: .nan, count: count)
                                if first == 1 { mpq_binary_f32(path, 0, relu, shortcut, conv, count, &want, 1) }
                                else { mpq_binary_f32(path, 0, relu, conv, shortcut, count, &want, 1) }
                                var got = [Float](repeating: .nan, count: count), gotDirect = got
                                shortcut.withUnsafeBufferPointer { ps in
                                    var r = mpq_sconv_residual(shortcut: ps.baseAddress, shortcut_first: first, relu: relu)
                                    XCTAssertEqual(mpq_sconv2d_f32_residual(path, x, Int32(t.images), &s, packed.pointer, bias, act, lo, hi,
                                                                            &r, &got, threads), 0)
                                    if direct {
                                        XCTAssertEqual(mpq_sconv2d_f32_direct_residual(path, x, Int32(t.images), &s, packed.pointer, bias,
                                                                                       act, lo, hi, &r, &gotDirect, threads), 0)
                                    }
                                }
                                let what = "\(t.description) act \(act.rawValue) path \(path.rawValue) threads \(threads) relu \(relu) first \(first)"
                                XCTAssertEqual(got.map(\.bitPattern), want.map(\.bitPattern), what)
                                if direct { XCTAssertEqual(gotDirect.map(\.bitPattern), want.map(\.bitPattern), "direct " + what) }
                                compared += 1
                            }
                        }
                    }
                }
            }
        }
        XCTAssertGreaterThan(compared, 500)
        print("fused residual compared on paths \(paths.map { String(cString: mpq_kernel_path_name(mpq_resolve_kernel_path($0))) })")
    }

    /// Two ResNet blocks: a stem, a block whose Add reads (shortcut, conv), one whose Add reads
    /// (conv, shortcut) without a Relu after it, a downsample block whose shortcut is a
    /// 1x1 stride-2 Conv computed after the block's second Conv (no fusion then: not computed
    /// yet), and an Add of a [1, C, 1, 1] constant (broadcast: the unfused ops).
    static func resnetGraph(c: Int = 8) -> Graph {
        var rng = TestRNG(seed: 23)
        func t(_ shape: [Int], _ scale: Float) -> Tensor {
            Tensor(shape: shape, floats: (0..<shape.reduce(1, *)).map { _ in rng.float(-scale...scale) })
        }
        let pad1: [String: Attribute] = ["pads": .ints([1, 1, 1, 1])]
        let relu: [String: Attribute] = [FusedActivation.attributeKey: .string("Relu")]
        func merged(_ a: [String: Attribute], _ b: [String: Attribute]) -> [String: Attribute] { a.merging(b) { x, _ in x } }
        return Graph(nodes: [
            Node(name: "stem", opType: "Conv", inputs: ["x", "w0", "b0"], outputs: ["s"], attributes: merged(relu, pad1)),
            Node(name: "c1", opType: "Conv", inputs: ["s", "w1", "b1"], outputs: ["a1"], attributes: merged(relu, pad1)),
            Node(name: "c2", opType: "Conv", inputs: ["a1", "w2", "b2"], outputs: ["a2"], attributes: pad1),
            Node(name: "add1", opType: "Add", inputs: ["s", "a2"], outputs: ["r1"]),
            Node(name: "relu1", opType: "Relu", inputs: ["r1"], outputs: ["y1"]),
            Node(name: "c3", opType: "Conv", inputs: ["y1", "w3"], outputs: ["a3"], attributes: pad1),
            Node(name: "add2", opType: "Add", inputs: ["a3", "y1"], outputs: ["y2"]),
            Node(name: "c4", opType: "Conv", inputs: ["y2", "w4", "b4"], outputs: ["a4"],
                 attributes: merged(relu, merged(pad1, ["strides": .ints([2, 2])]))),
            Node(name: "c5", opType: "Conv", inputs: ["a4", "w5", "b5"], outputs: ["a5"], attributes: pad1),
            Node(name: "down", opType: "Conv", inputs: ["y2", "wd", "bd"], outputs: ["d"], attributes: ["strides": .ints([2, 2])]),
            Node(name: "add3", opType: "Add", inputs: ["a5", "d"], outputs: ["r3"]),
            Node(name: "relu3", opType: "Relu", inputs: ["r3"], outputs: ["y3"]),
            Node(name: "c6", opType: "Conv", inputs: ["y3", "w6", "b6"], outputs: ["a6"], attributes: pad1),
            Node(name: "add4", opType: "Add", inputs: ["a6", "k"], outputs: ["r4"]),
            Node(name: "relu4", opType: "Relu", inputs: ["r4"], outputs: ["y4"]),
            Node(name: "gap", opType: "GlobalAveragePool", inputs: ["y4"], outputs: ["y"]),
        ], initializers: [
            "w0": t([c, 3, 3, 3], 0.5), "b0": t([c], 0.3), "w1": t([c, c, 3, 3], 0.3), "b1": t([c], 0.3),
            "w2": t([c, c, 3, 3], 0.3), "b2": t([c], 0.3), "w3": t([c, c, 3, 3], 0.3),
            "w4": t([2 * c, c, 3, 3], 0.3), "b4": t([2 * c], 0.2), "w5": t([2 * c, 2 * c, 3, 3], 0.2), "b5": t([2 * c], 0.2),
            "wd": t([2 * c, c, 1, 1], 0.5), "bd": t([2 * c], 0.2), "w6": t([2 * c, 2 * c, 3, 3], 0.2), "b6": t([2 * c], 0.2),
            "k": t([1, 2 * c, 1, 1], 1),
        ], inputs: [ValueInfo(name: "x", dtype: .float32, shape: [nil, 3, nil, nil])],
           outputs: [ValueInfo(name: "y", dtype: .float32, shape: nil)], opsets: ["": 17])
    }

    func testFusionsFound() throws {
        let session = try Session(graph: Self.resnetGraph())
        let found = session.residualFusions.values.map { f in
            [session.plan[f.conv].name, session.plan[f.add].name] + (f.relu.map { [session.plan[$0].name] } ?? [])
        }.sorted { $0[0] < $1[0] }
        // add3 reads two Convs' outputs: each is found; at run time only the later one can
        // fuse (the other's shortcut is not computed yet when it runs): here "down".
        XCTAssertEqual(found, [["c2", "add1", "relu1"], ["c3", "add2"], ["c5", "add3", "relu3"], ["c6", "add4", "relu4"],
                               ["down", "add3", "relu3"]])
    }

    /// Fused runs (plain `run`) against unfused ones (an observer turns every fusion off):
    /// the same bytes, with the fusion counted where it applies.
    func checkFusedEqualsUnfused(_ session: Session, feeds: (Int) -> [String: Tensor], batches: [Int], output: String,
                                 expectFused: Bool, file: StaticString = #filePath, line: UInt = #line) throws {
        for n in batches {
            let f = feeds(n)
            for path in paths {
                XCTAssertEqual(mpq_set_kernel_path(path), 0)
                defer { mpq_set_kernel_path(MPQ_PATH_AUTO) }
                let plain = try session.run(f, observer: { _, _, _ in })
                for chains in [false, true] {
                    session.runsImageChains = chains
                    defer { session.runsImageChains = Session.imageChainsDefault }
                    let before = session.residualFusionsRun
                    let fused = try session.run(f)
                    if expectFused { XCTAssertGreaterThan(session.residualFusionsRun, before, "n \(n): no fusion ran", file: file, line: line) }
                    XCTAssertEqual(fused[output]!.shape, plain[output]!.shape, file: file, line: line)
                    XCTAssertEqual(fused[output]!.floats.map(\.bitPattern), plain[output]!.floats.map(\.bitPattern),
                                   "n \(n) chains \(chains) path \(String(cString: mpq_kernel_path_name(path)))", file: file, line: line)
                }
            }
        }
    }

    func testSessionFusedResidualGivesUnfusedBytes() throws {
        let session = try Session(graph: Self.resnetGraph())
        var rng = TestRNG(seed: 8)
        try checkFusedEqualsUnfused(session, feeds: { n in
            ["x": Tensor(shape: [n, 3, 12, 12], floats: (0..<n * 3 * 144).map { _ in rng.float(-2...2) })]
        }, batches: [1, 3], output: "y", expectFused: true)
    }

    func testResnetDigitsFusedGivesUnfusedBytes() throws {
        let graph = GraphPasses.optimize(try ModelLoader.load(path: FixturePaths.path("resnet/resnet_digits.onnx")))
        let session = try Session(graph: graph)
        XCTAssertGreaterThanOrEqual(session.residualFusions.count, 8, "every block's second Conv takes its Add")
        let data = try Dataset(path: FixturePaths.path("resnet/resnet_digits_calib.npz"), graph: graph)
        let output = graph.outputs[0].name
        try checkFusedEqualsUnfused(session, feeds: { n in data.batch(0..<n) }, batches: [1, 4], output: output, expectFused: true)
    }
}
