import Foundation
import XCTest
import Kernels
@testable import ONNX
@testable import Search

/// `--weight-bits 7`: weights quantized to [-64, 64] (ONNX Runtime's reduce_range), in the
/// runtime, the map and the QDQ export alike. ORT's view (its int8-weight export is exact on
/// AVX2 then) is checked by tools/crosscheck.
final class WeightBitsTests: XCTestCase {
    func testSevenBitWeightsFollowORTsReduceRangeFormula() {
        let w: [Float] = [0.5, -0.3, 0.1, 0.0, /* row 2 */ -3, 1.5, 0.75, 2.9, /* row 3: zeros */ 0, 0, 0, 0]
        let q = QuantizedWeights(rows: w, channels: 3, bits: .seven)
        XCTAssertEqual(q.scales[0], Float(2 * 0.5 / 128.0))      // (rmax - rmin) / (qmax - qmin) = 2 absmax / 128
        XCTAssertEqual(Array(q.values[0..<4]), [64, -38, 13, 0])
        XCTAssertEqual(Array(q.values[4..<8]), [-64, 32, 16, 62])
        XCTAssertEqual(Array(q.values[8..<12]), [0, 0, 0, 0])
        XCTAssertEqual(q.scales[2], 1)
        let eight = QuantizedWeights(rows: w, channels: 3)
        XCTAssertEqual(eight.scales[0], Float(2 * 0.5 / 254.0))
        XCTAssertEqual(Array(eight.values[0..<4]), [127, -76, 25, 0])
    }

    /// The digits CNN all-INT8 with 7-bit weights: the map records them, the export writes
    /// them (int8 in [-64, 64]) and computes what the runtime computes; asking the export for
    /// other bits than the map's fails.
    func testSevenBitMapExportsSevenBitWeights() throws {
        let exporter = try Exporter(modelPath: ExportTests.path("digits_cnn.onnx"))
        let calib = try Dataset(path: ExportTests.path("digits_calib.npz"), graph: exporter.graph)
        let table = try Calibrator(session: exporter.session).calibrate(dataset: calib, options: CalibrationOptions(method: .minmax),
                                                                        modelDigest: exporter.digest)
        let runtime = try MixedPrecisionRuntime(session: exporter.session, calibration: table, weightBits: .seven)
        XCTAssertEqual(runtime.weightBits, .seven)
        struct File: Encodable { var layers: [PrecisionMapDocument.Layer]; var model: [String: String]; var weightBits: Int? }
        let enc = JSONEncoder()
        enc.keyEncodingStrategy = .convertToSnakeCase
        enc.outputFormatting = [.sortedKeys]
        let layers = PrecisionMapDocument.layerEntries(map: runtime.allInt8, runtime: runtime, layers: [], sensitivity: nil)
        let file = try enc.encode(File(layers: layers, model: ["digest": exporter.digest], weightBits: 7))
        let map = try ExportMap(data: file, path: "map7.json")
        XCTAssertEqual(map.weightBits, .seven)

        let qdq = try ModelLoader.load(data: exporter.qdq(map: map, path: "map7.json", calibration: nil, version: "t"))
        XCTAssertEqual(qdq.metadata["mpq.weight_bits"], "7")
        let weights = qdq.nodes.filter { $0.opType == "DequantizeLinear" }.compactMap { qdq.initializers[$0.inputs[0]] }
            .filter { $0.dtype == .int8 }
        XCTAssertEqual(weights.count, runtime.allInt8.int8Layers.count)
        for w in weights {
            XCTAssertLessThanOrEqual(w.asInts.map { abs($0) }.max() ?? 0, 64)
            XCTAssertEqual(w.asInts.map { abs($0) }.max(), 64, "each weight reaches the 7-bit range's end")
        }

        // The export's FP32 run (simulated quantization) scores what the 7-bit runtime scores.
        let holdout = try Dataset(path: ExportTests.path("digits_holdout.npz"), graph: exporter.graph)
        let sim = try Evaluator(session: Session(graph: GraphPasses.optimize(qdq)), dataset: holdout).run()
        try runtime.apply(runtime.allInt8)
        let real = try Evaluator(session: runtime.session, dataset: holdout).run()
        XCTAssertEqual(score(.agreement, outputs: sim, labels: nil, reference: real), 100)

        XCTAssertThrowsError(try exporter.qdq(map: map, path: "map7.json", calibration: nil, version: "t", weightBits: .eight)) {
            XCTAssertTrue("\($0)".contains("--weight-bits 7"), "\($0)")
        }
        // The same scales in a map that does not say 7: the 8-bit weights' scales differ.
        let unmarked = try ExportMap(data: enc.encode(File(layers: layers, model: ["digest": exporter.digest], weightBits: nil)),
                                     path: "unmarked.json")
        XCTAssertThrowsError(try exporter.qdq(map: unmarked, path: "unmarked.json", calibration: nil, version: "t")) {
            guard case ExportError.weightScaleMismatch = $0 else { return XCTFail("\($0)") }
        }
    }

    func testBadWeightBitsInAMapIsAnError() {
        XCTAssertThrowsError(try ExportMap(data: Data(#"{"layers": {"a": "int8"}, "weight_bits": 6}"#.utf8), path: "m.json")) {
            XCTAssertTrue("\($0)".contains("weight_bits 6"), "\($0)")
        }
    }
}
