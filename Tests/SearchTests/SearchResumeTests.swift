import Foundation
import XCTest
import Kernels
import ONNX
@testable import Search

/// Resume (docs/search.md, "Resuming"): a search interrupted after any number of evaluations
/// and rerun with the same state writes the same bytes as an uninterrupted one, counters
/// included, and replays what it saved instead of recomputing it.
final class SearchResumeTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures").path

    struct Interrupted: Error {}

    struct Run {
        let document: Data
        let evaluations: Int
        let store: EvaluationStore?
    }

    static func key(seed: UInt64 = 7, evaluator: CandidateEvaluator) throws -> SearchStateKey {
        try SearchStateKey(evaluator: evaluator, data: "breast_cancer_raw_mlp fixture splits", seed: seed, mpqVersion: "test")
    }

    /// The whole pipeline on the degrading MLP: sensitivity, greedy + GA, holdout, document.
    /// With `state`, evaluations are replayed from and saved to it; `interruptAfter` throws
    /// after that many newly computed evaluations, as a kill would stop the process.
    static func search(state: String? = nil, interruptAfter: Int? = nil) throws -> Run {
        let f = fixtures
        let graph = try ModelLoader.load(path: "\(f)/breast_cancer_raw_mlp.onnx")
        let session = try Session(graph: GraphPasses.optimize(graph))
        let calib = try Dataset(path: "\(f)/breast_cancer_raw_mlp_calib.npz", graph: graph)
        let searchSplit = try Dataset(path: "\(f)/breast_cancer_raw_mlp_search.npz", graph: graph)
        let holdout = try Dataset(path: "\(f)/breast_cancer_raw_mlp_holdout.npz", graph: graph)
        let table = try Calibrator(session: session, scheme: .inputs)
            .calibrate(dataset: calib, options: CalibrationOptions(method: .minmax), modelDigest: graph.digest)
        let runtime = try MixedPrecisionRuntime(session: session, calibration: table, scheme: .inputs)
        // Small batches: several early-rejection points per candidate.
        let evaluator = try CandidateEvaluator(runtime: runtime, data: searchSplit, metric: .top1, batchSize: 16)
        evaluator.minSamplesBeforeRejection = 16
        if let state {
            let store = try EvaluationStore(path: state, key: try key(evaluator: evaluator))
            store.saveInterval = 0
            if let n = interruptAfter { store.afterRecord = { if $0 >= n { throw Interrupted() } } }
            evaluator.store = store
        }
        let sensitivity = try SensitivityAnalyzer(evaluator: evaluator).run()
        let layers = try LayerTable.build(runtime: runtime, sample: calib.batch(0..<8), measureLatency: false)
        let validator = try HoldoutValidator(runtime: runtime, holdout: holdout, metric: .top1, resamples: 200, seed: 7)
        let runner = SearchRunner(evaluator: evaluator, sensitivity: sensitivity, layers: layers, validator: validator)
        let plan = SearchPlan(budget: Budget(value: 2, type: .relative), strategy: .both,
                              evolutionary: EvolutionaryOptions(populationSize: 10, generations: 6, seed: 7))
        let outcome = try runner.run(plan)
        let doc = runner.document(outcome, plan: plan, modelPath: "m.onnx", modelSHA256: "-", dataDescription: "fixture",
                                  seed: 7, version: "test", wallSeconds: nil)
        try evaluator.store?.save()
        return Run(document: try doc.jsonData(), evaluations: evaluator.evaluations, store: evaluator.store)
    }

    func testInterruptedSearchResumesToTheSameBytes() throws {
        let fresh = try Self.search()
        let total = fresh.evaluations
        XCTAssertGreaterThan(total, 10, "the search must have something to replay")
        let dir = try temporaryDirectory()

        // A state changes nothing in an uninterrupted run, and records every computed evaluation.
        let recorded = try Self.search(state: "\(dir)/full.json")
        XCTAssertEqual(recorded.document, fresh.document)
        XCTAssertEqual(recorded.store?.recorded, total)
        XCTAssertEqual(recorded.store?.count, total)
        // Rerun on a complete state: nothing computed but the all-INT8 map that builds the caches.
        let replay = try Self.search(state: "\(dir)/full.json")
        XCTAssertEqual(replay.document, fresh.document, "replayed counters must equal computed ones")
        XCTAssertLessThanOrEqual(replay.store!.recorded, 1)
        XCTAssertEqual(replay.store!.replayed + replay.store!.recorded, total)

        for k in [1, 2, 5, total / 2, total - 1] {
            let path = "\(dir)/state-\(k).json"
            XCTAssertThrowsError(try Self.search(state: path, interruptAfter: k), "k=\(k)") { XCTAssertTrue($0 is Interrupted) }
            let resumed = try Self.search(state: path)
            XCTAssertEqual(resumed.document, fresh.document, "interrupted after \(k) evaluations, the resumed map differs:\n"
                           + String(decoding: resumed.document, as: UTF8.self))
            XCTAssertEqual(resumed.evaluations, total, "k=\(k)")
            XCTAssertEqual(resumed.store!.replayed + resumed.store!.recorded, total, "k=\(k)")
            XCTAssertGreaterThanOrEqual(resumed.store!.replayed, k - 1, "k=\(k): what was saved must be replayed")
        }
    }

    func testStateFromOtherInputsIsRefusedNamingTheField() throws {
        let path = "\(try temporaryDirectory())/state.json"
        let key = SearchStateKey(mpqVersion: "test", model: "m", data: "d", calibration: "c", scheme: "inputs", metric: "top1",
                                 seed: 7, kernelPath: "avx2", evaluator: "batch 16")
        let store = try EvaluationStore(path: path, key: key)
        try store.record(["a"], rejectAbove: 0.5, evaluation: Evaluation(score: 1, drop: 0.25, samples: 3, complete: true), cost: 0.125)
        try store.save()
        XCTAssertEqual(try EvaluationStore(path: path, key: key).count, 1)
        var other = key
        other.seed = 8
        other.scheme = "ort"
        XCTAssertThrowsError(try EvaluationStore(path: path, key: other)) { error in
            guard case SearchStateError.mismatch(_, let fields) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(fields, ["scheme", "seed"])
        }
        try Data("{}".utf8).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try EvaluationStore(path: path, key: key)) { XCTAssertTrue("\($0)".contains("not a search state"), "\($0)") }
    }

    func temporaryDirectory() throws -> String {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("mpq-resume-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url.path
    }
}
