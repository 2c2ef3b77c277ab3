import Foundation
import Kernels
import ONNX

/// Whether the per-layer sensitivity analysis runs before a search.
public enum SensitivityMode: String, CaseIterable, Codable, Sendable {
    /// Skipped when all-INT8 already meets the smallest budget on the search split: greedy
    /// then keeps every layer INT8 and nothing needs ranking.
    case auto
    case always
}

/// How a pipeline is assembled: the search options of the command line, as values.
public struct PipelineOptions: Sendable {
    public var calibrationMethod: CalibrationMethod
    public var batchSize: Int
    public var kernelPath: KernelPath
    public var scheme: ExecutionScheme
    /// The range INT8 weights are quantized to (8: [-127, 127]; 7: [-64, 64]).
    public var weightBits: WeightBits
    /// Memory cap for the search split's cached activations (beyond it, a frontier of them:
    /// docs/caching.md).
    public var cacheLimitBytes: Int
    /// Folder for a disk spill of the activation cache (a temporary subfolder, removed when
    /// the evaluator goes); nil keeps the cache in memory only.
    public var cacheDirectory: String?
    /// Size cap of the disk spill under `cacheDirectory`.
    public var cacheDiskLimitBytes: Int
    /// Applied to every batch's output before scoring (pooling token embeddings).
    public var transform: OutputTransform
    /// Measure each layer's latency (the `latency` objective).
    public var measureLatency: Bool
    /// Seed of the search split's visiting order (per-sample metrics, early rejection); nil
    /// keeps the file's order (CandidateEvaluator.visitSeed).
    public var visitSeed: UInt64?

    public init(calibrationMethod: CalibrationMethod = .minmax, batchSize: Int = 64, kernelPath: KernelPath = .auto,
                scheme: ExecutionScheme = .ort, cacheLimitBytes: Int = 2 << 30, cacheDirectory: String? = nil,
                cacheDiskLimitBytes: Int = 8 << 30, transform: OutputTransform = .identity,
                measureLatency: Bool = false, visitSeed: UInt64? = 0, weightBits: WeightBits = .eight) {
        self.calibrationMethod = calibrationMethod; self.batchSize = max(1, batchSize); self.kernelPath = kernelPath
        self.scheme = scheme; self.cacheLimitBytes = cacheLimitBytes; self.cacheDirectory = cacheDirectory
        self.cacheDiskLimitBytes = cacheDiskLimitBytes; self.transform = transform; self.measureLatency = measureLatency
        self.visitSeed = visitSeed; self.weightBits = weightBits
    }

    /// The evaluator's activation cache settings.
    public var cache: ActivationCacheOptions {
        ActivationCacheOptions(memoryLimitBytes: cacheLimitBytes, directory: cacheDirectory, diskLimitBytes: cacheDiskLimitBytes)
    }
}

public enum PipelineError: Error, CustomStringConvertible, Equatable {
    case noQuantizableLayer(model: String)
    public var description: String {
        switch self {
        case .noQuantizableLayer(let m): return "\(m) has no layer that can run in INT8"
        }
    }
}

/// Everything a search needs, assembled once from a model, its splits and a metric:
/// calibration, the mixed-precision runtime, the search-split evaluator (FP32 reference
/// and caches) and the layer table. The library's one entry point: the command line only
/// parses flags, loads files and prints.
///
///     let pipeline = try SearchPipeline(session: session, modelDigest: graph.digest, modelName: "model.onnx",
///                                       splits: splits, scorer: Metric.top1.scorer())
///     let runner = try pipeline.runner(sensitivity: pipeline.sensitivity(mode: .auto, smallestBudget: budget),
///                                      validator: pipeline.validator(seed: 0))
///     let outcome = try runner.run(SearchPlan(budget: budget))
public final class SearchPipeline {
    public let session: Session
    public let modelDigest: String
    public let splits: DataSplits
    public let scorer: Scorer
    public let options: PipelineOptions
    public let table: CalibrationTable
    public let runtime: MixedPrecisionRuntime
    public let evaluator: CandidateEvaluator
    public let layers: [LayerInfo]
    /// The first search-split batch: the layer table's sample, and what `--objective latency`
    /// times whole-model runs on (read once: a streamed split reads it from disk).
    public let sample: [String: Tensor]

    /// `calibration`: a table computed earlier (the calibration split is then not read); nil
    /// calibrates on `splits.calibration`. `progress` gets (phase, done, total).
    public init(session: Session, modelDigest: String, modelName: String, splits: DataSplits, scorer: Scorer,
                calibration: CalibrationTable? = nil, options: PipelineOptions = PipelineOptions(),
                progress: ((String, Int, Int) -> Void)? = nil) throws {
        self.session = session
        self.modelDigest = modelDigest
        self.splits = splits
        self.scorer = scorer
        self.options = options
        // Fail before calibrating, not after the search.
        for split in [splits.search, splits.holdout] { try scorer.validate(split) }
        // The detection layout too (one FP32 sample): a wrong one must fail here, not score
        // silently after the search.
        if let detection = scorer as? DetectionScorer {
            try detection.resolveLayout(session: session, data: splits.search, also: [splits.holdout])
        }
        if let calibration {
            table = calibration
        } else {
            let phase = "calibrate (\(options.calibrationMethod.rawValue))"
            table = try Calibrator(session: session, scheme: options.scheme).calibrate(
                dataset: splits.calibration, options: CalibrationOptions(method: options.calibrationMethod, batchSize: options.batchSize),
                modelDigest: modelDigest) { _, done, total in progress?(phase, done, total) }
        }
        runtime = try MixedPrecisionRuntime(session: session, calibration: table, path: options.kernelPath, scheme: options.scheme,
                                            weightBits: options.weightBits)
        guard !runtime.layerNames.isEmpty else { throw PipelineError.noQuantizableLayer(model: modelName) }
        evaluator = try CandidateEvaluator(runtime: runtime, data: splits.search, scorer: scorer, batchSize: options.batchSize,
                                           cache: options.cache, transform: options.transform,
                                           visitSeed: options.visitSeed) { done, total in
            progress?("fp32 reference on the search split", done, total)
        }
        sample = splits.search.batch(0..<min(splits.search.count, options.batchSize))
        layers = try LayerTable.build(runtime: runtime, sample: sample, measureLatency: options.measureLatency)
    }

    /// The sensitivity analysis (resumable with `statePath`), or with `.auto` none when
    /// all-INT8 already meets the smallest budget on the search split.
    public func sensitivity(mode: SensitivityMode, smallestBudget: Budget, statePath: String? = nil, key: SearchStateKey? = nil,
                            shard: Shard? = nil, progress: ((Int, Int) -> Void)? = nil) throws -> SensitivityReport {
        if mode == .auto {
            let budget = smallestBudget.points(fp32: evaluator.fp32Score)
            let (all, _) = try evaluator.evaluate(runtime.allInt8, rejectAbove: budget)
            if all.complete && all.drop <= budget { return try SensitivityReport.notMeasured(evaluator: evaluator) }
        }
        return try SensitivityAnalyzer(evaluator: evaluator, statePath: statePath, key: key, shard: shard).run { done, total, _ in progress?(done, total) }
    }

    /// The holdout validator, its labels checked against the output before a search rather than after it.
    public func validator(seed: UInt64, resamples: Int = 2000) throws -> HoldoutValidator {
        let validator = try HoldoutValidator(runtime: runtime, holdout: splits.holdout, scorer: scorer, batchSize: options.batchSize,
                                             resamples: resamples, seed: seed, transform: options.transform)
        try scorer.check(evaluator.fp32Sample, data: splits.holdout, output: session.graph.outputs[0].name)
        return validator
    }

    public func runner(sensitivity: SensitivityReport, validator: HoldoutValidator) -> SearchRunner {
        SearchRunner(evaluator: evaluator, sensitivity: sensitivity, layers: layers, validator: validator)
    }

    /// Runs every plan on one runner, smallest budget first (the evaluations, sensitivity and
    /// holdout passes are shared), handing each outcome to `each` before the next plan runs
    /// (a document made then records the work done so far).
    public func sweep(_ plans: [SearchPlan], runner: SearchRunner, progress: ((SearchPlan) -> Void)? = nil,
                      each: (SearchPlan, SearchOutcome) throws -> Void) throws {
        for plan in plans.sorted(by: { $0.budget.value < $1.budget.value }) {
            progress?(plan)
            try each(plan, try runner.run(plan))
        }
    }
}
