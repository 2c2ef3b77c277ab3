import Foundation
import XCTest
import Kernels
import ONNX
@testable import Search

/// mpq's all-INT8 execution (minmax calibration, per-channel weights) against ONNX
/// Runtime's `quantize_static` QDQ model on the same calibration split, as recorded by
/// tools/fixtures/generate.py.
final class Int8ParityTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures").path

    struct Fixture: Decodable {
        let name: String
        let model: String
        let data: [String: String]
        let outputs: [Output]
        let qdq: QDQ?
        struct Output: Decodable { let name: String }
        struct QDQ: Decodable { let holdout_top1: Double }
    }

    func testAllInt8MatchesOnnxRuntimeQDQ() throws {
        for name in ["digits_cnn", "tabular_mlp"] {
            let f = try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: URL(fileURLWithPath: "\(Self.fixtures)/\(name).json")))
            let graph = try ModelLoader.load(path: "\(Self.fixtures)/\(f.model)")
            let session = try Session(graph: GraphPasses.optimize(graph))
            let calib = try Dataset(path: "\(Self.fixtures)/\(f.data["calibration"]!)", graph: graph)
            let holdout = try Dataset(path: "\(Self.fixtures)/\(f.data["holdout"]!)", graph: graph)
            let table = try Calibrator(session: session).calibrate(dataset: calib, options: CalibrationOptions(method: .minmax),
                                                                   modelDigest: graph.digest)
            let runtime = try MixedPrecisionRuntime(session: session, calibration: table)
            try runtime.apply(runtime.allInt8)
            let outputs = try Evaluator(session: session, dataset: holdout, batchSize: 64).run()
            let top1 = score(.top1, outputs: outputs, labels: holdout.labels, reference: nil)
            let ort = try XCTUnwrap(f.qdq).holdout_top1
            print("\(name): mpq all-INT8 top1 \(top1), ONNX Runtime QDQ top1 \(ort), INT8 layers \(runtime.layerNames.count), path \(runtime.path.resolved)")
            // Equal to ORT's count of correct samples: the fixture records it to 0.01 points and
            // one sample is 0.28 (CNN) or 0.88 (MLP) points. FP32 may score the same, so the
            // output check below is what tells INT8 apart.
            XCTAssertEqual(top1, ort, accuracy: 0.005, "\(name): all-INT8 accuracy vs ONNX Runtime quantize_static")
            XCTAssertEqual(runtime.map.int8Layers.count, runtime.layerNames.count)

            // Output closeness to ORT's QDQ model, in units of the logits' spread.
            let expected = try Numpy.readNPZ(path: "\(Self.fixtures)/\(name).expected.npz")
            let want = try XCTUnwrap(expected["qdq/\(f.outputs[0].name)"])
            let fp32 = try XCTUnwrap(expected[f.outputs[0].name])
            let diff = zip(outputs.values, want.floats).map { abs($0 - $1) }.max()!
            let fpDiff = zip(fp32.floats, want.floats).map { abs($0 - $1) }.max()!
            print("\(name): max |mpq int8 - ORT qdq| = \(diff); max |ORT fp32 - ORT qdq| = \(fpDiff)")
            XCTAssertLessThan(diff, fpDiff, "\(name): mpq INT8 should be closer to ORT's QDQ output than FP32 is")
        }
    }

    /// The same map gives the same output bits on every kernel path.
    func testKernelPathsGiveIdenticalOutputs() throws {
        let graph = try ModelLoader.load(path: "\(Self.fixtures)/digits_cnn.onnx")
        let session = try Session(graph: GraphPasses.optimize(graph))
        let calib = try Dataset(path: "\(Self.fixtures)/digits_calib.npz", graph: graph)
        let table = try Calibrator(session: session).calibrate(dataset: calib, options: CalibrationOptions(method: .minmax),
                                                               modelDigest: graph.digest)
        let runtime = try MixedPrecisionRuntime(session: session, calibration: table)
        try runtime.apply(runtime.allInt8)
        let sample = calib.batch(0..<16)
        var results: [KernelPath: [Float]] = [:]
        for path in KernelPath.available {
            runtime.path = path
            results[path] = try session.run(sample)["logits"]!.floats
        }
        print("INT8 model paths compared: \(KernelPath.available.map(\.rawValue).joined(separator: ", "))")
        for (path, out) in results { XCTAssertEqual(out, results[.reference], "path \(path) differs from the reference") }
    }

    func testUnknownLayerInMapIsAnError() throws {
        let graph = try ModelLoader.load(path: "\(Self.fixtures)/tabular_mlp.onnx")
        let session = try Session(graph: GraphPasses.optimize(graph))
        let calib = try Dataset(path: "\(Self.fixtures)/breast_cancer_calib.npz", graph: graph)
        let table = try Calibrator(session: session).calibrate(dataset: calib, options: CalibrationOptions(method: .minmax),
                                                               modelDigest: graph.digest)
        let runtime = try MixedPrecisionRuntime(session: session, calibration: table)
        XCTAssertThrowsError(try runtime.apply(PrecisionMap(layers: ["no_such_layer": .int8]))) { error in
            XCTAssertTrue("\(error)".contains("no_such_layer"), "\(error)")
        }
    }
}
