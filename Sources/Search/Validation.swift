import Foundation
import Kernels
import ONNX

/// Which number decides whether a map meets its budget on the holdout split.
public enum BudgetCriterion: String, Codable, CaseIterable, Sendable {
    /// The measured drop: `drop <= budget`.
    case point
    /// The upper bound of the drop's bootstrap interval: `ci[1] <= budget` (`--confidence`).
    case upper
}

/// One precision map scored on the holdout split against FP32 and all-INT8, in points
/// rounded to 4 decimals so that the JSON is byte-stable (docs/validation.md).
public struct ValidationResult: Codable, Equatable, Sendable {
    public var fp32: Double
    public var int8All: Double
    public var mixed: Double
    /// `fp32 - mixed`.
    public var drop: Double
    /// Paired bootstrap interval of the drop, `[low, high]`; `[drop, drop]` when the metric
    /// has none (`ciNote` says why).
    public var ci: [Double]
    /// Why there is no interval (a split-level score from `--metric-command`); nil when there is one.
    public var ciNote: String?
    public var confidence: Double
    /// Exact McNemar p-value of FP32 against the map; nil for non-binary metrics (cosine).
    public var mcnemarP: Double?
    public var budget: Double
    /// `drop <= budget`.
    public var budgetMetPoint: Bool
    /// `ci[1] <= budget`.
    public var budgetMetUpper: Bool
    public var samples: Int
    /// Seed of the bootstrap.
    public var seed: UInt64
    /// Bootstrap replicates.
    public var resamples: Int

    public func met(_ criterion: BudgetCriterion) -> Bool {
        criterion == .point ? budgetMetPoint : budgetMetUpper
    }
}

public enum HoldoutError: Error, CustomStringConvertible, Equatable {
    case emptyHoldout(path: String)
    case badConfidence(Double)

    public var description: String {
        switch self {
        case .emptyHoldout(let p): return "holdout split \(p) has no samples"
        case .badConfidence(let c): return "confidence must lie strictly between 0 and 1, got \(c)"
        }
    }
}

/// Scores precision maps on the holdout split with the real INT8 kernels.
///
/// FP32 and all-INT8 holdout outputs are computed on first use and kept, so validating
/// every map of a budget sweep runs each of them once. The bootstrap uses a fresh
/// `SeededRandom(seed:)` per map, so a map's result does not depend on what was
/// validated before it.
public final class HoldoutValidator {
    public let runtime: MixedPrecisionRuntime
    public let holdout: Dataset
    /// The metric (Scorer.swift).
    public let scorer: Scorer
    public let batchSize: Int
    public let outputName: String?
    /// Applied to every batch's output before scoring (pooling token embeddings).
    public let transform: OutputTransform
    public let resamples: Int
    public let seed: UInt64
    /// Full passes over the holdout split so far (FP32, all-INT8 and candidates), for reporting.
    public private(set) var passes = 0

    private var fp32Cache: Outputs?
    private var int8Cache: Outputs?

    /// A built-in metric with its detection options.
    public convenience init(runtime: MixedPrecisionRuntime, holdout: Dataset, metric: Metric, batchSize: Int = 64,
                            outputName: String? = nil, resamples: Int = 2000, seed: UInt64 = 0,
                            transform: OutputTransform = .identity, detection: DetectionOptions = DetectionOptions()) throws {
        try self.init(runtime: runtime, holdout: holdout, scorer: metric.scorer(ScorerOptions(detection: detection)),
                      batchSize: batchSize, outputName: outputName, resamples: resamples, seed: seed, transform: transform)
    }

    public init(runtime: MixedPrecisionRuntime, holdout: Dataset, scorer: Scorer, batchSize: Int = 64,
                outputName: String? = nil, resamples: Int = 2000, seed: UInt64 = 0,
                transform: OutputTransform = .identity) throws {
        try scorer.validate(holdout)
        guard holdout.count > 0 else { throw HoldoutError.emptyHoldout(path: holdout.path) }
        self.runtime = runtime
        self.holdout = holdout
        self.scorer = scorer
        self.batchSize = max(1, batchSize)
        self.outputName = outputName
        try transform.check(holdout)
        self.transform = transform
        self.resamples = max(1, resamples)
        self.seed = seed
    }

    /// FP32 outputs on the holdout split (computed once).
    public func fp32Outputs() throws -> Outputs {
        if let o = fp32Cache { return o }
        let o = try run(runtime.allFP32)
        try scorer.check(o, data: holdout, output: outputName ?? runtime.session.graph.outputs[0].name)
        fp32Cache = o
        return o
    }

    /// All-INT8 outputs on the holdout split (computed once).
    public func int8Outputs() throws -> Outputs {
        if let o = int8Cache { return o }
        let o = try run(runtime.allInt8)
        int8Cache = o
        return o
    }

    /// Scores `map` against FP32; `budget` is in points, `confidence` the bootstrap interval's level.
    public func validate(_ map: PrecisionMap, budget: Double, confidence: Double = 0.95) throws -> ValidationResult {
        guard confidence > 0 && confidence < 1 else { throw HoldoutError.badConfidence(confidence) }
        let fp32 = try fp32Outputs()
        let int8 = try int8Outputs()
        let int8Set = Set(map.int8Layers)
        let mixed: Outputs
        if int8Set.isEmpty {
            mixed = fp32
        } else if int8Set == Set(runtime.layerNames) {
            mixed = int8
        } else {
            mixed = try run(map)
        }

        let all = 0..<holdout.count
        let ref = try scores(fp32, fp32, all), int8Scores = try scores(int8, fp32, all), mixedScores = try scores(mixed, fp32, all)
        let fp32Score = ref.score, mixedScore = mixedScores.score, int8Score = int8Scores.score
        var ci: ConfidenceInterval?
        var p: Double?
        if let refPoints = ref.points, let mixedPoints = mixedScores.points {
            ci = Statistics.pairedBootstrapCI(reference: refPoints, candidate: mixedPoints, resamples: resamples,
                                              confidence: confidence, seed: seed)
            if scorer.hasBinarySamples(fp32) {
                p = Statistics.mcnemar(reference: refPoints.map { $0 > 0 }, candidate: mixedPoints.map { $0 > 0 }).p
            }
        } else {
            // Split-level score (mAP): the scorer bootstraps itself, or has no interval.
            ci = try scorer.splitBootstrapCI(reference: fp32, candidate: mixed, data: holdout, resamples: resamples,
                                             confidence: confidence, seed: seed)
        }

        let drop = Self.round4(fp32Score - mixedScore)
        let lo = ci.map { Self.round4($0.low) } ?? drop, hi = ci.map { Self.round4($0.high) } ?? drop
        let b = Self.round4(budget)
        return ValidationResult(fp32: Self.round4(fp32Score), int8All: Self.round4(int8Score),
                                mixed: Self.round4(mixedScore), drop: drop, ci: [lo, hi],
                                ciNote: ci == nil ? "metric '\(scorer.name)' gives one score per split: no confidence interval" : nil,
                                confidence: confidence, mcnemarP: p.map { Self.significant4($0) }, budget: b,
                                budgetMetPoint: drop <= b, budgetMetUpper: hi <= b,
                                samples: holdout.count, seed: seed, resamples: resamples)
    }

    private func scores(_ outputs: Outputs, _ reference: Outputs, _ range: Range<Int>) throws -> SplitScores {
        try scorer.score(outputs, reference: reference, data: holdout, range: range)
    }

    /// Rounds to 4 decimals; -0 becomes 0 so the JSON never says "-0".
    static func round4(_ x: Double) -> Double {
        let r = (x * 10_000).rounded() / 10_000
        return r == 0 ? 0 : r
    }

    /// Rounds to 4 significant digits (p-values can be far below 1e-4).
    static func significant4(_ x: Double) -> Double {
        x == 0 ? 0 : Double(String(format: "%.4g", x))!
    }

    /// One pass over the holdout split with `map`, leaving the runtime's map as it was.
    private func run(_ map: PrecisionMap) throws -> Outputs {
        let saved = runtime.map
        try runtime.apply(map)
        defer { try? runtime.apply(saved) }
        passes += 1
        return try Evaluator(session: runtime.session, dataset: holdout, batchSize: batchSize, outputName: outputName,
                           transform: transform, scorer: scorer).run()
    }
}
