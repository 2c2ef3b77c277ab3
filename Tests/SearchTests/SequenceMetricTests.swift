import Foundation
import XCTest
import Kernels
import ONNX
@testable import Search

/// Sequence outputs [N, T, C] (docs/metrics.md): per-position top1/top5/agreement and greedy
/// CTC decoding, against numpy on ONNX Runtime's outputs of Tests/Fixtures/sequence/ctc_digits
/// (tools/fixtures/generate_ctc.py) and against hand-checked cases.
final class SequenceMetricTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/sequence").path

    func path(_ name: String) -> String { "\(Self.fixtures)/\(name)" }

    func graph() throws -> Graph { try GraphPasses.optimize(ModelLoader.load(path: path("ctc_digits.onnx"))) }

    /// A data set for the CTC model with `labels` only mattering.
    func dataset(labels: Tensor) throws -> Dataset {
        let n = labels.shape[0]
        return try Dataset(arrays: ["input": Tensor(shape: [n, 1, 8, 40], floats: [Float](repeating: 0, count: n * 320)),
                                    "labels": labels], path: "seq.npz", graph: graph())
    }

    func testCTCFixtureMatchesNumpyReference() throws {
        let meta = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path("ctc_digits.json")))) as? [String: Any])
        let ref = try XCTUnwrap(meta["holdout"] as? [String: Double])
        let expected = try Numpy.readNPZ(path: path("ctc_digits.expected.npz"))
        func outputs(_ key: String) throws -> Outputs {
            let t = try XCTUnwrap(expected[key])
            return Outputs(values: t.floats, rows: t.shape[0], width: 20 * 11, sampleShape: Array(t.shape.dropFirst()))
        }
        let fp32 = try outputs("fp32"), qdq = try outputs("qdq")
        let session = try Session(graph: graph())
        let holdout = try Dataset(path: path("ctc_digits_holdout.npz"), graph: session.graph)
        XCTAssertEqual(holdout.labelsPerSample, 5)
        let all = 0..<holdout.count
        let exact = Metric.ctcExact.scorer(), agreement = Metric.ctcAgreement.scorer()
        try exact.check(fp32, data: holdout, output: "logits")
        XCTAssertEqual(try exact.score(fp32, reference: nil, data: holdout, range: all).score, try XCTUnwrap(ref["ctc_exact_fp32"]), accuracy: 1e-9)
        XCTAssertEqual(try exact.score(qdq, reference: fp32, data: holdout, range: all).score, try XCTUnwrap(ref["ctc_exact_qdq"]), accuracy: 1e-9)
        XCTAssertEqual(try agreement.score(qdq, reference: fp32, data: holdout, range: all).score,
                       try XCTUnwrap(ref["ctc_agreement_qdq"]), accuracy: 1e-9)
        XCTAssertEqual(try Metric.agreement.scorer().score(qdq, reference: fp32, data: holdout, range: all).score,
                       try XCTUnwrap(ref["position_agreement_qdq"]), accuracy: 1e-9)
        XCTAssertEqual(try agreement.score(fp32, reference: fp32, data: holdout, range: all).score, 100)
        // mpq's own FP32 run of the model decodes what ORT's outputs decode.
        let scorer = Metric.ctcExact.scorer()
        let mine = try Evaluator(session: session, dataset: holdout, batchSize: 100, scorer: scorer).run()
        XCTAssertEqual(mine.sampleShape, [20, 11])
        XCTAssertEqual(try scorer.score(mine, reference: nil, data: holdout, range: all).score, try XCTUnwrap(ref["ctc_exact_fp32"]), accuracy: 1e-9)
        // Batch by batch, as the candidate evaluator scores, gives the same per-sample scores.
        let whole = try XCTUnwrap(try scorer.score(mine, reference: nil, data: holdout, range: all).points)
        var batched: [Double] = []
        for r in holdout.batches(size: 64) {
            let rows = Outputs(values: Array(mine.values[r.lowerBound * 220..<r.upperBound * 220]), rows: r.count, width: 220, sampleShape: [20, 11])
            batched += try XCTUnwrap(try scorer.score(rows, reference: nil, data: holdout, range: r).points)
        }
        XCTAssertEqual(batched, whole)
    }

    /// Two samples, T = 3 positions, C = 3 classes (class axis last).
    static let logits: [Float] = [
        0.9, 0.1, 0.0,   0.1, 0.8, 0.1,   0.2, 0.3, 0.5,     // argmax 0, 1, 2
        0.1, 0.2, 0.7,   0.6, 0.3, 0.1,   0.6, 0.3, 0.1,     // argmax 2, 0, 0
    ]

    func testPerPositionTop1WithIgnoreIndex() throws {
        let o = Outputs(values: Self.logits, rows: 2, width: 9, sampleShape: [3, 3])
        // Sample 0: 0 right, 1 right, 1 wrong -> 2/3; sample 1: 2 right, the rest ignored -> 1.
        let data = try dataset(labels: Tensor(shape: [2, 3], ints: [0, 1, 1, 2, -100, -100]))
        let top1 = Metric.top1.scorer()
        try top1.check(o, data: data, output: "logits")
        let s = try top1.score(o, reference: nil, data: data, range: 0..<2)
        XCTAssertEqual(s.points![0], 200.0 / 3, accuracy: 1e-12)
        XCTAssertEqual(s.points![1], 100)
        XCTAssertFalse(top1.hasBinarySamples(o))
        // Top-5 of 3 classes holds every label.
        XCTAssertEqual(try Metric.top5.scorer().score(o, reference: nil, data: data, range: 0..<2).score, 100)
        // The same values with the classes on axis 1 ([N, C, T]) score the same.
        var transposed = [Float](repeating: 0, count: 18)
        for i in 0..<2 { for t in 0..<3 { for c in 0..<3 { transposed[i * 9 + c * 3 + t] = Self.logits[i * 9 + t * 3 + c] } } }
        let axis1 = Metric.top1.scorer(ScorerOptions(classAxis: 1))
        XCTAssertEqual(try axis1.score(Outputs(values: transposed, rows: 2, width: 9, sampleShape: [3, 3]), reference: nil,
                                       data: data, range: 0..<2), s)
        // Agreement per position: sample 1 differs from a reference at one position of three.
        var other = Self.logits
        other[9 + 3] = 0; other[9 + 4] = 1          // sample 1 position 1: argmax 1 instead of 0
        let agree = try Metric.agreement.scorer().score(Outputs(values: other, rows: 2, width: 9, sampleShape: [3, 3]), reference: o,
                                                        data: data, range: 0..<2)
        XCTAssertEqual(agree.points![0], 100)
        XCTAssertEqual(agree.points![1], 200.0 / 3, accuracy: 1e-12)
    }

    func testSequenceLabelErrors() throws {
        let o = Outputs(values: Self.logits, rows: 2, width: 9, sampleShape: [3, 3])
        // A class the output does not have.
        XCTAssertThrowsError(try Metric.top1.scorer().check(o, data: try dataset(labels: Tensor(shape: [2, 3], ints: [0, 3, 1, 2, 0, 0])), output: "logits")) {
            XCTAssertTrue("\($0)".contains("row 0 position 1 holds 3"), "\($0)")
        }
        // Per-sample labels for a sequence output, and the wrong number of positions.
        XCTAssertThrowsError(try Metric.top1.scorer().check(o, data: try dataset(labels: Tensor(shape: [2], ints: [0, 1])), output: "logits"))
        XCTAssertThrowsError(try Metric.top1.scorer().check(o, data: try dataset(labels: Tensor(shape: [2, 2], ints: [0, 1, 1, 0])), output: "logits")) {
            XCTAssertTrue("\($0)".contains("[N, 3]"), "\($0)")
        }
        // An output with no classes on the class axis, and the batch axis as class axis.
        XCTAssertThrowsError(try ClassLayout([5, 0], classAxis: -1, output: "y"))
        XCTAssertThrowsError(try ClassLayout([5, 3], classAxis: -3, output: "y"))
        let layout = try ClassLayout([5, 3, 2], classAxis: 2, output: "y")
        XCTAssertEqual([layout.outer, layout.classes, layout.inner, layout.positions], [5, 3, 2, 10])
        // ctc-exact needs target rows; the blank is not a target.
        XCTAssertThrowsError(try Metric.ctcExact.scorer().validate(try dataset(labels: Tensor(shape: [2], ints: [0, 1]))))
        XCTAssertThrowsError(try Metric.ctcExact.scorer().check(o, data: try dataset(labels: Tensor(shape: [2, 2], ints: [1, 0, 2, -100])), output: "logits")) {
            XCTAssertTrue("\($0)".contains("blank"), "\($0)")
        }
        XCTAssertThrowsError(try Metric.ctcAgreement.scorer().check(Outputs(values: [1, 2], rows: 1, width: 2), data: try dataset(labels: Tensor(shape: [2, 2], ints: [1, 1, 2, 2])), output: "logits")) {
            XCTAssertTrue("\($0)".contains("sequence output"), "\($0)")
        }
    }

    func testGreedyDecoding() throws {
        // Steps argmax: 1 1 0 1 2 2 0 -> collapse repeats, drop blanks: 1 1 2.
        let steps = [1, 1, 0, 1, 2, 2, 0]
        var v = [Float](repeating: 0, count: steps.count * 3)
        for (t, c) in steps.enumerated() { v[t * 3 + c] = 1 }
        let o = Outputs(values: v, rows: 1, width: v.count, sampleShape: [steps.count, 3])
        let scorer = CTCScorer(.ctcExact)
        XCTAssertEqual(scorer.decode(o, 0, layout: try ClassLayout([steps.count, 3], classAxis: -1, output: "y")), [1, 1, 2])
        let data = try dataset(labels: Tensor(shape: [1, 4], ints: [1, 1, 2, -100]))
        XCTAssertEqual(try scorer.score(o, reference: nil, data: data, range: 0..<1), .perSample([100]))
        let wrong = try dataset(labels: Tensor(shape: [1, 4], ints: [1, 2, -100, -100]))
        XCTAssertEqual(try scorer.score(o, reference: nil, data: wrong, range: 0..<1), .perSample([0]))
    }
}
