import Foundation
import XCTest
import Kernels
@testable import ONNX
@testable import Search

/// `mpq export`: the QDQ model encodes the numbers mpq's INT8 runtime computes with (run
/// in mpq's FP32 runtime with simulated quantization it gives the same top-1), the other
/// formats list the right layers, and bad maps fail with errors that name the problem.
/// ONNX Runtime's view of the same files is checked by tools/crosscheck (Python).
final class ExportTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures").path
    static func path(_ name: String) -> String { "\(fixtures)/\(name)" }

    /// A prepared model: exporter, calibration, INT8 runtime, holdout.
    struct Prepared {
        let exporter: Exporter
        let table: CalibrationTable
        let runtime: MixedPrecisionRuntime
        let holdout: Dataset
    }

    static func prepare(_ model: String, calib: String, holdout: String) throws -> Prepared {
        let exporter = try Exporter(modelPath: path(model))
        let data = try Dataset(path: path(calib), graph: exporter.graph)
        let table = try Calibrator(session: exporter.session).calibrate(dataset: data, options: CalibrationOptions(method: .minmax),
                                                                        modelDigest: exporter.digest)
        let runtime = try MixedPrecisionRuntime(session: exporter.session, calibration: table)
        return Prepared(exporter: exporter, table: table, runtime: runtime,
                        holdout: try Dataset(path: path(holdout), graph: exporter.graph))
    }

    /// The map file `mpq search` writes, reduced to what export reads (layers with their
    /// quantization parameters, the model digest).
    static func mapFile(_ map: PrecisionMap, _ p: Prepared) throws -> Data {
        struct File: Encodable { var layers: [PrecisionMapDocument.Layer]; var model: [String: String] }
        let layers = PrecisionMapDocument.layerEntries(map: map, runtime: p.runtime, layers: [], sensitivity: nil)
        let enc = JSONEncoder()
        enc.keyEncodingStrategy = .convertToSnakeCase
        enc.outputFormatting = [.sortedKeys]
        return try enc.encode(File(layers: layers, model: ["digest": p.exporter.digest]))
    }

    /// Exports `map` as QDQ, reloads it with mpq's loader, and compares its FP32 run
    /// (simulated quantization) with mpq's INT8 run of the map on the original model.
    func checkQDQ(_ p: Prepared, map: PrecisionMap, label: String) throws -> Graph {
        let file = try Self.mapFile(map, p)
        let data = try p.exporter.qdq(map: try ExportMap(data: file, path: "map.json"), path: "map.json", calibration: nil, version: "test")
        let qdq = try ModelLoader.load(data: data)
        let int8 = map.int8Layers
        let activations = Set(int8.map { name in p.exporter.quantizable.first { $0.name == name }!.input(0)! })
        let ops = qdq.nodes.map(\.opType)
        XCTAssertEqual(ops.filter { $0 == "QuantizeLinear" }.count, activations.count, "\(label): one QuantizeLinear per activation")
        let biased = int8.filter { name in p.exporter.quantizable.first { $0.name == name }!.input(2) != nil }.count
        XCTAssertEqual(ops.filter { $0 == "DequantizeLinear" }.count, activations.count + int8.count + biased, label)
        XCTAssertFalse(ops.contains("BatchNormalization"), "\(label): BatchNorm is folded")
        XCTAssertEqual(ops.filter { $0 == "Relu" }.count, p.exporter.graph.nodes.filter { $0.opType == "Relu" }.count,
                       "\(label): Relu nodes are kept, not fused")
        XCTAssertEqual(qdq.metadata["mpq.version"], "test")
        XCTAssertEqual(qdq.metadata["mpq.map_sha256"], SHA256.hex(file))
        XCTAssertEqual(qdq.inputs.map(\.name), p.exporter.graph.inputs.map(\.name))
        XCTAssertEqual(qdq.outputs.map(\.name), p.exporter.graph.outputs.map(\.name))
        for name in int8 {
            let node = try XCTUnwrap(qdq.node(named: name), "\(label): layer \(name) keeps its name")
            XCTAssertTrue(node.inputs[0].hasSuffix("_DequantizeLinear_Output"), "\(label): \(name) reads \(node.inputs[0])")
            XCTAssertEqual(qdq.initializers[node.inputs[1].replacingOccurrences(of: "_DequantizeLinear_Output", with: "_quantized")]?.dtype, .int8)
        }

        // Same numbers: FP32 run of the QDQ model vs mpq's INT8 kernels on the map.
        let simulated = try Session(graph: GraphPasses.optimize(qdq))
        let sim = try Evaluator(session: simulated, dataset: p.holdout).run()
        try p.runtime.apply(map)
        let real = try Evaluator(session: p.runtime.session, dataset: p.holdout).run()
        try p.runtime.apply(p.runtime.allFP32)
        let simTop1 = score(.top1, outputs: sim, labels: p.holdout.labels, reference: nil)
        let realTop1 = score(.top1, outputs: real, labels: p.holdout.labels, reference: nil)
        let agree = score(.agreement, outputs: sim, labels: nil, reference: real)
        let diff = zip(sim.values, real.values).map { abs($0 - $1) }.max()!
        let spread = real.values.map(abs).max()!
        let off = zip(sim.values, real.values).filter { abs($0 - $1) > 1e-4 * max(1, spread) }.count
        print("\(label): \(off) of \(sim.values.count) outputs differ by more than 1e-4 x max |y|")
        print("\(label): QDQ in mpq FP32 top1 \(simTop1), mpq INT8 top1 \(realTop1), argmax agreement \(agree)%, max |diff| \(diff) (max |y| \(spread))")
        XCTAssertEqual(simTop1, realTop1, "\(label): the QDQ model must score what mpq's INT8 runtime scores")
        XCTAssertEqual(agree, 100, "\(label)")
        // Float rounding differs (exact int32 sums vs float GEMM); where an intermediate value
        // sits at a quantization step boundary the next INT8 layer sees one step more or
        // less, so a few outputs move by about one step, and the rest agree to rounding.
        XCTAssertLessThan(diff, 1e-2 * max(1, spread), "\(label): outputs differ by rounding only")
        XCTAssertLessThan(Double(off), 0.05 * Double(sim.values.count), "\(label): outputs differ by rounding only")
        return qdq
    }

    func testDigitsAllInt8QDQMatchesInt8Runtime() throws {
        let p = try Self.prepare("digits_cnn.onnx", calib: "digits_calib.npz", holdout: "digits_holdout.npz")
        let qdq = try checkQDQ(p, map: p.runtime.allInt8, label: "digits_cnn all-INT8")
        XCTAssertEqual(qdq.opset, 17, "opset kept when >= 13")
        // Per-channel weights on axis 0 for Conv, and Gemm (transB = 1).
        let dqs = qdq.nodes.filter { $0.opType == "DequantizeLinear" && qdq.initializers[$0.inputs[0]]?.dtype == .int8 }
        XCTAssertEqual(Set(dqs.map { $0.int("axis", default: 1) }), [0])
    }

    func testMLPMixedMapQDQMatchesInt8Runtime() throws {
        let p = try Self.prepare("breast_cancer_raw_mlp.onnx", calib: "breast_cancer_raw_mlp_calib.npz",
                                 holdout: "breast_cancer_raw_mlp_holdout.npz")
        let map = PrecisionMap(layers: ["/0/Gemm": .fp32, "/2/Gemm": .int8, "/4/Gemm": .int8, "/6/Gemm": .int8])
        let qdq = try checkQDQ(p, map: map, label: "breast_cancer_raw_mlp mixed")
        // The FP32 layer is untouched: float weights, reads the graph input directly.
        let first = try XCTUnwrap(qdq.node(named: "/0/Gemm"))
        XCTAssertEqual(first.inputs, ["features", "0.weight", "0.bias"])
        XCTAssertEqual(qdq.initializers["0.weight"]?.dtype, .float32)
        XCTAssertNil(qdq.initializers["2.weight"], "replaced float weights are dropped")
        let bias = try XCTUnwrap(qdq.initializers["2.bias_quantized"])
        XCTAssertEqual(bias.dtype, .int32)
    }

    /// Gemm with transB = 0 takes per-channel scales on axis 1, MatMul too.
    func testGemmWithoutTransposeQuantizesAxis1() throws {
        let node = Node(name: "g", opType: "Gemm", inputs: ["x", "w", "c"], outputs: ["y"], attributes: ["alpha": .float(2), "beta": .float(0.5)])
        let w = Tensor(shape: [3, 2], floats: [1, -4, 0.5, 2, -0.25, 1])        // [K=3, N=2]
        let c = Tensor(shape: [2], floats: [1, -1])
        let q = ActivationQuant(scale: 0.1, zeroPoint: 7)
        let spec = try Exporter.spec(node: node, constants: ["w": w, "c": c], inputQuant: q, mapScales: nil)
        XCTAssertEqual(spec.weightAxis, 1)
        XCTAssertEqual(spec.weightShape, [3, 2])
        XCTAssertEqual(spec.weightScales, [Float(2 * 1.0 / 254), Float(2 * 4.0 / 254)])
        // Column 0 is [1, 0.5, -0.25] at scale 1/127, column 1 [-4, 2, 1] at 4/127.
        XCTAssertEqual(spec.weightValues, [127, -127, 64, 64, -32, 32])
        // beta folds into the values, alpha into the scale; beta is then 1.
        XCTAssertEqual(spec.attributes["beta"], .float(1))
        let s = spec.weightScales.map { q.scale * ($0 * 2) }
        XCTAssertEqual(spec.biasScales, s)
        XCTAssertEqual(spec.biasValues, [Int32((0.5 / Double(s[0])).rounded(.toNearestOrEven)), Int32((-0.5 / Double(s[1])).rounded(.toNearestOrEven))])
    }

    func testOtherFormats() throws {
        let p = try Self.prepare("breast_cancer_raw_mlp.onnx", calib: "breast_cancer_raw_mlp_calib.npz",
                                 holdout: "breast_cancer_raw_mlp_holdout.npz")
        // A bare map: layers it omits run in FP32.
        let bare = Data(#"{"layers": {"/2/Gemm": "int8", "/4/Gemm": "int8", "/0/Gemm": "fp32"}}"#.utf8)
        let map = try ExportMap(data: bare, path: "bare.json")
        let e = p.exporter

        let ort = try JSONSerialization.jsonObject(with: e.export(.ortExclude, map: map, mapPath: "bare.json", calibration: nil, version: "t").data) as! [String: Any]
        XCTAssertEqual(ort["nodes_to_exclude"] as? [String], ["/0/Gemm", "/6/Gemm"])
        XCTAssertEqual(ort["op_types_to_quantize"] as? [String], ["Gemm"])
        XCTAssertEqual(ort["per_channel"] as? Bool, true)
        XCTAssertEqual(ort["activation_type"] as? String, "QUInt8")
        XCTAssertEqual(ort["weight_type"] as? String, "QInt8")
        XCTAssertEqual(ort["calibrate_method"] as? String, "MinMax")

        let trt = try e.export(.trtexec, map: map, mapPath: "bare.json", calibration: nil, version: "t")
        XCTAssertEqual(String(decoding: trt.data, as: UTF8.self),
                       "--int8 --precisionConstraints=obey --layerPrecisions=/0/Gemm:fp32,/6/Gemm:fp32\n")
        XCTAssertEqual(try Exporter.trtexecFlags(fp32: ["a b", "c"]), "--int8 --precisionConstraints=obey '--layerPrecisions=a b:fp32,c:fp32'")
        XCTAssertEqual(try Exporter.trtexecFlags(fp32: []), "--int8")
        XCTAssertThrowsError(try Exporter.trtexecFlags(fp32: ["a,b"]))

        let nncf = try JSONSerialization.jsonObject(with: e.export(.nncfIgnored, map: map, mapPath: "bare.json", calibration: nil, version: "t").data) as! [String: Any]
        XCTAssertEqual((nncf["ignored_scope"] as? [String: Any])?["names"] as? [String], ["/0/Gemm", "/6/Gemm"])

        XCTAssertEqual(try e.export(.json, map: map, mapPath: "bare.json", calibration: nil, version: "t").data, bare)

        // QDQ from a bare map needs calibration; with it, the scales are the calibrated ones.
        XCTAssertThrowsError(try e.export(.qdq, map: map, mapPath: "bare.json", calibration: nil, version: "t")) { error in
            XCTAssertEqual(error as? ExportError, .missingQuantization(layers: ["/2/Gemm", "/4/Gemm"]))
            XCTAssertTrue("\(error)".contains("--calibration"), "\(error)")
        }
        let fromBare = try e.export(.qdq, map: map, mapPath: "bare.json", calibration: p.table, version: "t").data
        let full = try e.qdq(map: ExportMap(data: Self.mapFile(PrecisionMap(layers: map.layers.reduce(into: [:]) { $0[$1.name] = $1.precision }), p),
                                            path: "m"), path: "m", calibration: nil, version: "t")
        let a = try ModelLoader.load(data: fromBare), b = try ModelLoader.load(data: full)
        XCTAssertEqual(a.initializers, b.initializers, "a bare map plus calibration gives the scales the full map records")
    }

    func testErrors() throws {
        let p = try Self.prepare("breast_cancer_raw_mlp.onnx", calib: "breast_cancer_raw_mlp_calib.npz",
                                 holdout: "breast_cancer_raw_mlp_holdout.npz")
        let e = p.exporter
        func map(_ json: String) throws -> ExportMap { try ExportMap(data: Data(json.utf8), path: "m.json") }

        XCTAssertThrowsError(try e.export(.ortExclude, map: map(#"{"layers": {"/9/Gemm": "int8"}}"#), mapPath: "m.json", calibration: nil, version: "t")) {
            XCTAssertTrue("\($0)".contains("'/9/Gemm'") && "\($0)".contains("/0/Gemm"), "\($0)")
        }
        XCTAssertThrowsError(try e.export(.qdq, map: map(#"{"layers": {"/0/Gemm": "int8"}, "model_digest": "0123"}"#), mapPath: "m.json", calibration: nil, version: "t")) {
            XCTAssertEqual($0 as? ExportError, .modelMismatch(path: "m.json", map: "0123", model: e.digest))
        }
        XCTAssertThrowsError(try map(#"{"layers": {"/0/Gemm": "int4"}}"#)) { XCTAssertTrue("\($0)".contains("not a precision map"), "\($0)") }
        XCTAssertThrowsError(try map(#"{"layer": {}}"#)) { XCTAssertTrue("\($0)".contains("missing key 'layers'"), "\($0)") }
        XCTAssertThrowsError(try ExportMap(path: "/nonexistent/map.json")) { XCTAssertTrue("\($0)".contains("file not found"), "\($0)") }

        // A map whose weight scales are not this model's.
        var obj = try JSONSerialization.jsonObject(with: Self.mapFile(p.runtime.allInt8, p)) as! [String: Any]
        var layers = obj["layers"] as! [[String: Any]]
        var scales = layers[1]["weight_scales"] as! [Double]
        scales[3] *= 2
        layers[1]["weight_scales"] = scales
        obj["layers"] = layers
        let tampered = try ExportMap(data: JSONSerialization.data(withJSONObject: obj), path: "t.json")
        XCTAssertThrowsError(try e.qdq(map: tampered, path: "t.json", calibration: nil, version: "t")) {
            guard case .weightScaleMismatch(let l, let c, _, _)? = $0 as? ExportError else { return XCTFail("\($0)") }
            XCTAssertEqual(l, "/2/Gemm"); XCTAssertEqual(c, 3)
        }
        // An activation tensor the layer does not read.
        layers = (try JSONSerialization.jsonObject(with: Self.mapFile(p.runtime.allInt8, p)) as! [String: Any])["layers"] as! [[String: Any]]
        layers[0]["activation"] = ["tensor": "other", "scale": 0.5, "zero_point": 3]
        obj["layers"] = layers
        XCTAssertThrowsError(try e.qdq(map: ExportMap(data: JSONSerialization.data(withJSONObject: obj), path: "a.json"), path: "a.json",
                                       calibration: nil, version: "t")) {
            XCTAssertEqual($0 as? ExportError, .activationMismatch(layer: "/0/Gemm", map: "other", model: "features"))
        }
    }

    /// Opset 11 with an inference Dropout (`ratio` attribute, an input since 12) and weights
    /// in Constant nodes: the export rewrites it to opset 13 and the result still runs.
    func testOpset11DropoutModelIsUpgradedTo13() throws {
        let e = try Exporter(modelPath: Self.path("tabular_mlp_const.onnx"))
        XCTAssertEqual(e.graph.opset, 11)
        let map = try ExportMap(data: Data(#"{"layers": {"/3/Gemm": "int8"}}"#.utf8), path: "m.json")
        let table = CalibrationTable(method: "minmax", modelDigest: e.digest, samples: 1,
                                     ranges: ["/1/Relu_output_0": .init(min: 0, max: 4)])
        let g = try ModelLoader.load(data: e.qdq(map: map, path: "m.json", calibration: table, version: "t"))
        XCTAssertEqual(g.opset, 13)
        let dropout = try XCTUnwrap(g.nodes.first { $0.opType == "Dropout" })
        XCTAssertNil(dropout.attributes["ratio"], "opset 13 Dropout takes its ratio as an input")
        XCTAssertEqual(dropout.inputs.count, 2)
        XCTAssertEqual(g.initializers[dropout.inputs[1]]?.floats, [0.2])
        _ = try Session(graph: GraphPasses.optimize(g))
    }

    /// The opset-11 digits CNN (tools/fixtures/generate_opset11.py): Split, Squeeze,
    /// Unsqueeze and ReduceSum get their attributes as inputs, the Softmax over the last axis
    /// stays one node, the LogSoftmax over axis 2 of a 4-D tensor becomes Flatten ->
    /// LogSoftmax -> Reshape; the QDQ model scores what mpq's INT8 runtime scores, and its
    /// second output (FP32 in the export) equals ONNX Runtime's on the opset-11 original.
    func testOpset11DigitsIsUpgradedTo13() throws {
        let p = try Self.prepare("digits_cnn_opset11.onnx", calib: "digits_calib.npz", holdout: "digits_holdout.npz")
        XCTAssertEqual(p.exporter.graph.opset, 11)
        XCTAssertFalse(p.exporter.session.plan.contains { $0.opType == "BatchNormalization" },
                       "BatchNorm folds into Conv weights held in Constant nodes too")
        let qdq = try checkQDQ(p, map: p.runtime.allInt8, label: "digits_cnn_opset11 all-INT8")
        XCTAssertEqual(qdq.opset, 13)
        for op in ["Split", "Squeeze", "Unsqueeze", "ReduceSum"] {
            let nodes = qdq.nodes.filter { $0.opType == op }
            XCTAssertFalse(nodes.isEmpty, op)
            for n in nodes {
                XCTAssertEqual(n.inputs.count, 2, "\(n.name): axes/split as an input")
                XCTAssertEqual(qdq.initializers[n.inputs[1]]?.dtype, .int64, n.name)
                XCTAssertNil(n.attributes["axes"] ?? n.attributes["split"], n.name)
            }
        }
        let softmax = try XCTUnwrap(qdq.node(named: "softmax_probs"))
        XCTAssertEqual(softmax.attributes["axis"], .int(1))
        XCTAssertEqual(softmax.outputs, ["probs"], "the last axis needs no rewrite")
        let logsoftmax = try XCTUnwrap(qdq.node(named: "logsoftmax_pool"))
        XCTAssertEqual(logsoftmax.attributes["axis"], .int(1))
        XCTAssertEqual(qdq.nodes.first { $0.outputs == logsoftmax.inputs }?.opType, "Flatten")
        XCTAssertEqual(qdq.nodes.first { $0.outputs == ["pool_logsoftmax"] }?.opType, "Reshape")

        // Only the last layer INT8: the LogSoftmax input stays FP32, so ORT's numbers apply.
        let lastOnly = PrecisionMap(layers: ["/fc/Gemm": .int8])
        let file = try Self.mapFile(lastOnly, p)
        let fc = try ModelLoader.load(data: p.exporter.qdq(map: ExportMap(data: file, path: "m.json"), path: "m.json",
                                                           calibration: nil, version: "t"))
        XCTAssertEqual(fc.opset, 13)
        let session = try Session(graph: GraphPasses.optimize(fc))
        let got = try Evaluator(session: session, dataset: p.holdout, outputName: "pool_logsoftmax").run()
        let want = try XCTUnwrap(Numpy.readNPZ(path: Self.path("digits_cnn_opset11.expected.npz"))["pool_logsoftmax"])
        XCTAssertEqual(got.values.count, want.floats.count)
        let diff = zip(got.values, want.floats).map { abs($0 - $1) }.max()!
        XCTAssertLessThan(diff, 1e-4, "opset-11 LogSoftmax semantics survive the upgrade")
    }

    /// Opsets before 11 changed more than the upgrade rewrites, and subgraphs are copied as
    /// they are: both refused with what to do.
    func testOpset10AndSubgraphsWithChangedOpsAreRefused() throws {
        var g = Onnx_GraphProto()
        var n = Onnx_NodeProto(); n.opType = "Relu"; n.input = ["x"]; n.output = ["y"]
        g.node = [n]
        var copy = g
        XCTAssertThrowsError(try OpsetUpgrade.to13(&copy, from: 10, fresh: { $0 })) {
            guard case .opsetTooOld(10, _)? = $0 as? QDQExportError else { return XCTFail("\($0)") }
            XCTAssertTrue("\($0)".contains("version_converter"), "\($0)")
        }
        var body = Onnx_GraphProto()
        var squeeze = Onnx_NodeProto(); squeeze.opType = "Squeeze"; squeeze.input = ["y"]; squeeze.output = ["z"]
        body.node = [squeeze]
        var branch = Onnx_AttributeProto(); branch.name = "then_branch"; branch.type = .graph; branch.g = body
        var cond = Onnx_NodeProto(); cond.opType = "If"; cond.input = ["c"]; cond.output = ["z"]; cond.attribute = [branch]
        g.node.append(cond)
        XCTAssertThrowsError(try OpsetUpgrade.to13(&g, from: 11, fresh: { $0 })) {
            XCTAssertTrue("\($0)".contains("Squeeze inside a subgraph"), "\($0)")
        }
    }

    /// A bare map with a calibration table: the activation parameters are the table's.
    func testBareMapTakesScalesFromCalibrationTable() throws {
        let e = try Exporter(modelPath: Self.path("tabular_mlp.onnx"))
        let map = try ExportMap(data: Data(#"{"layers": {"/3/Gemm": "int8", "/7/Gemm": "int8"}}"#.utf8), path: "m.json")
        let table = CalibrationTable(method: "minmax", modelDigest: e.digest, samples: 1,
                                     ranges: ["/1/Relu_output_0": .init(min: 0, max: 4), "/6/Sigmoid_output_0": .init(min: 0, max: 1)])
        let g = try ModelLoader.load(data: e.qdq(map: map, path: "m.json", calibration: table, version: "t"))
        XCTAssertEqual(g.opset, 13)
        XCTAssertEqual(g.nodes.filter { $0.opType == "QuantizeLinear" }.map(\.inputs[0]), ["/1/Relu_output_0", "/6/Sigmoid_output_0"])
        let dq = try XCTUnwrap(g.nodes.first { $0.outputs == ["/1/Relu_output_0_DequantizeLinear_Output"] })
        XCTAssertEqual(g.initializers[dq.inputs[1]]?.floats, [ActivationQuant(min: 0, max: 4).scale])
        XCTAssertEqual(g.initializers[dq.inputs[2]]?.ints, [0])
        XCTAssertEqual(g.initializers[dq.inputs[2]]?.dtype, .uint8)
    }

    func testQuantizeDequantizeOps() throws {
        let x = Tensor(shape: [1, 2, 2], floats: [0.25, 0.75, -1, 300])
        let q = try XCTUnwrap(OpRegistry.table["QuantizeLinear"]).run(
            Node(name: "q", opType: "QuantizeLinear", inputs: ["x", "s", "z"], outputs: ["y"]),
            [x, Tensor.scalar(0.5), Tensor.scalar(3, dtype: .uint8)], 13)[0]
        XCTAssertEqual(q.dtype, .uint8)
        XCTAssertEqual(q.ints, [3, 5, 1, 255], "half to even (0.5 -> 0, 1.5 -> 2), saturate")
        let w = Tensor(shape: [2, 2], ints: [1, -2, 3, 127], dtype: .int8)
        let d = try XCTUnwrap(OpRegistry.table["DequantizeLinear"]).run(
            Node(name: "d", opType: "DequantizeLinear", inputs: ["w", "s", "z"], outputs: ["y"], attributes: ["axis": .int(0)]),
            [w, Tensor(shape: [2], floats: [0.5, 2]), Tensor(shape: [2], ints: [0, 0], dtype: .int8)], 13)[0]
        XCTAssertEqual(d.floats, [0.5, -1, 6, 254])
        XCTAssertThrowsError(try XCTUnwrap(OpRegistry.table["DequantizeLinear"]).run(
            Node(name: "d", opType: "DequantizeLinear", inputs: ["w", "s"], outputs: ["y"], attributes: ["axis": .int(1)]),
            [w, Tensor(shape: [3], floats: [1, 2, 3])], 13))
    }
}
