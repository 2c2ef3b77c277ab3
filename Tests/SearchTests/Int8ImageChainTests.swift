import Foundation
import XCTest
@testable import Kernels
import ONNX
@testable import Search

/// The session's image chains (docs/image-chains.md) under the INT8 runtime: all-INT8 under
/// the `ort` scheme with uint8 chains (codes between the layers), and under `inputs`, a batch
/// run image by image must give the bytes of the layer-by-layer run on every kernel path.
final class Int8ImageChainTests: XCTestCase {
    /// MobileNetV2-shaped, as the runtime sees it after the graph passes: stem, inverted
    /// residual block (expand 1x1 + Relu6, depthwise 3x3 + Relu6, project 1x1, Add), a
    /// stride-2 depthwise block, GlobalAveragePool, Flatten, Gemm.
    /// `n` images of 3 x `side` x `side` uniform in [-2, 2) from a 64-bit LCG at `state`.
    static func images(_ n: Int, side: Int = 40, state: inout UInt64) -> Tensor {
        var s = state
        defer { state = s }
        return Tensor(shape: [n, 3, side, side], floats: (0..<n * 3 * side * side).map { _ in
            s = s &* 6364136223846793005 &+ 1442695040888963407
            return Float(s >> 40) / Float(1 << 24) * 4 - 2
        })
    }

    static func mobileGraph(c: Int = 8, e: Int = 32) -> Graph {
        var state: UInt64 = 21
        func t(_ shape: [Int], _ scale: Float) -> Tensor {
            Tensor(shape: shape, floats: (0..<shape.reduce(1, *)).map { _ in
                state = state &* 6364136223846793005 &+ 1442695040888963407
                return (Float(state >> 40) / Float(1 << 24) * 2 - 1) * scale
            })
        }
        return Graph(nodes: [
            Node(name: "stem", opType: "Conv", inputs: ["x", "w0", "b0"], outputs: ["s0"], attributes: ["pads": .ints([1, 1, 1, 1]), "strides": .ints([2, 2])]),
            Node(name: "stem_clip", opType: "Clip", inputs: ["s0", "lo", "hi"], outputs: ["s"]),
            Node(name: "expand", opType: "Conv", inputs: ["s", "w1", "b1"], outputs: ["e1"]),
            Node(name: "expand_clip", opType: "Clip", inputs: ["e1", "lo", "hi"], outputs: ["e1c"]),
            Node(name: "dw", opType: "Conv", inputs: ["e1c", "w2", "b2"], outputs: ["d1"], attributes: ["pads": .ints([1, 1, 1, 1]), "group": .int(e)]),
            Node(name: "dw_clip", opType: "Clip", inputs: ["d1", "lo", "hi"], outputs: ["d1c"]),
            Node(name: "project", opType: "Conv", inputs: ["d1c", "w3", "b3"], outputs: ["p1"]),
            Node(name: "add", opType: "Add", inputs: ["s", "p1"], outputs: ["r1"]),
            Node(name: "expand2", opType: "Conv", inputs: ["r1", "w4", "b4"], outputs: ["e2"]),
            Node(name: "expand2_relu", opType: "Relu", inputs: ["e2"], outputs: ["e2r"]),
            Node(name: "dw2", opType: "Conv", inputs: ["e2r", "w5", "b5"], outputs: ["d2"],
                 attributes: ["pads": .ints([1, 1, 1, 1]), "group": .int(e), "strides": .ints([2, 2])]),
            Node(name: "gap", opType: "GlobalAveragePool", inputs: ["d2"], outputs: ["p"]),
            Node(name: "flat", opType: "Flatten", inputs: ["p"], outputs: ["f"]),
            Node(name: "fc", opType: "Gemm", inputs: ["f", "wf", "bf"], outputs: ["y"], attributes: ["transB": .int(1)]),
        ], initializers: [
            "w0": t([c, 3, 3, 3], 0.5), "b0": t([c], 0.5), "w1": t([e, c, 1, 1], 0.4), "b1": t([e], 0.5),
            "w2": t([e, 1, 3, 3], 0.5), "b2": t([e], 0.3), "w3": t([c, e, 1, 1], 0.3), "b3": t([c], 0.2),
            "w4": t([e, c, 1, 1], 0.4), "b4": t([e], 0.2), "w5": t([e, 1, 3, 3], 0.5), "b5": t([e], 0.1),
            "wf": t([5, e], 0.5), "bf": t([5], 0.1), "lo": .scalar(0), "hi": .scalar(6),
        ], inputs: [ValueInfo(name: "x", dtype: .float32, shape: [nil, 3, 40, 40])],
           outputs: [ValueInfo(name: "y", dtype: .float32, shape: nil)], opsets: ["": 13])
    }

    func runtime(_ graph: Graph, scheme: ExecutionScheme, calib: Tensor) throws -> MixedPrecisionRuntime {
        let session = try Session(graph: GraphPasses.optimize(graph))
        let data = try Dataset(arrays: [graph.inputs[0].name: calib], path: "memory", graph: graph)
        let table = try Calibrator(session: session, scheme: scheme).calibrate(
            dataset: data, options: CalibrationOptions(method: .minmax), modelDigest: graph.digest)
        return try MixedPrecisionRuntime(session: session, calibration: table, scheme: scheme)
    }

    /// Output bits with chains on and off, for each kernel path and batch.
    func check(_ rt: MixedPrecisionRuntime, feeds: [[String: Tensor]], name: String) throws {
        try rt.apply(rt.allInt8)
        let session = rt.session
        // The chain path itself (an all-INT8 map runs layer by layer by default: `testAllInt8RunsLayerByLayer`).
        session.int8ImageChains = true
        defer { session.int8ImageChains = Session.int8ImageChainsDefault }
        XCTAssertFalse(session.imageChains.isEmpty, "\(name): no image chain found")
        for path in KernelPath.available {
            rt.path = path
            for f in feeds {
                session.runsImageChains = false
                let plain = try session.run(f)
                session.runsImageChains = true
                let before = session.imageChainsRun
                let chained = try session.run(f)
                let n = f.values.first!.shape[0]
                if n > 1 { XCTAssertGreaterThan(session.imageChainsRun, before, "\(name) \(path) n \(n): chains not used") }
                for o in session.graph.outputs {
                    let a = try XCTUnwrap(chained[o.name]), b = try XCTUnwrap(plain[o.name])
                    XCTAssertEqual(a.shape, b.shape)
                    XCTAssertEqual(zip(a.floats, b.floats).filter { $0.bitPattern != $1.bitPattern }.count, 0,
                                   "\(name) \(path) n \(n) \(o.name): chained outputs differ")
                }
            }
        }
        print("\(name): \(session.imageChains.count) image chains, paths \(KernelPath.available), bit-identical")
    }

    func testMobileShapedAllInt8() throws {
        let g = Self.mobileGraph()
        var state: UInt64 = 4
        func images(_ n: Int) -> Tensor { Self.images(n, state: &state) }
        let calib = images(8)
        for scheme in [ExecutionScheme.ort, .inputs] {
            let rt = try runtime(g, scheme: scheme, calib: calib)
            let codes = scheme == .ort
            try check(rt, feeds: [["x": images(5)], ["x": images(2)], ["x": images(1)]], name: "mobile \(scheme)")
            if codes { XCTAssertGreaterThan(rt.chainCounters.codesRead, 0, "the ort scheme carries codes inside the chain") }
        }
    }

    /// The default policy (`Session.mostlyInt8`, `chainRunsImageByImage`): on small images a
    /// chain whose Convs mostly run INT8 runs layer by layer, all-FP32 and mostly-FP32 maps keep
    /// the chain; the bytes are the same either way.
    func testAllInt8RunsLayerByLayer() throws {
        let g = Self.mobileGraph()
        var state: UInt64 = 9
        // Calibrated on the graph's declared 3x40x40, run on 3x80x80 (the session takes any size).
        let rt = try runtime(g, scheme: .ort, calib: Self.images(3, state: &state))
        let images = Self.images(3, side: 80, state: &state)
        let session = rt.session
        // 3x80x80 images are under `int8ChainMinImageElements`: mostly-INT8 chains run layer by
        // layer; they are over `fp32ChainMinImageElements`: the others run image by image.
        XCTAssertLessThan(3 * 80 * 80, Session.int8ChainMinImageElements)
        XCTAssertGreaterThanOrEqual(3 * 80 * 80, Session.fp32ChainMinImageElements)
        session.int8ImageChains = nil
        defer { session.int8ImageChains = Session.int8ImageChainsDefault }
        let convs = session.plan.filter { $0.opType == "Conv" }.map(\.name)
        XCTAssertEqual(convs.count, 6)
        // (INT8 Convs of 6, chain expected): all FP32, 3 of 6 (not more than half), 4 of 6, all.
        for (int8, chained) in [(0, true), (3, true), (4, false), (6, false)] {
            try rt.apply(PrecisionMap(layers: Dictionary(uniqueKeysWithValues: rt.layerNames.map {
                ($0, convs.prefix(int8).contains($0) ? Precision.int8 : .fp32)
            })))
            let before = session.imageChainsRun
            let out = try session.run(["x": images])
            XCTAssertEqual(session.imageChainsRun - before, chained ? 1 : 0, "\(int8) INT8 Convs")
            session.runsImageChains = false
            let plain = try session.run(["x": images])
            session.runsImageChains = true
            XCTAssertEqual(out["y"]!.floats.map(\.bitPattern), plain["y"]!.floats.map(\.bitPattern), "\(int8) INT8 Convs")
        }
        // Large images (3x160x160 per image): all-INT8 runs image by image too.
        let large = Self.images(2, side: 160, state: &state)
        XCTAssertGreaterThanOrEqual(3 * 160 * 160, Session.int8ChainMinImageElements)
        try rt.apply(rt.allInt8)
        let before = session.imageChainsRun
        let out = try session.run(["x": large])
        XCTAssertEqual(session.imageChainsRun - before, 1, "all INT8, large images")
        session.runsImageChains = false
        let plain = try session.run(["x": large])
        session.runsImageChains = true
        XCTAssertEqual(out["y"]!.floats.map(\.bitPattern), plain["y"]!.floats.map(\.bitPattern), "all INT8, large images")
    }

    /// A batch's image chains call the same region-op closures from several threads at once.
    /// Each `apply` makes fresh closures, whose requantizing tables for movement ops (the
    /// detector's Concat of codes on other grids) are filled on first use: before s33 two
    /// chains inserting at once raced on one dictionary (a crash in the suite, one run in
    /// five), and the chain counters' increments raced (counts short). Fresh closures, one
    /// concurrent batch each, many times: the same bits and the same counts every time.
    func testConcurrentChainsShareRegionOps() throws {
        let m = try Int8ChainTests.detector()
        let rt = m.runtime, session = rt.session
        session.int8ImageChains = true
        defer { session.int8ImageChains = Session.int8ImageChainsDefault }
        let feeds = m.data.batch(0..<8)
        var first: [UInt32]?
        var counts: [Int]?
        for round in 0..<40 {
            try rt.apply(rt.allInt8)   // fresh region-op closures, empty tables
            rt.chainCounters.reset()
            let before = session.imageChainsRun
            let out = try session.run(feeds)
            XCTAssertGreaterThan(session.imageChainsRun, before, "round \(round): chains not used")
            let bits = try XCTUnwrap(out[session.graph.outputs[0].name]).floats.map(\.bitPattern)
            let c = rt.chainCounters
            let now = [c.codesRead, c.codesWritten, c.movedAsCodes, c.pooledAsCodes]
            if let first, let counts {
                XCTAssertEqual(bits, first, "round \(round): outputs differ")
                XCTAssertEqual(now, counts, "round \(round): chain counters differ")
            } else {
                first = bits
                counts = now
                XCTAssertGreaterThan(c.codesRead, 0, "no codes read in the chains")
            }
        }
    }

    func testFixturesAllInt8() throws {
        for m in [try Int8ChainTests.digits(), try Int8ChainTests.detector()] {
            try check(m.runtime, feeds: [m.data.batch(0..<7), m.data.batch(0..<1)], name: m.output)
        }
    }

    /// A chain cut before large weights (ResNet-18's layer3 and on) with a mixed map: the
    /// INT8 stem in the image-by-image prefix, the rest FP32 as its own chain over the whole
    /// batch, blocked (s37, `ImageChain.wholeBatch`). The bytes are those of a node-by-node
    /// NCHW run, both schemes, every path.
    func testCutChainWithMixedMap() throws {
        var state: UInt64 = 37
        func t(_ shape: [Int], _ scale: Float) -> Tensor {
            Tensor(shape: shape, floats: (0..<shape.reduce(1, *)).map { _ in
                state = state &* 6364136223846793005 &+ 1442695040888963407
                return (Float(state >> 40) / Float(1 << 24) * 2 - 1) * scale
            })
        }
        let pad1: [String: Attribute] = ["pads": .ints([1, 1, 1, 1])]
        let g = Graph(nodes: [
            Node(name: "stem", opType: "Conv", inputs: ["x", "w0", "b0"], outputs: ["s"], attributes: pad1.merging(["strides": .ints([2, 2])]) { a, _ in a }),
            Node(name: "relu0", opType: "Relu", inputs: ["s"], outputs: ["m0"]),
            Node(name: "mid", opType: "Conv", inputs: ["m0", "w1", "b1"], outputs: ["m1"], attributes: pad1),
            Node(name: "big", opType: "Conv", inputs: ["m1", "w2", "b2"], outputs: ["c"], attributes: pad1),
            Node(name: "relu", opType: "Relu", inputs: ["c"], outputs: ["r"]),
            Node(name: "big2", opType: "Conv", inputs: ["r", "w3", "b3"], outputs: ["c2"], attributes: pad1),
            Node(name: "gap", opType: "GlobalAveragePool", inputs: ["c2"], outputs: ["p"]),
            Node(name: "flat", opType: "Flatten", inputs: ["p"], outputs: ["y"]),
        ], initializers: ["w0": t([128, 3, 3, 3], 0.5), "b0": t([128], 0.2), "w1": t([128, 128, 3, 3], 0.05), "b1": t([128], 0.2),
                          "w2": t([256, 128, 3, 3], 0.05), "b2": t([256], 0.2), "w3": t([256, 256, 3, 3], 0.03), "b3": t([256], 0.1)],
           inputs: [ValueInfo(name: "x", dtype: .float32, shape: [nil, 3, nil, nil])],
           outputs: [ValueInfo(name: "y", dtype: .float32, shape: nil)], opsets: ["": 17])
        for scheme in [ExecutionScheme.ort, .inputs] {
            let rt = try runtime(g, scheme: scheme, calib: Self.images(4, side: 12, state: &state))
            let session = rt.session
            let chain = try XCTUnwrap(session.imageChains[0])
            let prefix = try XCTUnwrap(chain.prefix.first, "cut before `big`")
            XCTAssertTrue(try XCTUnwrap(session.imageChains[prefix.range.upperBound]).wholeBatch)
            try rt.apply(PrecisionMap(layers: Dictionary(uniqueKeysWithValues: rt.layerNames.map { ($0, $0 == "stem" ? Precision.int8 : .fp32) })))
            session.fp32ImageChains = true
            defer { session.fp32ImageChains = Session.fp32ImageChainsDefault }
            for path in KernelPath.available {
                rt.path = path
                for n in [3, 1] {
                    let x = Self.images(n, side: 12, state: &state)
                    session.runsImageChains = false
                    session.runsBlockedConvs = false
                    let plain = try session.run(["x": x])
                    session.runsImageChains = true
                    session.runsBlockedConvs = Session.blockedDefault
                    let blockedBefore = session.blockedChainsRun
                    let chained = try session.run(["x": x])
                    if Session.blockedPath && Session.blockedDefault {
                        XCTAssertGreaterThan(session.blockedChainsRun, blockedBefore, "\(scheme) \(path) n \(n): the rest ran node by node")
                    }
                    XCTAssertEqual(chained["y"]!.floats.map(\.bitPattern), plain["y"]!.floats.map(\.bitPattern), "\(scheme) \(path) n \(n)")
                }
            }
        }
    }
}
