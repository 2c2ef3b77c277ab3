import Foundation
import XCTest
import Kernels
import ONNX
@testable import Search

/// End to end on Tests/Fixtures/detection/shapes_det (tools/fixtures/generate_detection.py):
/// mpq's FP32 mAP on the holdout split equals pycocotools' on ONNX Runtime's outputs.
final class DetectionFixtureTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/detection").path

    func path(_ name: String) -> String { "\(Self.root)/\(name)" }

    func testFP32MapMatchesReference() throws {
        guard FileManager.default.fileExists(atPath: path("shapes_det.json")) else {
            throw XCTSkip("Tests/Fixtures/detection/shapes_det.* not generated yet")
        }
        let meta = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path("shapes_det.json")))) as? [String: Any])
        let graph = try ModelLoader.load(path: path("shapes_det.onnx"))
        let session = try Session(graph: GraphPasses.optimize(graph))
        let data = try Dataset(path: path("shapes_det_holdout.npz"), graph: session.graph)
        let outputs = try Evaluator(session: session, dataset: data, batchSize: 32, detection: DetectionOptions()).run()
        let truth = try DetectionTruth(dataset: data)
        for (metric, key) in [(Metric.map50, "ort_fp32_map50"), (.map50_95, "ort_fp32_map50_95")] {
            let want = try XCTUnwrap((meta[key] as? [String: Any])?["holdout"] as? Double, key)
            let got = DetectionMetrics.score(metric, outputs: outputs, reference: nil, truth: truth)
            XCTAssertEqual(got, 100 * want, accuracy: 0.05, "\(metric.rawValue)")
        }
        XCTAssertEqual(DetectionMetrics.score(.boxAgreement, outputs: outputs, reference: outputs, truth: nil), 100, accuracy: 1e-9)
        // ONNX Runtime's QDQ model (quantize_static), executed by mpq, scores as pycocotools says it does under ORT.
        let qdqGraph = try ModelLoader.load(path: path("shapes_det.qdq.onnx"))
        let qdq = try Evaluator(session: Session(graph: GraphPasses.optimize(qdqGraph)), dataset: data, batchSize: 32,
                                detection: DetectionOptions()).run()
        let q = try XCTUnwrap(meta["qdq"] as? [String: Any])
        XCTAssertEqual(DetectionMetrics.score(.map50, outputs: qdq, reference: nil, truth: truth),
                       100 * (try XCTUnwrap(q["holdout_map50"] as? Double)), accuracy: 0.05)
        XCTAssertEqual(DetectionMetrics.score(.map50_95, outputs: qdq, reference: nil, truth: truth),
                       100 * (try XCTUnwrap(q["holdout_map50_95"] as? Double)), accuracy: 0.05)
        // The candidate evaluator and the holdout validator agree with the evaluator.
        let evaluator = try CandidateEvaluator(runtime: MixedPrecisionRuntime(session: session, calibration: Calibrator(session: session)
            .calibrate(dataset: data, options: CalibrationOptions(method: .minmax, batchSize: 32), modelDigest: "d")),
                                               data: data, metric: .map50, batchSize: 32)
        XCTAssertEqual(evaluator.fp32Score, DetectionMetrics.score(.map50, outputs: outputs, reference: nil, truth: truth), accuracy: 1e-9)
    }
}
