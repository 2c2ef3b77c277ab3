import Foundation
import XCTest
import Kernels
import ONNX
@testable import Search

/// Detection metrics through calibration, the candidate evaluator and the holdout
/// validator, on a tiny "detector": a MatMul with an identity weight over yolo rows.
final class DetectionPipelineTests: XCTestCase {
    static let (anchors, features) = (4, 7)    // 2 classes

    static func graph() -> Graph {
        let f = features
        let w = Tensor(shape: [f, f], floats: (0..<f * f).map { $0 / f == $0 % f ? 1 : 0 })
        return Graph(nodes: [Node(name: "head", opType: "MatMul", inputs: ["x", "w"], outputs: ["y"])], initializers: ["w": w],
                     inputs: [ValueInfo(name: "x", dtype: .float32, shape: [nil, anchors, f])],
                     outputs: [ValueInfo(name: "y", dtype: .float32, shape: [nil, anchors, f])], opsets: ["": 17])
    }

    /// Image i holds one object of class i % 2 at a position depending on i; anchor 0 finds it,
    /// anchor 1 is a near duplicate (NMS), anchors 2-3 are weak background boxes.
    static func dataset(_ graph: Graph, n: Int, withTruth: Bool = true) throws -> Dataset {
        var x: [Float] = [], boxes: [Float] = [], classes: [Int64] = []
        let rng = SeededRandom(seed: 3)
        for i in 0..<n {
            let c = i % 2
            let cx = Float(10 + 3 * (i % 10)), cy = Float(12 + 2 * (i % 7)), w = Float(8 + i % 5), h = Float(6 + i % 4)
            func probs(_ k: Float) -> [Float] { c == 0 ? [k, 1 - k] : [1 - k, k] }
            x += [cx, cy, w, h, 0.9] + probs(0.95)
            x += [cx + 1, cy, w, h, 0.6] + probs(0.9)
            for _ in 0..<2 {
                x += [Float(rng.uniform() * 60), Float(rng.uniform() * 60), 5, 5, Float(rng.uniform() * 0.3), 0.5, 0.5]
            }
            boxes += [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2, -1, -1, -1, -1]
            classes += [Int64(c), -1]
        }
        var arrays = ["x": Tensor(shape: [n, anchors, features], floats: x)]
        if withTruth {
            arrays["gt_boxes"] = Tensor(shape: [n, 2, 4], floats: boxes)
            arrays["gt_classes"] = Tensor(shape: [n, 2], ints: classes)
        }
        return try Dataset(arrays: arrays, path: "det.npz", graph: graph)
    }

    func testMetricsThroughEvaluatorsAndHoldout() throws {
        let graph = Self.graph()
        let session = try Session(graph: graph)
        let data = try Self.dataset(graph, n: 40)
        let table = try Calibrator(session: session).calibrate(dataset: data, options: CalibrationOptions(method: .minmax),
                                                               modelDigest: graph.digest)
        let runtime = try MixedPrecisionRuntime(session: session, calibration: table)
        XCTAssertEqual(runtime.layerNames, ["head"])

        let decoded = try Evaluator(session: session, dataset: data, batchSize: 7, detection: DetectionOptions()).run()
        XCTAssertEqual(decoded.width, 600)
        let truth = try DetectionTruth(dataset: data)
        XCTAssertEqual(DetectionMetrics.score(.map50, outputs: decoded, reference: nil, truth: truth), 100, accuracy: 1e-9)

        for metric in [Metric.map50, .map50_95, .boxAgreement] {
            let evaluator = try CandidateEvaluator(runtime: runtime, data: data, metric: metric, batchSize: 7)
            XCTAssertEqual(try evaluator.fp32Outputs, decoded)
            XCTAssertEqual(evaluator.fp32Score, DetectionMetrics.score(metric, outputs: decoded, reference: decoded, truth: truth), accuracy: 1e-9)
            evaluator.minSamplesBeforeRejection = 1
            let (eval, outs) = try evaluator.evaluate(runtime.allInt8, rejectAbove: -1_000, keepOutputs: true)
            XCTAssertTrue(eval.complete, "detection metrics are never rejected early")
            XCTAssertEqual(eval.samples, 40)
            let int8 = try XCTUnwrap(outs)
            XCTAssertEqual(eval.score, DetectionMetrics.score(metric, outputs: int8, reference: decoded, truth: truth), accuracy: 1e-9)
            XCTAssertEqual(eval.drop, evaluator.fp32Score - eval.score, accuracy: 1e-9)
            XCTAssertEqual(try evaluator.evaluate(runtime.allFP32).0.drop, 0, accuracy: 1e-9)

            let validator = try HoldoutValidator(runtime: runtime, holdout: data, metric: metric, batchSize: 9, resamples: 100, seed: 1)
            let fp = try validator.validate(runtime.allFP32, budget: 1)
            XCTAssertEqual(fp.drop, 0)
            XCTAssertEqual(fp.ci, [0, 0])
            XCTAssertNil(fp.mcnemarP)
            XCTAssertEqual(fp.fp32, ValidationResultRounding.round4(evaluator.fp32Score))
            let r = try validator.validate(runtime.allInt8, budget: 1)
            XCTAssertEqual(r.mixed, ValidationResultRounding.round4(eval.score), accuracy: 1e-4)
            XCTAssertLessThanOrEqual(r.ci[0], r.drop + 1e-4)
            XCTAssertGreaterThanOrEqual(r.ci[1], r.drop - 1e-4)
        }
    }

    func testMissingTruthFailsBeforeScoring() throws {
        let graph = Self.graph()
        let session = try Session(graph: graph)
        let data = try Self.dataset(graph, n: 4, withTruth: false)
        let table = try Calibrator(session: session).calibrate(dataset: data, options: CalibrationOptions(method: .minmax),
                                                               modelDigest: graph.digest)
        let runtime = try MixedPrecisionRuntime(session: session, calibration: table)
        for make in [{ _ = try CandidateEvaluator(runtime: runtime, data: data, metric: .map50) },
                     { _ = try HoldoutValidator(runtime: runtime, holdout: data, metric: .map50_95) }] {
            XCTAssertThrowsError(try make()) { XCTAssertEqual($0 as? MetricError, .missingGroundTruth(path: "det.npz", available: ["x"])) }
        }
        // box-agreement needs none.
        XCTAssertNoThrow(try CandidateEvaluator(runtime: runtime, data: data, metric: .boxAgreement))
    }
}

private enum ValidationResultRounding {
    static func round4(_ x: Double) -> Double { HoldoutValidator.round4(x) }
}
