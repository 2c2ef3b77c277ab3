import CKernels
import XCTest
import ONNX
@testable import Kernels

/// The session's image chains (`ImageChain`, docs/image-chains.md): a batch run image by
/// image through a run of per-image nodes must give the bytes of the layer-by-layer run
/// (`runsImageChains` off is the reference), on every kernel path the CPU has.
final class ImageChainTests: XCTestCase {
    /// `x` layer by layer, then with the image chains on: both outputs, and the session's
    /// chain counter before the second run (so `imageChainsRun - before` counts its chains).
    static func bothWays(_ session: Session, _ x: Tensor) throws -> (plain: [String: Tensor], chained: [String: Tensor], before: Int) {
        session.runsImageChains = false
        let plain = try session.run(["x": x])
        session.runsImageChains = true
        let before = session.imageChainsRun
        return (plain, try session.run(["x": x]), before)
    }

    /// MobileNetV2-shaped: a stride-2 stem with a fused Clip, an inverted residual block
    /// (expand 1x1 + Clip node, depthwise 3x3 with a fused Clip, project 1x1, residual Add),
    /// a stride-2 depthwise block, BatchNormalization + Relu, a Mul by a [1,C,1,1] constant,
    /// GlobalAveragePool, then Flatten and Gemm (outside the chain).
    static func mobileGraph(channels c: Int = 8, expand e: Int = 24, classes: Int = 5) -> Graph {
        var rng = TestRNG(seed: 17)
        func t(_ shape: [Int], _ scale: Float) -> Tensor {
            Tensor(shape: shape, floats: (0..<shape.reduce(1, *)).map { _ in rng.float(-scale...scale) })
        }
        let relu6: [String: Attribute] = [FusedActivation.attributeKey: .string("Clip"), "mpq_clip_min": .float(0), "mpq_clip_max": .float(6)]
        func merged(_ a: [String: Attribute], _ b: [String: Attribute]) -> [String: Attribute] { a.merging(b) { x, _ in x } }
        let pad1: [String: Attribute] = ["pads": .ints([1, 1, 1, 1])]
        return Graph(nodes: [
            Node(name: "stem", opType: "Conv", inputs: ["x", "w0", "b0"], outputs: ["s"],
                 attributes: merged(relu6, merged(pad1, ["strides": .ints([2, 2])]))),
            Node(name: "expand", opType: "Conv", inputs: ["s", "w1", "b1"], outputs: ["e1"]),
            Node(name: "clip", opType: "Clip", inputs: ["e1", "lo", "hi"], outputs: ["e1c"]),
            Node(name: "dw", opType: "Conv", inputs: ["e1c", "w2", "b2"], outputs: ["d1"],
                 attributes: merged(relu6, merged(pad1, ["group": .int(e)]))),
            Node(name: "project", opType: "Conv", inputs: ["d1", "w3", "b3"], outputs: ["p1"]),
            Node(name: "add", opType: "Add", inputs: ["s", "p1"], outputs: ["r1"]),
            Node(name: "expand2", opType: "Conv", inputs: ["r1", "w4"], outputs: ["e2"], attributes: relu6),
            Node(name: "dw2", opType: "Conv", inputs: ["e2", "w5", "b5"], outputs: ["d2"],
                 attributes: merged(pad1, ["group": .int(e), "strides": .ints([2, 2])])),
            Node(name: "bn", opType: "BatchNormalization", inputs: ["d2", "g", "beta", "mean", "var"], outputs: ["n2"]),
            Node(name: "relu", opType: "Relu", inputs: ["n2"], outputs: ["a2"]),
            Node(name: "scale", opType: "Mul", inputs: ["a2", "k"], outputs: ["m2"]),
            Node(name: "gap", opType: "GlobalAveragePool", inputs: ["m2"], outputs: ["p"]),
            Node(name: "flat", opType: "Flatten", inputs: ["p"], outputs: ["f"]),
            Node(name: "fc", opType: "Gemm", inputs: ["f", "wf", "bf"], outputs: ["y"], attributes: ["transB": .int(1)]),
        ], initializers: [
            "w0": t([c, 3, 3, 3], 0.5), "b0": t([c], 0.5), "w1": t([e, c, 1, 1], 0.4), "b1": t([e], 0.5),
            "lo": .scalar(0), "hi": .scalar(6), "w2": t([e, 1, 3, 3], 0.5), "b2": t([e], 0.3),
            "w3": t([c, e, 1, 1], 0.3), "b3": t([c], 0.2), "w4": t([e, c, 1, 1], 0.4),
            "w5": t([e, 1, 3, 3], 0.5), "b5": t([e], 0.1), "g": t([e], 1), "beta": t([e], 0.5),
            "mean": t([e], 0.5), "var": Tensor(shape: [e], floats: (0..<e).map { Float($0 % 3) + 0.5 }),
            "k": t([1, e, 1, 1], 2), "wf": t([classes, e], 0.5), "bf": t([classes], 0.1),
        ], inputs: [ValueInfo(name: "x", dtype: .float32, shape: [nil, 3, nil, nil])],
           outputs: [ValueInfo(name: "y", dtype: .float32, shape: nil)], opsets: ["": 17])
    }

    func testChainCoversThePerImageNodes() throws {
        let session = try Session(graph: Self.mobileGraph())
        XCTAssertEqual(session.imageChains.count, 1)
        let chain = try XCTUnwrap(session.imageChains[0])
        XCTAssertEqual(session.plan[chain.range].map(\.name),
                       ["stem", "expand", "clip", "dw", "project", "add", "expand2", "dw2", "bn", "relu", "scale", "gap"])
        XCTAssertEqual(chain.inputSlots.count, 1, "reads x only")
        XCTAssertEqual(chain.outputSlots.count, 1, "writes p only")
    }

    func testImageChainsGiveTheLayerByLayerBytes() throws {
        let session = try Session(graph: Self.mobileGraph())
        session.fp32ImageChains = true  // the chain path itself, small images included
        var rng = TestRNG(seed: 5)
        let paths = [MPQ_PATH_REFERENCE, MPQ_PATH_AUTO] + [MPQ_PATH_AVX2, MPQ_PATH_VNNI].filter { mpq_kernel_path_available($0) != 0 }
        // Sizes hit the depthwise kernels' narrow (gather) and wide (row, plane) plans;
        // batch 1 runs no chain, 3 and 5 split unevenly over the cores.
        for (n, hw) in [(2, 64), (3, 30), (5, 15), (1, 28)] {
            let x = Tensor(shape: [n, 3, hw, hw], floats: (0..<n * 3 * hw * hw).map { _ in rng.float(-2...2) })
            for path in paths {
                XCTAssertEqual(mpq_set_kernel_path(path), 0)
                defer { mpq_set_kernel_path(MPQ_PATH_AUTO) }
                let (plain, chained, before) = try Self.bothWays(session, x)
                XCTAssertEqual(session.imageChainsRun - before, n > 1 ? 1 : 0, "n \(n)")
                XCTAssertEqual(chained["y"]!.shape, [n, 5])
                XCTAssertEqual(chained["y"]!.floats.map(\.bitPattern), plain["y"]!.floats.map(\.bitPattern),
                               "n \(n) \(hw)x\(hw) path \(String(cString: mpq_kernel_path_name(path)))")
                // An observer or a kept intermediate runs layer by layer, same bytes.
                let kept = try session.run(["x": x], keep: ["d1"])
                XCTAssertEqual(session.imageChainsRun - before, n > 1 ? 1 : 0, "keep turns the chain off")
                XCTAssertEqual(kept["y"]!.floats.map(\.bitPattern), plain["y"]!.floats.map(\.bitPattern))
            }
        }
        print("image chains, paths covered:", paths.map { String(cString: mpq_kernel_path_name($0)) }.joined(separator: ", "))
    }

    /// A graph output inside the chain, and an intermediate read after it, come out whole.
    func testChainOutputsReadLaterAndGraphOutputs() throws {
        var g = Self.mobileGraph()
        g.outputs.append(ValueInfo(name: "r1", dtype: .float32, shape: nil))
        g.nodes.append(Node(name: "late", opType: "Flatten", inputs: ["e1c"], outputs: ["late_out"]))
        g.outputs.append(ValueInfo(name: "late_out", dtype: .float32, shape: nil))
        let session = try Session(graph: g)
        session.fp32ImageChains = true  // 3x20x20 images are under the size cut
        let chain = try XCTUnwrap(session.imageChains[0])
        XCTAssertEqual(chain.outputSlots.count, 3, "p, r1 (graph output), e1c (read by `late`)")
        var rng = TestRNG(seed: 8)
        let x = Tensor(shape: [3, 3, 20, 20], floats: (0..<3 * 3 * 400).map { _ in rng.float(-2...2) })
        let (plain, chained, _) = try Self.bothWays(session, x)
        for name in ["y", "r1", "late_out"] {
            XCTAssertEqual(chained[name]!.shape, plain[name]!.shape, name)
            XCTAssertEqual(chained[name]!.floats.map(\.bitPattern), plain[name]!.floats.map(\.bitPattern), name)
        }
    }

    /// The default FP32 policy (`chainRunsImageByImage`): images under
    /// `fp32ChainMinImageElements` run layer by layer (the per-node cost times the batch
    /// outweighs the cache gain), larger ones image by image; the bytes are the same.
    func testSmallFP32ImagesRunLayerByLayer() throws {
        let session = try Session(graph: Self.mobileGraph())
        session.fp32ImageChains = nil
        var rng = TestRNG(seed: 12)
        for (hw, chained) in [(20, false), (73, false), (74, true), (96, true)] {
            XCTAssertEqual(3 * hw * hw >= Session.fp32ChainMinImageElements, chained, "\(hw)")
            let x = Tensor(shape: [3, 3, hw, hw], floats: (0..<3 * 3 * hw * hw).map { _ in rng.float(-2...2) })
            let (plain, out, before) = try Self.bothWays(session, x)
            XCTAssertEqual(session.imageChainsRun - before, chained ? 1 : 0, "3x\(hw)x\(hw)")
            XCTAssertEqual(out["y"]!.floats.map(\.bitPattern), plain["y"]!.floats.map(\.bitPattern), "3x\(hw)x\(hw)")
        }
    }

    /// An FP32 chain runs image by image up to its first Conv with `ImageChain.largeWeights`
    /// weights or more, the rest layer by layer over the whole batch, blocked (a chain of its
    /// own, `wholeBatch`, s37); the bytes are those of the layer-by-layer node-by-node run.
    /// stem (3 -> 128), `mids` Convs 128 -> 128 (147K weights each), `big` 128 -> 256 (295K, large), GAP.
    static func cutGraph(mids: Int) -> Graph {
        var rng = TestRNG(seed: 23)
        func t(_ shape: [Int], _ scale: Float) -> Tensor {
            Tensor(shape: shape, floats: (0..<shape.reduce(1, *)).map { _ in rng.float(-scale...scale) })
        }
        let pad1: [String: Attribute] = ["pads": .ints([1, 1, 1, 1])]
        var nodes = [Node(name: "stem", opType: "Conv", inputs: ["x", "w0", "b0"], outputs: ["s"], attributes: pad1.merging(["strides": .ints([2, 2])]) { a, _ in a }),
                     Node(name: "relu0", opType: "Relu", inputs: ["s"], outputs: ["m0"])]
        var inits: [String: Tensor] = ["w0": t([128, 3, 3, 3], 0.5), "b0": t([128], 0.2), "w2": t([256, 128, 3, 3], 0.05), "b2": t([256], 0.2)]
        for i in 1...mids {
            nodes.append(Node(name: "mid\(i)", opType: "Conv", inputs: ["m\(i - 1)", "w1_\(i)", "b1_\(i)"], outputs: ["m\(i)"], attributes: pad1))
            inits["w1_\(i)"] = t([128, 128, 3, 3], 0.05)
            inits["b1_\(i)"] = t([128], 0.2)
        }
        nodes += [
            Node(name: "big", opType: "Conv", inputs: ["m\(mids)", "w2", "b2"], outputs: ["c"], attributes: pad1),
            Node(name: "relu", opType: "Relu", inputs: ["c"], outputs: ["r"]),
            Node(name: "gap", opType: "GlobalAveragePool", inputs: ["r"], outputs: ["p"]),
            Node(name: "flat", opType: "Flatten", inputs: ["p"], outputs: ["y"]),
        ]
        return Graph(nodes: nodes, initializers: inits, inputs: [ValueInfo(name: "x", dtype: .float32, shape: [nil, 3, nil, nil])],
                     outputs: [ValueInfo(name: "y", dtype: .float32, shape: nil)], opsets: ["": 17])
    }

    func testChainCutBeforeLargeWeights() throws {
        var rng = TestRNG(seed: 29)
        func t(_ shape: [Int], _ scale: Float) -> Tensor {
            Tensor(shape: shape, floats: (0..<shape.reduce(1, *)).map { _ in rng.float(-scale...scale) })
        }
        XCTAssertGreaterThanOrEqual(256 * 128 * 9, ImageChain.largeWeights)
        XCTAssertLessThan(128 * 128 * 9, ImageChain.largeWeights)
        // Four 147K-weight Convs before `big`: the large tail holds under half the weights, no cut.
        let whole = try XCTUnwrap(try Session(graph: Self.cutGraph(mids: 4)).imageChains[0])
        XCTAssertTrue(whole.prefix.isEmpty)
        let session = try Session(graph: Self.cutGraph(mids: 1))
        session.fp32ImageChains = true
        let chain = try XCTUnwrap(session.imageChains[0])
        XCTAssertEqual(session.plan[chain.range].map(\.name).last, "gap")
        let prefix = try XCTUnwrap(chain.prefix.first)
        XCTAssertEqual(session.plan[prefix.range].map(\.name).last, "mid1", "the chain stops before `big`")
        XCTAssertTrue(Session.fp32ChainCut)
        XCTAssertEqual(session.chainToRun(chain).range, prefix.range)
        // The rest (s37) is a chain of its own, run over the whole batch with its blocked Convs.
        let rest = try XCTUnwrap(session.imageChains[prefix.range.upperBound])
        XCTAssertTrue(rest.wholeBatch)
        XCTAssertFalse(chain.wholeBatch)
        XCTAssertEqual(rest.range.upperBound, chain.range.upperBound)
        XCTAssertEqual(session.plan[rest.range].map(\.name).first, "big")
        let paths = [MPQ_PATH_REFERENCE] + [MPQ_PATH_AVX2, MPQ_PATH_VNNI].filter { mpq_kernel_path_available($0) != 0 }
        for (n, hw) in [(3, 8), (5, 6), (1, 7)] {
            let x = t([n, 3, hw, hw], 2)
            for path in paths {
                XCTAssertEqual(mpq_set_kernel_path(path), 0)
                defer { mpq_set_kernel_path(MPQ_PATH_AUTO) }
                session.runsBlockedConvs = false
                session.runsImageChains = false
                let nodeByNode = try session.run(["x": x])
                session.runsBlockedConvs = true
                let blockedBefore = session.blockedChainsRun
                let (plain, chained, before) = try Self.bothWays(session, x)
                XCTAssertEqual(session.imageChainsRun - before, n > 1 ? 1 : 0)
                // Without image chains the prefix and the rest run blocked over the batch; with
                // them the prefix runs image by image (batch 1: blocked) and the rest blocked.
                let blocked = Session.blockedPath ? (n > 1 ? 3 : 4) : 0
                XCTAssertEqual(session.blockedChainsRun - blockedBefore, blocked, "n \(n) path \(path.rawValue)")
                XCTAssertEqual(chained["y"]!.shape, [n, 256])
                XCTAssertEqual(chained["y"]!.floats.map(\.bitPattern), plain["y"]!.floats.map(\.bitPattern), "n \(n) path \(path.rawValue)")
                XCTAssertEqual(chained["y"]!.floats.map(\.bitPattern), nodeByNode["y"]!.floats.map(\.bitPattern), "n \(n) path \(path.rawValue)")
            }
        }
    }

    /// Nodes whose output image may depend on other images, or on non-constant weights,
    /// are left out.
    func testNotPerImage() {
        let consts: [String: Tensor] = ["w": Tensor.zeros([4, 4, 1, 1]), "k4": Tensor.zeros([2, 4, 1, 1]), "k1": Tensor.zeros([1, 4, 1, 1])]
        let isConst = { (n: String) in consts[n] != nil }
        func per(_ op: String, _ ins: [String]) -> Bool {
            ImageChain.isPerImage(Node(name: "n", opType: op, inputs: ins, outputs: ["o"]), isConstant: isConst, constants: consts)
        }
        XCTAssertTrue(per("Conv", ["x", "w"]))
        XCTAssertFalse(per("Conv", ["x", "v"]), "weights from a value")
        XCTAssertTrue(per("Mul", ["x", "k1"]))
        XCTAssertFalse(per("Mul", ["x", "k4"]), "a constant with a batch axis")
        XCTAssertTrue(per("Add", ["x", "z"]))
        XCTAssertFalse(per("Flatten", ["x"]))
        XCTAssertFalse(per("Gemm", ["x", "w"]))
        XCTAssertFalse(per("Relu", ["w"]), "a constant input")
    }
}
