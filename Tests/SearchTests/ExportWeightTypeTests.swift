import Foundation
import XCTest
import Kernels
@testable import ONNX
@testable import Search

/// `--weight-type uint8`: the same integers as the int8 export (codes + 128, zero point 128),
/// which ONNX Runtime computes exactly on CPUs whose u8 x s8 path saturates (AVX2 without
/// VNNI; tools/crosscheck/ort_u8s8_exact.py). ORT's side is checked by tools/crosscheck.
final class ExportWeightTypeTests: XCTestCase {
    /// Both exports of one all-INT8 map under `scheme`: int8 and uint8 weights.
    func exports(_ scheme: ExecutionScheme) throws -> (ExportTests.Prepared, Graph, Graph) {
        let p = try ExportTests.prepare("digits_cnn.onnx", calib: "digits_calib.npz", holdout: "digits_holdout.npz")
        let file = try ExportTests.mapFile(p.runtime.allInt8, p)
        let map = try ExportMap(data: file, path: "map.json")
        let table = scheme == .ort ? try Calibrator(session: p.exporter.session, scheme: .ort).calibrate(
            dataset: try Dataset(path: ExportTests.path("digits_calib.npz"), graph: p.exporter.graph),
            options: CalibrationOptions(method: .minmax), modelDigest: p.exporter.digest) : nil
        func export(_ w: QDQWeightType) throws -> Graph {
            try ModelLoader.load(data: p.exporter.qdq(map: map, path: "map.json", calibration: table, version: "t",
                                                      scheme: scheme, weightType: w))
        }
        return (p, try export(.int8), try export(.uint8))
    }

    func testUint8WeightsAreTheInt8CodesPlus128() throws {
        for scheme in [ExecutionScheme.inputs, .ort] {
            let (p, signed, unsigned) = try exports(scheme)
            XCTAssertEqual(signed.metadata["mpq.weight_type"], "int8")
            XCTAssertEqual(unsigned.metadata["mpq.weight_type"], "uint8")
            let weightDQs = { (g: Graph) in g.nodes.filter { $0.opType == "DequantizeLinear" && g.initializers[$0.inputs[0]]?.rank ?? 0 >= 2 } }
            let s = weightDQs(signed), u = weightDQs(unsigned)
            XCTAssertEqual(s.count, p.runtime.allInt8.int8Layers.count, "\(scheme): one weight DequantizeLinear per INT8 layer")
            XCTAssertEqual(s.count, u.count)
            for (a, b) in zip(s, u) {
                let (qa, qb) = (signed.initializers[a.inputs[0]]!, unsigned.initializers[b.inputs[0]]!)
                XCTAssertEqual(qa.dtype, .int8); XCTAssertEqual(qb.dtype, .uint8)
                // The int8 ort export may pad input channels (testUint8ExportSkipsTheInt8ChannelPad).
                let codes = qa.shape == qb.shape ? qa.asInts : Self.firstInputChannels(qa, qb.shape)
                XCTAssertEqual(codes.map { $0 + 128 }, qb.asInts, "\(scheme) \(a.name): uint8 codes are int8 + 128")
                XCTAssertEqual(signed.initializers[a.inputs[1]]!.floats, unsigned.initializers[b.inputs[1]]!.floats, "same scales")
                XCTAssertEqual(Set(signed.initializers[a.inputs[2]]!.asInts), [0])
                XCTAssertEqual(Set(unsigned.initializers[b.inputs[2]]!.asInts), [128])
            }
            // Every code pair dequantizes to the same float, so the float runs are identical.
            let runs = try [signed, unsigned].map {
                try Evaluator(session: Session(graph: GraphPasses.optimize($0)), dataset: p.holdout).run().values
            }
            XCTAssertEqual(runs[0], runs[1], "\(scheme): uint8 and int8 exports compute the same values")
        }
    }

    /// `w`'s [Cout, Cin', k...] codes cut to the `shape` [Cout, Cin, k...] they were padded from.
    static func firstInputChannels(_ w: Tensor, _ shape: [Int]) -> [Int64] {
        let inner = shape.dropFirst(2).reduce(1, *), (cout, cin, padded) = (shape[0], shape[1], w.shape[1])
        XCTAssertEqual(w.shape.count, shape.count); XCTAssertEqual(w.shape[0], cout)
        let v = w.asInts
        return (0..<cout).flatMap { o in v[(o * padded * inner)..<((o * padded + cin) * inner)] }
    }

    /// The `ort` scheme pads a 3-channel stem to 4 input channels for ORT's symmetric int8
    /// kernel only; with uint8 weights there is no such kernel, so no Pad.
    func testUint8ExportSkipsTheInt8ChannelPad() throws {
        let (_, signed, unsigned) = try exports(.ort)
        XCTAssertGreaterThan(signed.nodes.filter { $0.opType == "Pad" }.count, 0, "the int8 export pads the 1-channel stem")
        XCTAssertEqual(unsigned.nodes.filter { $0.opType == "Pad" }.count, 0)
        XCTAssertEqual(signed.nodes.filter { $0.opType == "Conv" }.count, unsigned.nodes.filter { $0.opType == "Conv" }.count)
    }

    func testOrtExcludeNamesUint8Weights() throws {
        let e = try Exporter(modelPath: ExportTests.path("breast_cancer_raw_mlp.onnx"))
        let map = try ExportMap(data: Data(#"{"layers": {"/0/Gemm": "fp32"}}"#.utf8), path: "bare.json")
        let config = { (w: QDQWeightType) in
            try JSONSerialization.jsonObject(with: e.export(.ortExclude, map: map, mapPath: "bare.json", calibration: nil,
                                                            version: "t", weightType: w).data) as! [String: Any]
        }
        XCTAssertEqual(try config(.int8)["weight_type"] as? String, "QInt8")
        XCTAssertEqual(try config(.uint8)["weight_type"] as? String, "QUInt8")
        XCTAssertEqual(try config(.int8)["reduce_range"] as? Bool, false)
        let seven = try JSONSerialization.jsonObject(with: e.export(.ortExclude, map: map, mapPath: "bare.json", calibration: nil,
                                                                    version: "t", weightBits: .seven).data) as! [String: Any]
        XCTAssertEqual(seven["reduce_range"] as? Bool, true, "7-bit weights are quantize_static's reduce_range")
    }
}
