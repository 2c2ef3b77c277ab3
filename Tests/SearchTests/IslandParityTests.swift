import Foundation
import XCTest
import Kernels
import ONNX
@testable import Search

/// FP32 islands under `--scheme ort` against ONNX Runtime (tools/goldens/island_goldens.py).
/// An INT8 Conv requantizes its output whatever reads it (`QuantPlan`, rule 4), so the FP32
/// layer after it reads DequantizeLinear of uint8 codes, and ORT runs that Conv as
/// QLinearConv: the island's input is integer arithmetic plus one exact dequantization on
/// both sides and must be equal bit for bit. Before rule 4 the INT8 Conv kept a float
/// output, which ORT computed as a float Conv on dequantized weights: last-bit differences.
final class IslandParityTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures").path
    static let folder = "\(fixtures)/islands"

    func testIslandInputsEqualOnnxRuntimeBitForBit() throws {
        let graph = try ModelLoader.load(path: "\(Self.fixtures)/digits_cnn.onnx")
        let session = try Session(graph: GraphPasses.optimize(graph))
        let table = try CalibrationTable.load(path: "\(Self.folder)/digits_island.calib.json")
        let runtime = try MixedPrecisionRuntime(session: session, calibration: table, scheme: .ort)
        let file = try ExportMap(path: "\(Self.folder)/digits_island.map.json")
        var map = runtime.allInt8
        for l in file.layers { map.layers[l.name] = l.precision }
        try runtime.apply(map)

        let golden = try Numpy.readNPZ(path: "\(Self.folder)/digits_island_ort.npz")
        let islands = String(decoding: try XCTUnwrap(golden["islands"]).ints.map { UInt8($0) }, as: UTF8.self)
            .split(separator: ",").map(String.init)
        let fused = try OrtGoldens.fusedCounts(golden)
        XCTAssertEqual(islands, ["/block/conv2/Conv", "/pw/pw.0/Conv"])
        // The recorded export ran every INT8 Conv as QLinearConv (4) and the Gemm as QGemm.
        XCTAssertEqual(fused["QLinearConv"], 4, "\(fused)")
        XCTAssertEqual(fused["QGemm"], 1, "\(fused)")

        let inputs = try islands.map { name -> String in
            let node = try XCTUnwrap(session.plan.first { $0.name == name })
            let x = try XCTUnwrap(node.input(0))
            XCTAssertNotNil(runtime.plan.requantized[x], "\(name)'s input \(x) must be requantized (rule 4)")
            return x
        }
        let rows = Int(try XCTUnwrap(golden["rows"]).ints[0])
        let holdout = try Dataset(path: "\(Self.fixtures)/digits_holdout.npz", graph: graph)
        let out = try session.run(holdout.batch(0..<rows), keep: Set(inputs))
        for (i, x) in inputs.enumerated() {
            OrtGoldens.assertBitIdentical(try XCTUnwrap(out[x]), try XCTUnwrap(golden["island_\(i)"]), "\(islands[i]) input \(x)")
        }
        // The logits go through the FP32 islands, whose float sums are ordered differently
        // in mpq and ORT (MLAS): equal to within one step of a requantization downstream.
        let logits = try XCTUnwrap(out["logits"]).floats, want = try XCTUnwrap(golden["logits"]).floats
        XCTAssertEqual(logits.count, want.count)
        let diffs = zip(logits, want).map { abs($0 - $1) }
        XCTAssertLessThan(diffs.max() ?? 1, 0.05, "more than about one quantization step from ORT")
    }

    /// The committed export is what `Exporter` writes today for the same map and table (same
    /// nodes, same initializers), so the goldens above describe the current Q/DQ placement.
    func testCommittedExportIsTodays() throws {
        let exporter = try Exporter(modelPath: "\(Self.fixtures)/digits_cnn.onnx")
        let table = try CalibrationTable.load(path: "\(Self.folder)/digits_island.calib.json")
        let path = "\(Self.folder)/digits_island.map.json"
        let data = try exporter.qdq(map: try ExportMap(path: path), path: path, calibration: table, version: "test", scheme: .ort)
        let mine = try ModelLoader.load(data: data)
        let committed = try ModelLoader.load(path: "\(Self.folder)/digits_island.qdq.onnx")
        XCTAssertEqual(mine.nodes, committed.nodes, "re-run tools/goldens/island_goldens.py")
        XCTAssertEqual(mine.initializers, committed.initializers, "re-run tools/goldens/island_goldens.py")
        // Both islands read Max(DequantizeLinear(QuantizeLinear(INT8 Conv))).
        let producer = Dictionary(mine.nodes.flatMap { n in n.outputs.map { ($0, n) } }, uniquingKeysWith: { a, _ in a })
        for island in ["/block/conv2/Conv", "/pw/pw.0/Conv"] {
            let guardNode = try XCTUnwrap(producer[try XCTUnwrap(mine.node(named: island)).inputs[0]])
            XCTAssertEqual(guardNode.opType, "Max", island)
            let dq = try XCTUnwrap(producer[guardNode.inputs[0]])
            XCTAssertEqual(dq.opType, "DequantizeLinear", island)
            let q = try XCTUnwrap(producer[dq.inputs[0]])
            XCTAssertEqual(q.opType, "QuantizeLinear", island)
            XCTAssertEqual(producer[q.inputs[0]]?.opType, "Relu", "\(island): the Q follows the INT8 Conv's Relu")
        }
    }

    /// docs/export.md, "Channel padding": under `ort` the digits CNN's 1-channel 3x3 stem reads
    /// its uint8 input padded with zero-point channels to 4 and has zero weights for them (ORT's
    /// direct QLinearConv kernel needs a multiple of 4); the 16-channel layers and every
    /// `inputs` export are left alone. The numbers stay the runtime's: the export run by mpq
    /// equals the runtime (ExecutionSchemeTests.testExportMatchesRuntime) and ORT's island
    /// values above come from this padded export.
    func testOrtExportPadsNarrowStemInputChannels() throws {
        let exporter = try Exporter(modelPath: "\(Self.fixtures)/digits_cnn.onnx")
        let table = try CalibrationTable.load(path: "\(Self.folder)/digits_island.calib.json")
        let path = "\(Self.folder)/digits_island.map.json"
        let ort = try ModelLoader.load(data: try exporter.qdq(map: try ExportMap(path: path), path: path, calibration: table,
                                                              version: "test", scheme: .ort))
        let producer = Dictionary(ort.nodes.flatMap { n in n.outputs.map { ($0, n) } }, uniquingKeysWith: { a, _ in a })
        let stem = try XCTUnwrap(ort.node(named: "/stem/stem.0/Conv"))
        let dq = try XCTUnwrap(producer[stem.inputs[0]])
        let pad = try XCTUnwrap(producer[dq.inputs[0]])
        XCTAssertEqual(pad.opType, "Pad")
        XCTAssertEqual(producer[pad.inputs[0]]?.opType, "QuantizeLinear")
        XCTAssertEqual(ort.initializers[pad.inputs[1]]?.ints, [0, 0, 0, 0, 0, 3, 0, 0])
        XCTAssertEqual(pad.inputs[2], dq.inputs[2], "padded with the input's zero point")
        let w = try XCTUnwrap(ort.initializers[try XCTUnwrap(producer[stem.inputs[1]]).inputs[0]])
        XCTAssertEqual(w.shape, [16, 4, 3, 3])
        for o in 0..<16 { XCTAssertEqual(Set(w.ints[(o * 36 + 9)..<(o * 36 + 36)]), [0], "added channels of output \(o)") }
        XCTAssertEqual(ort.nodes.filter { $0.opType == "Pad" }.count, 1, "only the stem")
        let summary = try exporter.export(.qdq, map: try ExportMap(path: path), mapPath: path, calibration: table, version: "test",
                                          scheme: .ort).summary
        XCTAssertTrue(summary.hasSuffix("same integer sums: 1 input zero-padded to a multiple of 4 channels"), summary)
        // The unpadded input's DequantizeLinear has no reader left: not written (ORT runs dead nodes).
        let read = Set(ort.nodes.flatMap(\.inputs)).union(ort.outputs.map(\.name))
        for n in ort.nodes { XCTAssertTrue(n.outputs.allSatisfy(read.contains), "\(n.opType) '\(n.name)' writes what nothing reads") }
        let inputs = try ModelLoader.load(data: try exporter.qdq(map: try ExportMap(path: path), path: path, calibration: table,
                                                                 version: "test", scheme: .inputs))
        XCTAssertFalse(inputs.nodes.contains { $0.opType == "Pad" })
        // 7x7 kernels keep ORT's im2col path (padding measured slower there).
        let big = QDQLayer(node: "c", activation: "x", activationScale: 1, activationZeroPoint: 0, weightValues: [],
                           weightShape: [64, 3, 7, 7], weightScales: [], weightAxis: 0, biasValues: nil, biasScales: nil)
        XCTAssertEqual(Exporter.ortInputChannelPad(Node(name: "c", opType: "Conv", inputs: ["x", "w"], outputs: ["y"]), big), 0)
        var small = big
        small.weightShape = [64, 3, 3, 3]
        XCTAssertEqual(Exporter.ortInputChannelPad(Node(name: "c", opType: "Conv", inputs: ["x", "w"], outputs: ["y"]), small), 1)
    }
}
