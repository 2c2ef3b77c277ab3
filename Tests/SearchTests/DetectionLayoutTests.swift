import Foundation
import XCTest
import Kernels
import ONNX
@testable import Search

/// The detection layouts (docs/detection.md): the YOLOv8-layout and two-output variants of
/// shapes_det (tools/fixtures/generate_detection_layouts.py) score as pycocotools says they do
/// under ONNX Runtime, `auto` reads every fixture right, and a yolo/yolov8 mix-up is refused.
final class DetectionLayoutTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/detection").path

    func path(_ name: String) -> String { "\(Self.root)/\(name)" }

    func session(_ model: String) throws -> Session {
        try Session(graph: GraphPasses.optimize(ModelLoader.load(path: path(model))))
    }

    func reference(_ model: String, _ keys: String...) throws -> [String: Any] {
        let meta = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path("shapes_det_layouts.json")))) as? [String: Any])
        var o = try XCTUnwrap((meta["models"] as? [String: Any])?[model] as? [String: Any])
        for k in keys { o = try XCTUnwrap(o[k] as? [String: Any], k) }
        return o
    }

    func testYolov8FP32AndQDQMapMatchPycocotoolsOnOrt() throws {
        let fp32 = try session("shapes_det_v8.onnx")
        // The first 100 holdout images, whose references the generator records too (debug builds are slow).
        let data = try Dataset(path: path("shapes_det_holdout.npz"), graph: fp32.graph).subset(Array(0..<100), path: "holdout[:100]")
        let truth = try DetectionTruth(dataset: data)
        let auto = DetectionOptions(format: .auto)
        for (model, ref) in [("shapes_det_v8.onnx", try reference("shapes_det_v8", "ort_fp32", "holdout_first_100")),
                             ("shapes_det_v8.qdq.onnx", try reference("shapes_det_v8", "qdq", "ort", "holdout_first_100"))] {
            let outputs = try Evaluator(session: session(model), dataset: data, batchSize: 100, detection: auto).run()
            for (metric, key) in [(Metric.map50, "map50"), (.map50_95, "map50_95")] {
                let want = try XCTUnwrap(ref[key] as? Double)
                XCTAssertEqual(DetectionMetrics.score(metric, outputs: outputs, reference: nil, truth: truth), 100 * want,
                               accuracy: 0.05, "\(model) \(key)")
            }
        }
    }

    func testAutoReadsEveryFixture() throws {
        let data = try Dataset(path: path("shapes_det_calib.npz"), graph: session("shapes_det.onnx").graph)
        let expected: [(String, DetectionFormat, [String], Bool)] = [
            ("shapes_det.onnx", .yolo, ["detections"], false), ("shapes_det.qdq.onnx", .yolo, ["detections"], false),
            ("shapes_det_v8.onnx", .yolov8, ["output0"], true), ("shapes_det_v8.qdq.onnx", .yolov8, ["output0"], true),
            ("shapes_det_2out.onnx", .boxesScores, ["boxes", "scores"], true)]
        for (model, format, outputs, first) in expected {
            let d = try DetectionOptions(format: .auto).resolved(session: session(model), dataset: data)
            XCTAssertEqual(d.format, format, model)
            XCTAssertEqual(d.outputNames, outputs, model)
            XCTAssertEqual(d.numClasses, 3, model)
            XCTAssertEqual(d.classesFirst, first, model)
        }
    }

    /// The two-output model computes its xyxy boxes and scores exactly as the post-processing
    /// does from the yolov8 rows, so both decode to the same detections, bit for bit.
    func testTwoOutputsDecodeLikeYolov8() throws {
        let v8 = try session("shapes_det_v8.onnx"), two = try session("shapes_det_2out.onnx")
        let data = try Dataset(path: path("shapes_det_calib.npz"), graph: v8.graph).subset(Array(0..<16), path: "calib[:16]")
        let a = try Evaluator(session: v8, dataset: data, detection: DetectionOptions(format: .yolov8)).run()
        let b = try Evaluator(session: two, dataset: data, detection: DetectionOptions(format: .boxesScores)).run()
        XCTAssertEqual(a.values, b.values)
        XCTAssertGreaterThan(a.values.filter { $0 > 0 }.count, 150)
    }

    func testYoloVersusYolov8MixUpIsRefused() throws {
        let data = try Dataset(path: path("shapes_det_calib.npz"), graph: session("shapes_det.onnx").graph)
        // Row 4 of a yolov8 output read as objectness: the truth's class 2 cannot be produced.
        XCTAssertThrowsError(try DetectionOptions(format: .yolo).resolved(session: session("shapes_det_v8.onnx"), dataset: data)) {
            guard case DetectionLayoutError.classOutOfRange(_, _, let ids, let c) = $0 else { return XCTFail("\($0)") }
            XCTAssertEqual(ids, [0, 1, 2]); XCTAssertEqual(c, 2)
            XCTAssertTrue("\($0)".contains("'output0' [1,7,128]"), "\($0)")
        }
        // Objectness read as class 0: four classes for a three-class truth, while yolo fits.
        XCTAssertThrowsError(try DetectionOptions(format: .yolov8).resolved(session: session("shapes_det.onnx"), dataset: data)) {
            guard case DetectionLayoutError.contradicted = $0 else { return XCTFail("\($0)") }
        }
        // Confirmed with --num-classes, an explicit reading that fits the shape is the user's call.
        XCTAssertEqual(try DetectionOptions(format: .yolov8, numClasses: 4).resolved(session: session("shapes_det.onnx"), dataset: data).format, .yolov8)
    }

    func testAutoWithoutClassCountOnAmbiguousShapeAsks() throws {
        let y = Tensor(shape: [1, 7, 128], floats: [Float](repeating: 0.5, count: 7 * 128))
        XCTAssertThrowsError(try DetectionOptions(format: .auto).resolved(outputs: ["y": y], order: ["y"])) {
            guard case DetectionLayoutError.undecided(_, _, let c) = $0 else { return XCTFail("\($0)") }
            XCTAssertEqual(c.count, 2)     // yolo with C = 2 or yolov8 with C = 3
        }
        XCTAssertEqual(try DetectionOptions(format: .auto, numClasses: 3).resolved(outputs: ["y": y], order: ["y"]).format, .yolov8)
    }
}
