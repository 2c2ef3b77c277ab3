import Foundation
import XCTest
@testable import Kernels
import ONNX
@testable import Search

/// The `ort` scheme's uint8 chains (docs/int8-chains.md): carrying requantized tensors as
/// uint8 codes between INT8 ops must change no output bit (the float path, `uint8Chains`
/// off, is the reference) on every kernel path, and must really be used.
final class Int8ChainTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures").path

    struct Model {
        let runtime: MixedPrecisionRuntime
        let data: Dataset
        let output: String
    }

    static func model(_ onnx: String, calib: String, holdout: String, calibRows: Int, rows: Int) throws -> Model {
        let graph = try ModelLoader.load(path: "\(fixtures)/\(onnx)")
        let session = try Session(graph: GraphPasses.optimize(graph))
        let calibration = try Dataset(path: "\(fixtures)/\(calib)", graph: graph)
        let table = try Calibrator(session: session, scheme: .ort).calibrate(
            dataset: calibration.subset(Array(0..<calibRows), path: calib), options: CalibrationOptions(method: .minmax),
            modelDigest: graph.digest)
        let data = try Dataset(path: "\(fixtures)/\(holdout)", graph: graph).subset(Array(0..<rows), path: holdout)
        let runtime = try MixedPrecisionRuntime(session: session, calibration: table, scheme: .ort)
        return Model(runtime: runtime, data: data, output: graph.outputs[0].name)
    }

    static func detector() throws -> Model {
        try model("detection/shapes_det.onnx", calib: "detection/shapes_det_calib.npz", holdout: "detection/shapes_det_holdout.npz",
                  calibRows: 16, rows: 9)
    }

    static func digits() throws -> Model {
        try model("digits_cnn.onnx", calib: "digits_calib.npz", holdout: "digits_holdout.npz", calibRows: 180, rows: 40)
    }

    /// Every output's bit patterns over the rows, in batches of 8 and a batch of 1.
    func outputs(_ m: Model, _ map: PrecisionMap, chains: Bool, path: KernelPath = .auto) throws -> [UInt32] {
        m.runtime.uint8Chains = chains
        m.runtime.path = path
        try m.runtime.apply(map)
        var bits: [UInt32] = []
        for r in m.data.batches(size: 8) + [0..<1] {
            let outs = try m.runtime.session.run(m.data.batch(r))
            for o in m.runtime.session.graph.outputs {
                let t = try XCTUnwrap(outs[o.name])
                XCTAssertFalse(t.isCodesOnly, "graph output \(o.name) must be float")
                bits += t.floats.map(\.bitPattern)
            }
        }
        return bits
    }

    func checkAllInt8(_ m: Model, name: String) throws {
        for path in KernelPath.available {
            let reference = try outputs(m, m.runtime.allInt8, chains: false, path: path)
            XCTAssertEqual(m.runtime.session.codesInputNodes, [], "chains off: nothing reads codes")
            m.runtime.chainCounters.reset()
            let chained = try outputs(m, m.runtime.allInt8, chains: true, path: path)
            XCTAssertEqual(chained.count, reference.count)
            XCTAssertEqual(zip(chained, reference).filter { $0 != $1 }.count, 0, "\(name) \(path): chained outputs differ")
            // Used, not silently falling back to floats.
            XCTAssertGreaterThan(m.runtime.chainCounters.codesRead, 0, "\(name) \(path): no INT8 op read codes")
            XCTAssertGreaterThan(m.runtime.chainCounters.codesWritten, 0, "\(name) \(path): no INT8 op wrote codes")
            print("\(name) \(path): \(m.runtime.chainCounters.codesRead) inputs read as codes, \(m.runtime.chainCounters.codesWritten) outputs written as codes, \(reference.count) output values bit-identical")
        }
    }

    func testDetectorAllInt8ChainedIsBitIdentical() throws {
        let m = try Self.detector()
        try checkAllInt8(m, name: "shapes_det")
        // The detector's chains: every Conv but the stem (fed the float images) reads its
        // input as codes, through the SiLUs' Sigmoid/Mul and the neck's Resize and Concat.
        try m.runtime.apply(m.runtime.allInt8)
        var codesIn: [String: Bool] = [:]
        _ = try m.runtime.session.run(m.data.batch(0..<2), observeCodes: true) { node, ins, _ in
            codesIn[node.name] = ins.contains { $0?.isCodesOnly == true }
        }
        let convs = m.runtime.session.plan.filter { $0.opType == "Conv" }.map(\.name)
        XCTAssertEqual(convs.filter { codesIn[$0] == true }.count, convs.count - 1)
        XCTAssertEqual(codesIn["/up/Resize"], true)
        XCTAssertEqual(codesIn["/Concat"], true)
        XCTAssertEqual(codesIn["/stem/stem.0/Conv"], false)
        XCTAssertEqual(codesIn["/down1/down1.2/Mul"], true)
    }

    func testDigitsAllInt8ChainedIsBitIdentical() throws {
        try checkAllInt8(try Self.digits(), name: "digits_cnn")
    }

    /// Mixed maps (FP32 islands: codes meet float consumers and must be materialised), full
    /// runs and incremental runs from the FP32 cache, chained == float path.
    func testMixedMapsAndIncrementalRunsAreBitIdentical() throws {
        let m = try Self.detector()
        let rt = m.runtime
        let feeds = m.data.batch(0..<4)
        let cache = try rt.session.fp32Activations(feeds)
        for trial in 0..<2 {
            var map = rt.allInt8
            for (i, name) in rt.layerNames.enumerated() where (i * 5 + trial * 3) % 4 == 0 { map.layers[name] = .fp32 }
            let reference = try outputs(m, map, chains: false)
            XCTAssertTrue(try outputs(m, map, chains: true) == reference, "map \(trial): full runs differ")
            rt.uint8Chains = false
            try rt.apply(map)
            let want = try rt.session.run(feeds)
            rt.uint8Chains = true
            try rt.apply(map)
            let changed = rt.changedNodes(from: rt.allFP32, to: map)
            let (got, _) = try rt.session.runIncremental(cache: cache, changedNodes: changed)
            for (k, v) in want {
                XCTAssertTrue(got[k]?.floats.map(\.bitPattern) == v.floats.map(\.bitPattern), "map \(trial): incremental \(k) differs")
            }
            // Kept values and observers see floats.
            let keep = Set(rt.session.plan.compactMap { $0.outputs.first })
            let kept = try rt.session.run(feeds, keep: keep)
            XCTAssertFalse(kept.values.contains { $0.isCodesOnly })
        }
    }

    /// The digits CNN's AveragePool and GlobalAveragePool run as ORT's QLinearAveragePool /
    /// QLinearGlobalAveragePool on codes (`pooledAsCodes`; with the chains the input arrives as
    /// codes), and each one's output is `RegionKernels.ortAveragePool` of its input's codes,
    /// with chains and without.
    func testDigitsAveragePoolsRunOrtArithmeticOnCodes() throws {
        let m = try Self.digits()
        let rt = m.runtime
        let feeds = m.data.batch(0..<8)
        let pools = rt.session.plan.filter { $0.opType == "AveragePool" || $0.opType == "GlobalAveragePool" }
        XCTAssertEqual(pools.count, 2)
        // Layer by layer: image chains (docs/image-chains.md) would run each pool once per
        // image, and the counter would count images, not pools. Chains on == off is
        // Int8ImageChainTests' job.
        rt.session.runsImageChains = false
        for chains in [true, false] {
            rt.uint8Chains = chains
            try rt.apply(rt.allInt8)
            rt.chainCounters.reset()
            _ = try rt.session.run(feeds)
            if chains {
                XCTAssertEqual(rt.chainCounters.pooledAsCodes, 2, "both pools must run ORT's arithmetic on codes")
            }
            let keep = Set(pools.flatMap { [$0.inputs[0], $0.outputs[0]] })
            let kept = try rt.session.run(feeds, keep: keep)
            for node in pools {
                let qi = try XCTUnwrap(rt.plan.requantized[node.inputs[0]]), q = try XCTUnwrap(rt.plan.requantized[node.outputs[0]])
                let x = try XCTUnwrap(kept[node.inputs[0]]), y = try XCTUnwrap(kept[node.outputs[0]])
                let xc = try XCTUnwrap(RegionKernelsProbe.codes(x, qi))
                let want = try XCTUnwrap(try RegionKernels.ortAveragePool(node, x.shape, xc, qi, q, path: .reference))
                XCTAssertEqual(y.floats.map(\.bitPattern), want.materialized().floats.map(\.bitPattern), "\(node.name) chains \(chains)")
            }
        }
    }
}

/// A float tensor on the grid `q` as its codes (quantizing the grid gives the codes back).
enum RegionKernelsProbe {
    static func codes(_ t: Tensor, _ q: ActivationQuant) -> [UInt8]? {
        t.floats.withUnsafeBufferPointer { p in uninitializedArray(count: p.count) { quantizeU8(p, q, path: .reference, into: $0) } }
    }
}
