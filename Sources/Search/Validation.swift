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
/// FP32 and all-INT8 holdout passes are computed on first use and kept (their rows on
/// disk, their per-sample points in memory), so validating every map of a budget sweep
/// runs each of them once. The bootstrap uses a fresh
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

    /// The FP32 and all-INT8 passes, kept on disk (RowSpool) with their per-sample points.
    private var fp32Pass: HoldoutPass?
    private var int8Pass: HoldoutPass?
    /// The most output bytes held in memory at once so far (HoldoutPass): a batch or two for
    /// per-sample metrics, the split's kept rows for split-level ones. Tests check it stays bounded.
    public private(set) var peakRetainedOutputBytes = 0

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

    /// FP32 outputs on the holdout split (computed once, read back whole: for tests and small sets).
    public func fp32Outputs() throws -> Outputs { try fp32Run().rows.all() }

    /// All-INT8 outputs on the holdout split (computed once, read back whole: for tests and small sets).
    public func int8Outputs() throws -> Outputs { try int8Run().rows.all() }

    func fp32Run() throws -> HoldoutPass {
        if let p = fp32Pass { return p }
        let p = try run(runtime.allFP32, reference: nil, keepRows: true)
        fp32Pass = p
        return p
    }

    func int8Run() throws -> HoldoutPass {
        if let p = int8Pass { return p }
        let p = try run(runtime.allInt8, reference: try fp32Run().rows, keepRows: true)
        int8Pass = p
        return p
    }

    /// Scores `map` against FP32; `budget` is in points, `confidence` the bootstrap interval's level.
    public func validate(_ map: PrecisionMap, budget: Double, confidence: Double = 0.95) throws -> ValidationResult {
        guard confidence > 0 && confidence < 1 else { throw HoldoutError.badConfidence(confidence) }
        let fp32Pass = try fp32Run()
        let int8Pass = try int8Run()
        let int8Set = Set(map.int8Layers)
        let mixedPass: HoldoutPass
        if int8Set.isEmpty {
            mixedPass = fp32Pass
        } else if int8Set == Set(runtime.layerNames) {
            mixedPass = int8Pass
        } else {
            // A per-sample metric keeps the map's points only; a split-level one its rows.
            mixedPass = try run(map, reference: fp32Pass.rows, keepRows: !scorer.scoresBatchwise)
        }
        let ref: SplitScores, int8Scores: SplitScores, mixedScores: SplitScores
        var fp32 = fp32Pass.sample, mixed = fp32Pass.sample
        if let r = fp32Pass.points, let i = int8Pass.points, let m = mixedPass.points {
            ref = .perSample(r); int8Scores = .perSample(i); mixedScores = .perSample(m)
        } else {
            // Split-level metrics score the whole split from the kept rows (read back, or streamed).
            let all = 0..<holdout.count, r = fp32Pass.rows
            ref = try scorer.score(spooled: r, reference: r, data: holdout, range: all)
            int8Scores = try scorer.score(spooled: int8Pass.rows, reference: r, data: holdout, range: all)
            mixedScores = try scorer.score(spooled: mixedPass.rows, reference: r, data: holdout, range: all)
            if ref.points == nil || mixedScores.points == nil, !scorer.scoresFromDisk {
                // The scorer's own bootstrap (mAP) resamples the rows.
                fp32 = try r.all(); mixed = try mixedPass.rows.all()
            }
            if !scorer.scoresFromDisk {
                peakRetainedOutputBytes = max(peakRetainedOutputBytes, r.bytes + mixedPass.rows.bytes + int8Pass.rows.bytes)
            }
        }
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

    /// Rounds to 4 decimals; -0 becomes 0 so the JSON never says "-0".
    static func round4(_ x: Double) -> Double {
        let r = (x * 10_000).rounded() / 10_000
        return r == 0 ? 0 : r
    }

    /// Rounds to 4 significant digits (p-values can be far below 1e-4).
    static func significant4(_ x: Double) -> Double {
        x == 0 ? 0 : Double(String(format: "%.4g", x))!
    }

    /// One pass over the holdout split with `map`, leaving the runtime's map as it was: a
    /// per-sample metric scores each batch against the same rows of `reference` (nil: the
    /// pass is FP32, its own reference) and keeps the points; the rows go to disk when
    /// `keepRows`. Memory holds one batch of outputs and its reference rows.
    private func run(_ map: PrecisionMap, reference: RowSpool?, keepRows: Bool) throws -> HoldoutPass {
        let saved = runtime.map
        try runtime.apply(map)
        defer { try? runtime.apply(saved) }
        passes += 1
        let evaluator = try Evaluator(session: runtime.session, dataset: holdout, batchSize: batchSize, outputName: outputName,
                                      transform: transform, scorer: scorer)
        var spool: RowSpool?
        var sample: Outputs?
        var points: [Double] = []
        try evaluator.forEachBatch { range, batch in
            if sample == nil {
                if reference == nil { try scorer.check(batch, data: holdout, output: evaluator.outputName) }
                sample = batch
                spool = try RowSpool(width: batch.width, sampleShape: batch.sampleShape)
            }
            if keepRows { try spool!.append(batch.values) }
            var held = batch.values.count
            if scorer.scoresBatchwise {
                let ref = try reference?.outputs(range) ?? batch
                if reference != nil { held += ref.values.count }
                points += try scorer.score(batch, reference: ref, data: holdout, range: range).points ?? []
            }
            peakRetainedOutputBytes = max(peakRetainedOutputBytes, held * MemoryLayout<Float>.size)
        }
        let rows = try spool ?? RowSpool(width: 0, sampleShape: [0])
        return HoldoutPass(rows: rows, sample: sample ?? Outputs(values: [], rows: 0, width: 0),
                           points: scorer.scoresBatchwise ? points : nil)
    }
}

/// One pass over the holdout split as the validator keeps it.
struct HoldoutPass {
    /// The kept rows, on disk (empty for a candidate map scored per sample).
    let rows: RowSpool
    /// The first batch's rows: what shape checks and `hasBinarySamples` look at.
    let sample: Outputs
    /// Per-sample points of a per-sample metric, against FP32; nil for a split-level one.
    let points: [Double]?
}
