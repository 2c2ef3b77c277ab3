import Foundation
import XCTest
import Kernels
import ONNX
@testable import Search

/// Evaluations keep per-sample scores, not outputs (docs/scale.md, "Outputs"): the FP32
/// reference waits on disk and comes back a batch at a time. The numbers must be the ones
/// the whole-split computation gives, to the bit, and the outputs held at once must stay
/// within a batch or two.
final class BoundedOutputsTests: XCTestCase {
    static let batch = 8

    /// The digits CNN with minmax calibration (ValidationTests.digits), the first 96 rows of
    /// its search split and of its holdout split (small: the tests run in debug builds).
    static func digits() throws -> (MixedPrecisionRuntime, Dataset, Dataset) { try loaded.get() }
    /// Calibrated once for every test here.
    static let loaded = Result { () throws -> (MixedPrecisionRuntime, Dataset, Dataset) in
        let (runtime, holdout) = try ValidationTests.digits()
        let search = try Dataset(path: "\(ValidationTests.fixtures)/digits_search.npz", graph: runtime.session.graph)
        return (runtime, search.subset(Array(0..<96), path: search.path), holdout.subset(Array(0..<96), path: holdout.path))
    }

    /// Every sample's kept values under `map`, held whole: the computation bounded memory replaced.
    static func whole(_ runtime: MixedPrecisionRuntime, _ map: PrecisionMap, _ data: Dataset, _ scorer: Scorer) throws -> Outputs {
        let saved = runtime.map
        try runtime.apply(map)
        defer { try? runtime.apply(saved) }
        return try Evaluator(session: runtime.session, dataset: data, batchSize: batch, scorer: scorer).run()
    }

    /// The whole-split SQNR and KL as they were computed before: one loop over every value, one over every row.
    static func wholeSQNRAndKL(_ r: Outputs, _ c: Outputs) -> (Double, Double) {
        var signal = 0.0, noise = 0.0
        for (a, b) in zip(r.values, c.values) { signal += Double(a) * Double(a); noise += Double(a - b) * Double(a - b) }
        func softmax(_ v: ArraySlice<Float>) -> [Double] {
            let m = Double(v.max() ?? 0)
            let e = v.map { exp(Double($0) - m) }
            let s = e.reduce(0, +)
            return e.map { $0 / s }
        }
        var total = 0.0
        for i in 0..<r.rows {
            for (a, b) in zip(softmax(r.row(i)), softmax(c.row(i))) where a > 0 { total += a * log(a / max(b, 1e-300)) }
        }
        return (noise == 0 ? 200 : 10 * log10(max(signal, 1e-30) / noise), total / Double(r.rows))
    }

    func maps(_ runtime: MixedPrecisionRuntime) -> [PrecisionMap] {
        let names = runtime.layerNames
        let half = PrecisionMap(layers: Dictionary(uniqueKeysWithValues: names.enumerated().map { ($0.element, $0.offset % 2 == 0 ? Precision.int8 : .fp32) }))
        return [runtime.allInt8, half]
    }

    func testCandidateScoresEqualTheWholeSplitComputation() throws {
        let (runtime, search, _) = try Self.digits()
        for metric in [Metric.top1, .cosine] {
            let scorer = metric.scorer()
            let e = try CandidateEvaluator(runtime: runtime, data: search, scorer: scorer, batchSize: Self.batch)
            // e.data is the split in its visiting order.
            let fp32 = try Self.whole(runtime, runtime.allFP32, e.data, scorer)
            XCTAssertEqual(try e.fp32Outputs, fp32, "\(metric): the spooled reference reads back bit for bit")
            let fp32Points = try XCTUnwrap(scorer.score(fp32, reference: fp32, data: e.data, range: 0..<e.data.count).points)
            XCTAssertEqual(e.fp32Points, fp32Points, "\(metric)")
            XCTAssertEqual(e.fp32Score, Statistics.mean(fp32Points), "\(metric)")
            for map in maps(runtime) {
                let (eval, _) = try e.evaluate(map)
                let cand = try Self.whole(runtime, map, e.data, scorer)
                let points = try XCTUnwrap(scorer.score(cand, reference: fp32, data: e.data, range: 0..<e.data.count).points)
                let score = points.reduce(0, +) / Double(points.count)
                XCTAssertEqual(eval.score, score, "\(metric)")
                XCTAssertEqual(eval.drop, fp32Points.reduce(0, +) / Double(points.count) - score, "\(metric)")
                let (sqnr, kl) = Self.wholeSQNRAndKL(fp32, cand)
                XCTAssertEqual(eval.sqnr, sqnr, "\(metric): same additions in the same order")
                XCTAssertEqual(eval.kl, kl, "\(metric)")
                XCTAssertLessThan(sqnr, 200, "the map changes the outputs, so the test sees the sums")
            }
        }
    }

    func testOutputsHeldAtOnceStayWithinTwoBatches() throws {
        let (runtime, search, holdout) = try Self.digits()
        let e = try CandidateEvaluator(runtime: runtime, data: search, metric: .agreement, batchSize: Self.batch)
        let width = e.fp32Sample.width
        XCTAssertEqual(width, 10)
        let twoBatches = 2 * Self.batch * width * MemoryLayout<Float>.size
        let whole = search.count * width * MemoryLayout<Float>.size
        XCTAssertGreaterThan(whole, 4 * twoBatches, "the split is much larger than two batches")
        for map in maps(runtime) { _ = try e.evaluate(map) }
        XCTAssertGreaterThan(e.peakRetainedOutputBytes, 0)
        XCTAssertLessThanOrEqual(e.peakRetainedOutputBytes, twoBatches, "a candidate keeps points, not outputs")
        // Asking for the outputs keeps them all, and the accounting sees it.
        _ = try e.evaluate(maps(runtime)[1], keepOutputs: true)
        XCTAssertGreaterThanOrEqual(e.peakRetainedOutputBytes, whole)

        let v = try HoldoutValidator(runtime: runtime, holdout: holdout, metric: .agreement, batchSize: Self.batch, resamples: 50)
        for map in maps(runtime) { _ = try v.validate(map, budget: 1) }
        XCTAssertGreaterThan(v.peakRetainedOutputBytes, 0)
        XCTAssertLessThanOrEqual(v.peakRetainedOutputBytes, twoBatches)
        XCTAssertGreaterThan(holdout.count * width * MemoryLayout<Float>.size, 4 * twoBatches)
    }

    func testHoldoutResultEqualsTheWholeSplitComputation() throws {
        let (runtime, _, holdout) = try Self.digits()
        for metric in [Metric.agreement, .cosine] {
            let scorer = metric.scorer()
            let v = try HoldoutValidator(runtime: runtime, holdout: holdout, scorer: scorer, batchSize: Self.batch, resamples: 200, seed: 4)
            let fp32 = try Self.whole(runtime, runtime.allFP32, holdout, scorer)
            let all = 0..<holdout.count
            let ref = try XCTUnwrap(scorer.score(fp32, reference: fp32, data: holdout, range: all).points)
            let int8 = try Self.whole(runtime, runtime.allInt8, holdout, scorer)
            XCTAssertEqual(try v.int8Outputs(), int8)
            for map in maps(runtime) {
                let r = try v.validate(map, budget: 1)
                let cand = try Self.whole(runtime, map, holdout, scorer)
                let points = try XCTUnwrap(scorer.score(cand, reference: fp32, data: holdout, range: all).points)
                XCTAssertEqual(r.fp32, HoldoutValidator.round4(Statistics.mean(ref)))
                XCTAssertEqual(r.mixed, HoldoutValidator.round4(Statistics.mean(points)))
                let ci = Statistics.pairedBootstrapCI(reference: ref, candidate: points, resamples: 200, confidence: 0.95, seed: 4)
                XCTAssertEqual(r.ci, [HoldoutValidator.round4(ci.low), HoldoutValidator.round4(ci.high)])
            }
        }
    }

    func testSpoolReadsBackWhatWasWrittenAndLeavesNoFile() throws {
        let before = Set(try FileManager.default.contentsOfDirectory(atPath: NSTemporaryDirectory()).filter { $0.hasPrefix("mpq-rows-") })
        let spool = try RowSpool(width: 3, sampleShape: [3])
        try spool.append([1, 2, 3, 4, 5, 6])
        try spool.append([7, 8, 9])
        XCTAssertEqual(spool.rows, 3)
        XCTAssertEqual(try spool.values(1..<3), [4, 5, 6, 7, 8, 9])
        XCTAssertEqual(try spool.all(), Outputs(values: (1...9).map(Float.init), rows: 3, width: 3))
        XCTAssertEqual(try spool.bytes(at: 4, count: 8), Data([2, 3].flatMap { (f: Float) -> [UInt8] in
            withUnsafeBytes(of: f.bitPattern.littleEndian, Array.init) }))
        let after = Set(try FileManager.default.contentsOfDirectory(atPath: NSTemporaryDirectory()).filter { $0.hasPrefix("mpq-rows-") })
        XCTAssertEqual(after, before, "the spool's file is unlinked as soon as it is open")
    }
}
