import Foundation
import XCTest
import Kernels
import ONNX
@testable import Search

/// The activation cache is an optimisation only (docs/caching.md): a frontier cache and a disk
/// spill give the same sensitivity and candidate numbers, bit for bit,
/// as caching every activation; only the cost and the hit rate differ.
final class ActivationCacheTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures").path

    struct Setup { let runtime: MixedPrecisionRuntime; let search: Dataset }

    static func setup(scheme: ExecutionScheme) throws -> Setup {
        let f = fixtures
        let graph = try ModelLoader.load(path: "\(f)/digits_cnn.onnx")
        let session = try Session(graph: GraphPasses.optimize(graph))
        let calib = try Dataset(path: "\(f)/digits_calib.npz", graph: graph)
        // 80 samples, 3 batches of 32 (the last one partial): quick, and room for rejection.
        let search = try Dataset(path: "\(f)/digits_search.npz", graph: graph).subset(Array(0..<80), path: "digits_search[0:80]")
        let table = try Calibrator(session: session, scheme: scheme)
            .calibrate(dataset: calib, options: CalibrationOptions(method: .minmax), modelDigest: graph.digest)
        return Setup(runtime: try MixedPrecisionRuntime(session: session, calibration: table, scheme: scheme), search: search)
    }

    /// Sensitivity plus a few mixed maps, one of them rejected early.
    static func measure(_ s: Setup, cache: ActivationCacheOptions) throws -> (SensitivityReport, [Evaluation], CandidateEvaluator) {
        let evaluator = try CandidateEvaluator(runtime: s.runtime, data: s.search, metric: .top1, batchSize: 32, cache: cache)
        evaluator.minSamplesBeforeRejection = 32
        var report = try SensitivityAnalyzer(evaluator: evaluator).run()
        report.fullModelEquivalents = 0   // the cost is what a smaller cache changes
        var evals: [Evaluation] = []
        let names = s.runtime.layerNames
        for k in 0..<2 {
            var map = s.runtime.allFP32
            for (i, n) in names.enumerated() where i % 3 != k { map.layers[n] = .int8 }
            // Rejected first (the memo keeps an incomplete result), then scored in full.
            evals.append(try evaluator.evaluate(map, rejectAbove: -100).0)
            evals.append(try evaluator.evaluate(map).0)
        }
        return (report, evals, evaluator)
    }

    func testSmallCachesGiveTheSameNumbersAsCachingEverything() throws {
        for scheme in [ExecutionScheme.ort] {
            let s = try Self.setup(scheme: scheme)
            let (reference, refEvals, full) = try Self.measure(s, cache: ActivationCacheOptions())
            XCTAssertEqual(full.cacheStatistics.mode, "all")
            XCTAssertEqual(full.cacheStatistics.hitRate, 1)
            // The FP32 and all-INT8 activations of every batch, all of them.
            let everything = full.cacheStatistics.memoryBytes
            let dir = try temporaryDirectory()
            let configurations: [(String, ActivationCacheOptions)] = [
                ("frontier in memory", ActivationCacheOptions(memoryLimitBytes: everything / 3)),
                ("frontier on disk", ActivationCacheOptions(memoryLimitBytes: 0, directory: dir, diskLimitBytes: everything / 3)),
            ]
            var cost: [String: Double] = [:]
            for (label, options) in configurations {
                let (report, evals, evaluator) = try Self.measure(s, cache: options)
                XCTAssertEqual(report, reference, "\(scheme) \(label): sensitivity differs")
                XCTAssertEqual(evals, refEvals, "\(scheme) \(label): candidate evaluations differ")
                let st = evaluator.cacheStatistics
                XCTAssertEqual(st.mode, "frontier", "\(scheme) \(label)")
                XCTAssertGreaterThanOrEqual(evaluator.fullModelEquivalents, full.fullModelEquivalents, "\(scheme) \(label)")
                cost[label] = evaluator.fullModelEquivalents
                switch label {
                case "frontier in memory":
                    XCTAssertEqual(st.hitRate, 1, "\(scheme) \(label): \(st.summary)")
                    XCTAssertGreaterThan(st.cuts, 0)
                case "frontier on disk":
                    XCTAssertGreaterThan(st.diskHits, 0, "\(scheme) \(label): \(st.summary)")
                    XCTAssertEqual(st.hitRate, 1, "\(scheme) \(label): \(st.summary)")
                default:
                    XCTFail(label)
                }
            }
            // Without a cache every evaluation is a full pass (CacheCLITests runs --cache-mb 0).
            XCTAssertLessThan(cost["frontier in memory"]!, Double(full.evaluations) - 1, "\(scheme): the frontier must save work over full passes")
            // The spill folder is removed with the evaluator.
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), [])
        }
    }

    func temporaryDirectory() throws -> String {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("mpq-cache-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url.path
    }
}
