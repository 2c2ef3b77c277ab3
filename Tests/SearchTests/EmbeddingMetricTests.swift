import Foundation
import XCTest
import Kernels
import ONNX
@testable import Search

/// Retrieval metrics on hand-made embeddings, pooling with a mask, and a small attention
/// model scored by retrieval through calibration, the candidate evaluator and the holdout.
final class EmbeddingMetricTests: XCTestCase {
    private func outputs(_ rows: [[Float]]) -> Outputs {
        Outputs(values: rows.flatMap { $0 }, rows: rows.count, width: rows[0].count)
    }

    func testNearestNeighboursByCosineExcludeSelf() {
        // Rows 0 and 1 point almost the same way, 2 and 3 too; length does not matter.
        let e = outputs([[1, 0.1], [10, 2], [0, 1], [0.2, 3]])
        XCTAssertEqual(nearestNeighbours(e, k: 1), [[1], [0], [3], [2]])
        XCTAssertEqual(nearestNeighbours(e, k: 3)[0], [1, 3, 2])
        // Ties go to the lower index; k is capped at N - 1.
        let tied = outputs([[1, 0], [1, 0], [1, 0]])
        XCTAssertEqual(nearestNeighbours(tied, k: 5), [[1, 2], [0, 2], [0, 1]])
    }

    func testRetrievalScoresAgainstFP32() {
        let ref = outputs([[1, 0.1], [10, 2], [0, 1], [0.2, 3], [1, 1]])
        XCTAssertEqual(score(.retrieval, outputs: ref, labels: nil, reference: ref), 100)
        XCTAssertEqual(score(.retrieval5, outputs: ref, labels: nil, reference: ref), 100)
        // Row 4 (45 degrees, FP32 neighbour row 1) moves to 89.4 degrees, between row 3 (86.2)
        // and row 2 (90): rows 2, 3 and 4 now all have another nearest neighbour; 0 and 1 keep theirs.
        let cand = outputs([[1, 0.1], [10, 2], [0, 1], [0.2, 3], [0.01, 1]])
        let s = sampleScores(.retrieval, outputs: cand, labels: nil, reference: ref)
        XCTAssertEqual(s, [1, 1, 0, 0, 0])
        XCTAssertEqual(score(.retrieval, outputs: cand, labels: nil, reference: ref), 40, accuracy: 1e-9)
        // Within the 5 nearest (all 4 others here) every FP32 neighbour is found.
        XCTAssertEqual(score(.retrieval5, outputs: cand, labels: nil, reference: ref), 100)
        // One sample: nothing to disagree on.
        XCTAssertEqual(sampleScores(.retrieval, outputs: outputs([[1, 2]]), labels: nil, reference: outputs([[2, 1]])), [1])
        XCTAssertFalse(Metric.retrieval.isPerSample)
        XCTAssertTrue(Metric.retrieval5.needsReference)
        XCTAssertFalse(Metric.retrieval5.needsLabels)
    }

    func testRetrieval5CountsNeighbourAmongFiveNearest() {
        // 8 points on a circle; the candidate rotates row 0 so that its FP32 neighbour (row 1)
        // becomes its 2nd nearest: retrieval fails for row 0, retrieval5 does not.
        let angles: [Float] = [0, 0.3, 1, 1.7, 2.5, 3.3, 4.2, 5.2]
        let ref = outputs(angles.map { [cos($0), sin($0)] })
        var rows = angles.map { [cos($0), sin($0)] }
        rows[0] = [cos(Float(0.69)), sin(Float(0.69))]     // row 2 is 0.31 away, row 1 0.39
        let cand = outputs(rows)
        XCTAssertEqual(sampleScores(.retrieval, outputs: cand, labels: nil, reference: ref)[0], 0)
        XCTAssertEqual(sampleScores(.retrieval5, outputs: cand, labels: nil, reference: ref)[0], 1)
    }

    func testMeanPoolingOverRealTokens() throws {
        // [2, 3, 2]: sample 0 has 2 real tokens, sample 1 one; padding values must not count.
        let y = Tensor(shape: [2, 3, 2], floats: [1, 2, 3, 4, 100, 100, 5, 6, -100, 7, 8, 9])
        let mask = Tensor(shape: [2, 3], ints: [1, 1, 0, 1, 0, 0])
        let mean = try OutputTransform(pooling: .mean).apply(y, mask: mask)
        XCTAssertEqual(mean.shape, [2, 2])
        XCTAssertEqual(mean.floats, [2, 3, 5, 6])
        let all = try OutputTransform(pooling: .mean, mask: "none").apply(y, mask: nil)
        let expected: [Float] = [104 / 3, 106 / 3, -87 / 3, 22 / 3]
        XCTAssertEqual(all.floats, expected)
        let cls = try OutputTransform(pooling: .cls).apply(y, mask: nil)
        XCTAssertEqual(cls.floats, [1, 2, 5, 6])
        XCTAssertEqual(try OutputTransform.identity.apply(y, mask: nil), y)
        // An all-padding row pools to zeros, as sentence-transformers' clamp gives.
        let empty = try OutputTransform(pooling: .mean).apply(y, mask: Tensor(shape: [2, 3], ints: [0, 0, 0, 1, 1, 1]))
        XCTAssertEqual(Array(empty.floats[0..<2]), [0, 0])
        XCTAssertThrowsError(try OutputTransform(pooling: .mean).apply(y, mask: Tensor(shape: [2, 2], ints: [1, 1, 1, 1])))
        XCTAssertThrowsError(try OutputTransform(pooling: .cls).apply(Tensor(shape: [2, 2], floats: [1, 2, 3, 4]), mask: nil))
    }

    // MARK: - Through the pipeline

    /// x [N, L, D] -> h = x·W, scores h·hᵀ, softmax, context·h: one constant-weight MatMul
    /// and two MatMuls of activations.
    static func encoderGraph(l: Int, d: Int, seed: UInt64) -> Graph {
        let rng = SeededRandom(seed: seed)
        let w = Tensor(shape: [d, d], floats: (0..<d * d).map { _ in Float(rng.uniform() - 0.5) })
        let nodes = [
            Node(name: "proj", opType: "MatMul", inputs: ["x", "w"], outputs: ["h"]),
            Node(name: "h_t", opType: "Transpose", inputs: ["h"], outputs: ["ht"], attributes: ["perm": .ints([0, 2, 1])]),
            Node(name: "scores", opType: "MatMul", inputs: ["h", "ht"], outputs: ["s"]),
            Node(name: "softmax", opType: "Softmax", inputs: ["s"], outputs: ["p"], attributes: ["axis": .int(-1)]),
            Node(name: "context", opType: "MatMul", inputs: ["p", "h"], outputs: ["y"]),
        ]
        return Graph(nodes: nodes, initializers: ["w": w], inputs: [ValueInfo(name: "x", dtype: .float32, shape: [nil, l, d])],
                     outputs: [ValueInfo(name: "y", dtype: .float32, shape: [nil, l, d])], opsets: ["": 17])
    }

    static func dataset(_ graph: Graph, n: Int, l: Int, d: Int, seed: UInt64) throws -> Dataset {
        let rng = SeededRandom(seed: seed)
        let x = Tensor(shape: [n, l, d], floats: (0..<n * l * d).map { _ in Float(4 * rng.uniform() - 2) })
        // Real lengths 2...l; padded positions hold values like any other.
        let mask = Tensor(shape: [n, l], ints: (0..<n).flatMap { i in (0..<l).map { Int64($0 < 2 + i % (l - 1) ? 1 : 0) } })
        return try Dataset(arrays: ["x": x, "attention_mask": mask], path: "encoder.npz", graph: graph)
    }

    func testRetrievalThroughCalibrationEvaluatorAndHoldout() throws {
        let (n, l, d) = (48, 6, 16)
        let graph = Self.encoderGraph(l: l, d: d, seed: 1)
        let session = try Session(graph: graph)
        let data = try Self.dataset(graph, n: n, l: l, d: d, seed: 2)

        // Both operands of the activation MatMuls are calibrated.
        XCTAssertEqual(Calibrator.requiredTensors(session: session), ["x", "h", "ht", "p"])
        let table = try Calibrator(session: session).calibrate(dataset: data, options: CalibrationOptions(method: .minmax),
                                                               modelDigest: graph.digest)
        XCTAssertEqual(Set(table.ranges.keys), ["x", "h", "ht", "p"])
        let runtime = try MixedPrecisionRuntime(session: session, calibration: table)
        XCTAssertEqual(runtime.layerNames, ["proj", "scores", "context"])

        let pool = OutputTransform(pooling: .mean)
        let pooled = try Evaluator(session: session, dataset: data, batchSize: 5, transform: pool).run()
        XCTAssertEqual(pooled.rows, n)
        XCTAssertEqual(pooled.width, d)

        let evaluator = try CandidateEvaluator(runtime: runtime, data: data, metric: .retrieval, batchSize: 5, transform: pool)
        XCTAssertEqual(try evaluator.fp32Outputs, pooled)
        XCTAssertEqual(evaluator.fp32Score, 100)
        // A per-sample metric would be rejected at once with this budget; retrieval is never
        // rejected early and is scored on the whole split.
        evaluator.minSamplesBeforeRejection = 1
        let (eval, outs) = try evaluator.evaluate(runtime.allInt8, rejectAbove: -1_000, keepOutputs: true)
        XCTAssertTrue(eval.complete)
        XCTAssertEqual(eval.samples, n)
        let full = try XCTUnwrap(outs)
        XCTAssertEqual(eval.score, score(.retrieval, outputs: full, labels: nil, reference: pooled), accuracy: 1e-9)
        XCTAssertGreaterThan(eval.score, 50, "INT8 attention keeps most nearest neighbours")
        print("retrieval all-INT8 on \(n) pooled embeddings: \(eval.score), sqnr \(eval.sqnr ?? 0) dB")

        let cosine = try CandidateEvaluator(runtime: runtime, data: data, metric: .cosine, batchSize: 5, transform: pool)
        cosine.minSamplesBeforeRejection = 1
        XCTAssertFalse(try cosine.evaluate(runtime.allInt8, rejectAbove: -1_000).0.complete, "per-sample metrics still reject early")

        let validator = try HoldoutValidator(runtime: runtime, holdout: data, metric: .retrieval5, batchSize: 7, seed: 1, transform: pool)
        let r = try validator.validate(runtime.allInt8, budget: 5)
        XCTAssertEqual(r.samples, n)
        XCTAssertEqual(r.fp32, 100)
        XCTAssertGreaterThanOrEqual(r.mixed, eval.score, "the FP32 neighbour among the 5 nearest is at least as likely as the nearest")
    }

    func testMeanPoolingNeedsTheMask() throws {
        let graph = Self.encoderGraph(l: 4, d: 3, seed: 1)
        let data = try Self.dataset(graph, n: 3, l: 4, d: 3, seed: 2)
        let session = try Session(graph: graph)
        XCTAssertThrowsError(try Evaluator(session: session, dataset: data, transform: OutputTransform(pooling: .mean, mask: "mask"))) { e in
            XCTAssertEqual(e as? MetricError, PoolingProblem.missingMask("mask", path: "encoder.npz", available: ["attention_mask", "x"]))
            XCTAssertTrue("\(e)".contains("--pool mean needs the mask 'mask' in encoder.npz (arrays: attention_mask, x)"), "\(e)")
        }
        XCTAssertNoThrow(try Evaluator(session: session, dataset: data, transform: OutputTransform(pooling: .mean, mask: "none")).run())
    }
}
