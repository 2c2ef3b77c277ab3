import Foundation
import XCTest
import Kernels
import ONNX
@testable import Search

/// The `ort` scheme (docs/quantization.md, "Schemes") on the digits CNN: which nodes run in
/// INT8, that the runtime really requantizes, that incremental evaluation equals full runs,
/// and that the QDQ export, executed as a float graph, reproduces the runtime.
final class ExecutionSchemeTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures").path

    struct Digits {
        let graph: Graph
        let session: Session
        let table: CalibrationTable
        let holdout: Dataset
        func runtime(_ scheme: ExecutionScheme) throws -> MixedPrecisionRuntime {
            try MixedPrecisionRuntime(session: session, calibration: table, scheme: scheme)
        }
    }

    static func digits() throws -> Digits {
        let graph = try ModelLoader.load(path: "\(fixtures)/digits_cnn.onnx")
        let session = try Session(graph: GraphPasses.optimize(graph))
        let calib = try Dataset(path: "\(fixtures)/digits_calib.npz", graph: graph)
        let holdout = try Dataset(path: "\(fixtures)/digits_holdout.npz", graph: graph)
        let table = try Calibrator(session: session, scheme: .ort).calibrate(
            dataset: calib, options: CalibrationOptions(method: .minmax), modelDigest: graph.digest)
        return Digits(graph: graph, session: session, table: table, holdout: holdout)
    }

    /// Logits of a full run, batch by batch. The batching must match the evaluator's: FP32
    /// GEMMs round differently for other batch sizes, and a requantization can amplify that.
    func logits(_ runtime: MixedPrecisionRuntime, _ map: PrecisionMap, _ data: Dataset, batch: Int = 128) throws -> [Float] {
        try runtime.apply(map)
        return try data.batches(size: batch).flatMap { try runtime.session.run(data.batch($0))["logits"]!.floats }
    }

    func testCalibrationCoversOutputsAndRegionOps() throws {
        let d = try Self.digits()
        let ort = Calibrator.requiredTensors(session: d.session, scheme: .ort)
        let inputs = Calibrator.requiredTensors(session: d.session, scheme: .inputs)
        XCTAssertTrue(Set(inputs).isSubset(of: Set(ort)), "an ort table serves the inputs scheme too")
        for t in ["/block/Add_output_0", "/block/relu_1/Relu_output_0", "/gap/GlobalAveragePool_output_0", "/conv3/conv3.2/Relu_output_0"] {
            XCTAssertTrue(ort.contains(t), "\(t) must be calibrated under ort")
            XCTAssertFalse(inputs.contains(t))
        }
        // MaxPool shares its input's scale (its own range is kept for the inputs scheme).
        XCTAssertEqual(QuantPlan.sources(d.session)["/pool1/MaxPool_output_0"], "/block/relu_1/Relu_output_0")
    }

    func testAllInt8PlanIsOneRegion() throws {
        let d = try Self.digits()
        let rt = try d.runtime(.ort)
        let plan = rt.plan(for: rt.allInt8)
        XCTAssertEqual(plan.int8Layers.count, 7)
        XCTAssertEqual(plan.int8RegionOps, ["/block/relu_1/Relu", "/pool1/MaxPool", "/pool2/AveragePool",
                                            "/gap/GlobalAveragePool", "/flatten/Flatten"])
        // The Add's only reader is an INT8 Relu: requantized after the Relu (ORT removes the Relu).
        XCTAssertNil(plan.requantized["/block/Add_output_0"])
        XCTAssertNotNil(plan.requantized["/block/relu_1/Relu_output_0"])
        XCTAssertNil(plan.requantized["logits"], "graph outputs stay float")
        // Shared scale: MaxPool's output carries its source's parameters.
        XCTAssertEqual(plan.requantized["/pool1/MaxPool_output_0"], plan.requantized["/block/relu_1/Relu_output_0"])
        // Under inputs nothing is requantized.
        let inputs = try d.runtime(.inputs)
        XCTAssertTrue(inputs.plan(for: inputs.allInt8).requantized.isEmpty)
    }

    /// A range no uint8 grid can carry (an attention mask's -3.4e38) is never requantized.
    func testHugeRangesStayFloat() throws {
        var d = try Self.digits()
        var table = d.table
        table.ranges["/block/relu_1/Relu_output_0"] = .init(min: -3.4e38, max: 5)
        d = Digits(graph: d.graph, session: d.session, table: table, holdout: d.holdout)
        let rt = try d.runtime(.ort)
        let plan = rt.plan(for: rt.allInt8)
        XCTAssertNil(plan.requantized["/block/relu_1/Relu_output_0"])
        XCTAssertNil(plan.requantized["/pool1/MaxPool_output_0"], "shares the same source range")
        XCTAssertNotNil(plan.requantized["/pw/pw.2/Relu_output_0"])
    }

    func testRegionStopsAtFP32Layers() throws {
        let d = try Self.digits()
        let rt = try d.runtime(.ort)
        var map = rt.allInt8
        map.layers["/block/conv2/Conv"] = .fp32
        let plan = rt.plan(for: map)
        // conv2 in FP32: the Add reads a float input, so Add, its Relu and the MaxPool leave the region...
        XCTAssertFalse(plan.int8RegionOps.contains("/block/relu_1/Relu"))
        XCTAssertFalse(plan.int8RegionOps.contains("/pool1/MaxPool"))
        // ...while conv1, whose only reader is now FP32, still requantizes its output (rule 4:
        // ORT fuses a Conv into QLinearConv only with a Q after it), with the same parameters.
        XCTAssertEqual(plan.requantized["/block/relu/Relu_output_0"], rt.plan(for: rt.allInt8).requantized["/block/relu/Relu_output_0"])
        XCTAssertNotNil(plan.requantized["/block/relu/Relu_output_0"])
        // The layers after the island still chain.
        XCTAssertNotNil(plan.requantized["/pw/pw.2/Relu_output_0"])
        // Switching conv2 moves Q/DQ on its neighbours: they must be re-executed too; conv1
        // behaves as before (INT8, same requantized output), so it is not.
        let changed = rt.changedNodes(from: rt.allInt8, to: map)
        XCTAssertTrue(changed.isSuperset(of: ["/block/conv2/Conv", "/block/relu_1/Relu", "/pool1/MaxPool"]))
        XCTAssertFalse(changed.contains("/block/conv1/Conv"))
        let inputs = try d.runtime(.inputs)
        XCTAssertEqual(inputs.changedNodes(from: inputs.allInt8, to: map), ["/block/conv2/Conv"])
    }

    /// An INT8 check an FP32 run fails: the ort runtime requantizes, so its logits differ from
    /// both FP32 and the inputs scheme, while top-1 stays ONNX Runtime's 98.89.
    func testOrtRuntimeRequantizes() throws {
        let d = try Self.digits()
        let ort = try d.runtime(.ort), inputs = try d.runtime(.inputs)
        let fp32 = try logits(ort, ort.allFP32, d.holdout)
        let a = try logits(ort, ort.allInt8, d.holdout)
        let b = try logits(inputs, inputs.allInt8, d.holdout)
        XCTAssertEqual(fp32, try logits(inputs, inputs.allFP32, d.holdout), "FP32 does not depend on the scheme")
        XCTAssertGreaterThan(zip(a, fp32).filter { $0 != $1 }.count, a.count / 2)
        XCTAssertGreaterThan(zip(a, b).filter { $0 != $1 }.count, a.count / 2)
        // The GlobalAveragePool output (Gemm's input) is requantized: Gemm's inputs are exact multiples of its scale.
        let q = ort.plan(for: ort.allInt8).requantized["/flatten/Flatten_output_0"]!
        var seen: Tensor?
        try ort.apply(ort.allInt8)
        _ = try ort.session.run(d.holdout.batch(0..<8)) { node, ins, _ in if node.name == "/fc/Gemm" { seen = ins[0] } }
        for v in try XCTUnwrap(seen).floats {
            let k = v / q.scale + Float(q.zeroPoint)
            XCTAssertEqual(k, k.rounded(), accuracy: 1e-3, "Gemm input \(v) is not on the uint8 grid")
        }
    }

    /// Incremental re-execution from the FP32 and all-INT8 caches equals a full run, on
    /// mixed maps whose Q/DQ placement differs from both caches.
    func testIncrementalEqualsFullRunOnMixedMaps() throws {
        let d = try Self.digits()
        let rt = try d.runtime(.ort)
        // File order (visitSeed nil), so the kept outputs line up with a full run's rows.
        let evaluator = try CandidateEvaluator(runtime: rt, data: d.holdout, metric: .top1, batchSize: 128, visitSeed: nil)
        _ = try evaluator.evaluate(rt.allInt8)        // builds the all-INT8 cache
        for trial in 0..<6 {
            // Deterministic, varied FP32 islands (about a third of the layers per map).
            var map = rt.allInt8
            for (i, name) in rt.layerNames.enumerated() where (i * 7 + trial * 5) % 3 == 0 { map.layers[name] = .fp32 }
            if trial == 0 { map.layers["/block/conv2/Conv"] = .fp32 }
            let (_, outs) = try evaluator.evaluate(map, keepOutputs: true)
            let full = try logits(rt, map, d.holdout)
            let differing = zip(try XCTUnwrap(outs).values, full).filter { $0 != $1 }.count
            XCTAssertEqual(differing, 0, "map \(map.int8Layers): \(differing) of \(full.count) logits differ from a full run")
        }
    }

    /// The QDQ export of an ort map, executed as a float graph by mpq's own FP32 runtime,
    /// reproduces the runtime's INT8 logits (float rounding of DQ -> Conv aside), and holds
    /// Q/DQ on exactly the plan's tensors.
    func testExportMatchesRuntime() throws {
        let d = try Self.digits()
        let rt = try d.runtime(.ort)
        let exporter = try Exporter(modelPath: "\(Self.fixtures)/digits_cnn.onnx")
        var map = rt.allInt8
        map.layers["/dw/dw.0/Conv"] = .fp32
        let json = try JSONEncoder().encode(map)
        let exportMap = try ExportMap(data: json, path: "map.json")
        let data = try exporter.qdq(map: exportMap, path: "map.json", calibration: d.table, version: "test", scheme: .ort)
        let qdq = try ModelLoader.load(data: data)
        let plan = rt.plan(for: map)
        let quantized = Set(qdq.nodes.filter { $0.opType == "QuantizeLinear" }.compactMap { $0.input(0) })
        XCTAssertTrue(Set(plan.requantized.keys).isSubset(of: quantized))
        let session = try Session(graph: qdq)
        let exported = try session.run(d.holdout.batch(0..<d.holdout.count))["logits"]!.floats
        let mine = try logits(rt, map, d.holdout)
        let diffs = zip(exported, mine).map { abs($0 - $1) }
        XCTAssertLessThan(diffs.max()!, 0.05, "at most about one quantization step")
        // mpq runs the export's DQ -> Conv in float, so a requantization that lands on a
        // rounding tie can flip by one step (ORT's integer kernels flip far fewer: crosscheck).
        XCTAssertLessThan(diffs.filter { $0 > 1e-4 }.count, mine.count / 50)
        // Under inputs the same map's export has no Q on any requantized tensor.
        let inputsData = try exporter.qdq(map: exportMap, path: "map.json", calibration: d.table, version: "test", scheme: .inputs)
        let inputsQ = Set(try ModelLoader.load(data: inputsData).nodes.filter { $0.opType == "QuantizeLinear" }.compactMap { $0.input(0) })
        XCTAssertFalse(inputsQ.contains("/gap/GlobalAveragePool_output_0"))
    }

    /// An FP32 island whose input is a requantized tensor (`/block/conv1` reads the stem's
    /// output, which the INT8 residual Add also reads) must not read a DequantizeLinear
    /// output directly, or ONNX Runtime's WeightBiasQuantization quantizes its float weight
    /// and runs it as QLinearConv: the export puts `Max(x, -FLT_MAX)` in between. Run as a float
    /// graph by mpq, the guarded export still reproduces the runtime.
    func testFP32IslandReadingARequantizedTensorStaysFloat() throws {
        let d = try Self.digits()
        let rt = try d.runtime(.ort)
        let exporter = try Exporter(modelPath: "\(Self.fixtures)/digits_cnn.onnx")
        var map = rt.allInt8
        map.layers["/block/conv1/Conv"] = .fp32
        XCTAssertNotNil(rt.plan(for: map).requantized["/stem/stem.2/Relu_output_0"], "the island's input stays uint8 for the Add")
        let exportMap = try ExportMap(data: try JSONEncoder().encode(map), path: "map.json")
        let qdq = try ModelLoader.load(data: try exporter.qdq(map: exportMap, path: "map.json", calibration: d.table,
                                                              version: "test", scheme: .ort))
        let producer = Dictionary(qdq.nodes.flatMap { n in n.outputs.map { ($0, n) } }, uniquingKeysWith: { a, _ in a })
        let island = try XCTUnwrap(qdq.node(named: "/block/conv1/Conv"))
        let guardNode = try XCTUnwrap(producer[island.inputs[0]])
        XCTAssertEqual(guardNode.opType, "Max")
        XCTAssertEqual(producer[guardNode.inputs[0]]?.opType, "DequantizeLinear")
        XCTAssertEqual(qdq.initializers[guardNode.inputs[1]]?.floats, [-Float.greatestFiniteMagnitude])
        XCTAssertEqual(qdq.initializers[island.inputs[1]]?.dtype, .float32, "the island keeps its float weight")
        // INT8 layers still read their DequantizeLinear directly (ORT fuses those).
        XCTAssertEqual(producer[try XCTUnwrap(qdq.node(named: "/block/conv2/Conv")).inputs[0]]?.opType, "DequantizeLinear")
        let exported = try Session(graph: qdq).run(d.holdout.batch(0..<d.holdout.count))["logits"]!.floats
        let mine = try logits(rt, map, d.holdout)
        XCTAssertLessThan(zip(exported, mine).map { abs($0 - $1) }.max()!, 0.05, "at most about one quantization step")
    }
}
