import Foundation
import Kernels
import ONNX

/// How much one layer matters, measured two ways on the search split.
public struct LayerSensitivity: Codable, Equatable, Sendable {
    public var name: String
    public var op: String
    /// Only this layer INT8, everything else FP32: the harm it does alone.
    public var aloneInt8: Evaluation
    /// Everything INT8 but this layer: the harm its absence removes.
    public var allButThis: Evaluation
    /// All-INT8 drop minus `allButThis` drop: points recovered by keeping this layer FP32.
    public var recovery: Double
}

/// The analyzer's result, also its resumable state (saved after every layer).
public struct SensitivityReport: Codable, Equatable, Sendable {
    public static let schemaName = "mpq.sensitivity/1"
    public var schema = SensitivityReport.schemaName
    public var modelDigest: String
    /// The metric's name (Scorer.name).
    public var metric: String
    public var calibrationMethod: String
    public var searchSamples: Int
    public var fp32: Double
    public var allInt8: Evaluation
    public var layers: [LayerSensitivity]
    /// Work done so far, in full FP32 passes over the search split (cumulative across resumes).
    public var fullModelEquivalents: Double
    public var evaluations: Int
    public var complete: Bool
    /// What the numbers depend on (model, data, calibration, seed, scheme, metric, options):
    /// a merge or a reuse by `search --sensitivity FILE` compares it. Absent in reports of
    /// older versions and in library use without a key.
    public var key: SearchStateKey?
    /// Set in a part written with `--shard`: which layers it measured of which list.
    public var shard: ShardPart<String>?
}

extension SensitivityReport {
    /// A report with no per-layer measurements, for a search that needs none: when every
    /// layer in INT8 already meets the budget, nothing is ranked, so the analysis is skipped.
    public static func notMeasured(evaluator: CandidateEvaluator) throws -> SensitivityReport {
        let runtime = evaluator.runtime
        let (all, _) = try evaluator.evaluate(runtime.allInt8)
        return SensitivityReport(modelDigest: runtime.calibration.modelDigest, metric: evaluator.scorer.name,
                                 calibrationMethod: runtime.calibration.method, searchSamples: evaluator.data.count,
                                 fp32: evaluator.fp32Score, allInt8: all, layers: [], fullModelEquivalents: 0,
                                 evaluations: 0, complete: false)
    }
}

public enum SensitivityError: Error, CustomStringConvertible {
    case stateMismatch(path: String, reason: String)
    public var description: String {
        switch self {
        case .stateMismatch(let p, let r): return "state file \(p) belongs to another run (\(r)); delete it or use another --state"
        }
    }
}

/// Per-layer sensitivity: for each quantizable layer, the drop with only it in INT8
/// (plus output SQNR and KL) and the recovery with only it in FP32. FP32 activations
/// are cached by the evaluator, so "only this layer INT8" re-executes only what lies
/// downstream of it. With a state path, results are saved after each layer and a rerun
/// resumes where the last one stopped.
public struct SensitivityAnalyzer {
    public let evaluator: CandidateEvaluator
    public let statePath: String?
    /// Written into the report, and a saved state with another key is refused.
    public let key: SearchStateKey?
    /// Measure only this shard's layers (layer index modulo the shard count).
    public let shard: Shard?

    public init(evaluator: CandidateEvaluator, statePath: String? = nil, key: SearchStateKey? = nil, shard: Shard? = nil) {
        self.evaluator = evaluator; self.statePath = statePath; self.key = key; self.shard = shard
    }

    public func run(progress: ((Int, Int, String) -> Void)? = nil) throws -> SensitivityReport {
        let runtime = evaluator.runtime
        let allNames = runtime.layerNames
        let names = shard.map { $0.share(of: allNames) } ?? allNames
        let part = shard.map { ShardPart(shard: $0, items: allNames) }
        let digest = runtime.calibration.modelDigest
        var report: SensitivityReport
        let startWork = evaluator.fullModelEquivalents, startEvals = evaluator.evaluations
        var priorWork = 0.0, priorEvals = 0
        if let statePath, FileKind(path: statePath) != .missing {
            try FileKind.requireRegularFile(statePath, expected: "a sensitivity state file")
        }
        if let statePath, let data = FileManager.default.contents(atPath: statePath) {
            guard let saved = Self.decodeState(data) else {
                throw SensitivityError.stateMismatch(path: statePath, reason: "unreadable")
            }
            guard saved.modelDigest == digest, saved.metric == evaluator.scorer.name, saved.searchSamples == evaluator.data.count,
                  saved.calibrationMethod == runtime.calibration.method, saved.key == key || saved.key == nil || key == nil,
                  saved.shard == part else {
                throw SensitivityError.stateMismatch(path: statePath, reason: "model, metric, calibration, search data or shard differ")
            }
            report = saved
            report.key = key ?? saved.key
            priorWork = saved.fullModelEquivalents; priorEvals = saved.evaluations
        } else {
            let (all, _) = try evaluator.evaluate(runtime.allInt8)
            report = SensitivityReport(modelDigest: digest, metric: evaluator.scorer.name, calibrationMethod: runtime.calibration.method,
                                       searchSamples: evaluator.data.count, fp32: evaluator.fp32Score, allInt8: all, layers: [],
                                       fullModelEquivalents: 0, evaluations: 0, complete: false, key: key, shard: part)
        }
        let done = Set(report.layers.map(\.name))
        let ops = Dictionary(uniqueKeysWithValues: runtime.session.plan.map { ($0.name, $0.opType) })
        for (i, name) in names.enumerated() where !done.contains(name) {
            progress?(i, names.count, name)
            var alone = runtime.allFP32
            alone.layers[name] = .int8
            let (a, _) = try evaluator.evaluate(alone)
            var allBut = runtime.allInt8
            allBut.layers[name] = .fp32
            let (b, _) = try evaluator.evaluate(allBut)
            report.layers.append(LayerSensitivity(name: name, op: ops[name] ?? "?", aloneInt8: a, allButThis: b,
                                                  recovery: report.allInt8.drop - b.drop))
            report.fullModelEquivalents = priorWork + evaluator.fullModelEquivalents - startWork
            report.evaluations = priorEvals + evaluator.evaluations - startEvals
            try save(report)
        }
        // Layer order follows the model, whatever order a resumed run finished them in.
        let order = Dictionary(uniqueKeysWithValues: names.enumerated().map { ($0.element, $0.offset) })
        report.layers.sort { order[$0.name, default: 0] < order[$1.name, default: 0] }
        report.complete = true
        report.fullModelEquivalents = priorWork + evaluator.fullModelEquivalents - startWork
        report.evaluations = priorEvals + evaluator.evaluations - startEvals
        try save(report)
        progress?(names.count, names.count, "")
        return report
    }

    private func save(_ report: SensitivityReport) throws {
        guard let statePath else { return }
        try OutputFile.write(try deterministicJSONEncoder(snakeCase: true).encode(report), to: statePath)
    }

    /// The state file: snake_case like `mpq sensitivity --out/--json` (so a report can seed
    /// a state), or the camelCase keys of files written before.
    public static func decodeState(_ data: Data) -> SensitivityReport? {
        let snake = JSONDecoder()
        snake.keyDecodingStrategy = .convertFromSnakeCase
        return (try? snake.decode(SensitivityReport.self, from: data)) ?? (try? JSONDecoder().decode(SensitivityReport.self, from: data))
    }
}
