import ArgumentParser
import Foundation
import Kernels
import ONNX
import Search

/// The data splits: three files, or one file split with a seed.
struct SplitOptions: ParsableArguments {
    @Option(help: "One .npz with every sample, split by --split and --seed.") var data: String?
    @Option(help: "Fractions for calibration,search,holdout when --data is one file.") var split: String = "0.2,0.4,0.4"
    @Option(help: "Calibration split (.npz), or a calibration table (.json) computed on it.") var calibration: String?
    @Option(help: "Search split (.npz): every candidate is scored on it.") var search: String?
    @Option(help: "Holdout split (.npz): only the final answer is scored on it.") var holdout: String?
    @Option(help: "Seed for the split, the bootstrap and the evolutionary search (written into the output).")
    var seed: UInt64 = 0
    @Flag(help: "Accept NaN and infinite values in float input arrays (by default they are an error naming the array and row).")
    var allowNonfinite = false

    func validate() throws {
        let files = [calibration, search, holdout]
        if data == nil {
            guard files.allSatisfy({ $0 != nil }) else {
                throw ValidationError("give either --data ALL.npz (with --split) or all of --calibration, --search and --holdout")
            }
        } else {
            guard search == nil, holdout == nil else {
                throw ValidationError("--data splits one file; do not combine it with --search/--holdout")
            }
            guard fractions != nil else { throw ValidationError("--split '\(split)' must be three positive fractions summing to 1, such as 0.2,0.4,0.4") }
        }
    }

    var fractions: [Double]? {
        let f = split.split(separator: ",").compactMap { Budget.decimal(String($0)) }
        guard f.count == 3, f.allSatisfy({ $0 > 0 }), abs(f.reduce(0, +) - 1) < 1e-6 else { return nil }
        return f
    }

    /// The splits by content, for the state key: file digests, or the one file's digest
    /// with its split and seed.
    func digestDescription() throws -> String {
        if let data {
            return "data sha256:\(try SHA256.hex(ofFile: data)) split \(fractions!.map { String($0) }.joined(separator: ",")) seed \(seed)"
        }
        let cal = calibration!.hasSuffix(".json") ? "table" : "sha256:" + (try SHA256.hex(ofFile: calibration!))
        return "calibration \(cal) search sha256:\(try SHA256.hex(ofFile: search!)) holdout sha256:\(try SHA256.hex(ofFile: holdout!))"
    }

    func load(graph: Graph) throws -> DataSplits {
        if let data {
            return try DataSplits.split(data, fractions: fractions!, seed: seed, graph: graph, allowNonfinite: allowNonfinite)
        }
        if calibration!.hasSuffix(".json") {
            // A calibration table stands in for the calibration split, which is then not read.
            let s = try Dataset(path: search!, graph: graph, allowNonfinite: allowNonfinite)
            let h = try Dataset(path: holdout!, graph: graph, allowNonfinite: allowNonfinite)
            return DataSplits(calibration: s, search: s, holdout: h,
                              description: "calibration table \(calibration!), search \(search!), holdout \(holdout!)")
        }
        return try DataSplits.load(calibration: calibration!, search: search!, holdout: holdout!, graph: graph,
                                   allowNonfinite: allowNonfinite)
    }
}

/// How outputs are scored: the metric, pooling of token-level outputs, detector
/// post-processing. Shared by `eval` and the search commands.
struct ScoringOptions: ParsableArguments {
    @Option(help: "top1, top5 (need labels), agreement (top-1 agreement with FP32), cosine, retrieval or retrieval5 (embeddings vs FP32), map50, map50_95 (detection, need gt_boxes/gt_classes) or box-agreement (detection vs FP32).")
    var metric: Metric = .top1
    @Option(help: "Pool a token-level output [N, L, D] to [N, D] before scoring: none, mean (over the mask's real tokens) or cls.")
    var pool: Pooling = .none
    @Option(help: "Data array with the attention mask [N, L] for --pool mean ('none': every token).") var mask: String = "attention_mask"
    @OptionGroup var detectionFlags: DetectionFlags
}

/// Options every search-like command shares.
struct SearchCommonOptions: ParsableArguments {
    @OptionGroup var scoring: ScoringOptions
    var metric: Metric { scoring.metric }
    var pool: Pooling { scoring.pool }
    var mask: String { scoring.mask }
    var detectionFlags: DetectionFlags { scoring.detectionFlags }
    @Option(help: "Calibration method: minmax, percentile, entropy, mse.") var calibrate: CalibrationMethod = .minmax
    @Option(help: "Samples per batch.") var batchSize: Int = 64
    @Option(help: "INT8 kernel path: auto, vnni, avx2, reference.") var kernelPath: KernelPath = .auto
    @Option(help: "Q/DQ placement: ort (INT8 chains as ONNX Runtime runs them, what deploys fast) or inputs (layer inputs only, TensorRT's placement).")
    var scheme: ExecutionScheme = .ort
    @Option(help: "Memory cap for cached activations of the search split, in MiB (when every activation does not fit, only a frontier of them is kept: docs/caching.md).") var cacheMb: Int = 2048
    @Option(help: "Folder for a disk spill of the activation cache (a temporary subfolder, removed at exit); none by default.")
    var cacheDir: String?
    @Option(help: "Size cap of the disk spill under --cache-dir, in MiB.") var cacheDiskMb: Int = 8192
    @Option(help: "Folder for resumable state: search and sweep save every evaluated candidate (evaluations.json), sensitivity every layer (sensitivity.json); a rerun replays them.")
    var state: String?
    @Option(help: "Per-layer sensitivity analysis: auto (skipped when all-INT8 already meets the budget) or always.")
    var sensitivity: SensitivityMode = .auto
    @Flag(help: "Print JSON on stdout.") var json = false
    @Flag(help: "No progress lines on stderr.") var quiet = false

    func validate() throws {
        try checkRange("--batch-size", batchSize, 1...largestCount)
        try checkRange("--cache-mb", cacheMb, 0...largestCount)
        try checkRange("--cache-disk-mb", cacheDiskMb, 0...largestCount)
        if let d = cacheDir {
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: d, isDirectory: &isDir), !isDir.boolValue {
                throw ValidationError("--cache-dir \(d) is not a folder")
            }
        }
        if kernelPath != .auto && !kernelPath.isAvailable {
            throw ValidationError("--kernel-path \(kernelPath.rawValue) is not supported by this CPU")
        }
    }

    var outputTransform: OutputTransform { OutputTransform(pooling: pool, mask: mask) }
    var detection: DetectionOptions { detectionFlags.options }
}

/// Post-processing of a detector's output for map50/map50_95/box-agreement (docs/detection.md).
struct DetectionFlags: ParsableArguments {
    @Option(help: "Detector output layout for map50/map50_95/box-agreement: yolo ([N, A, 5+C] or [N, 5+C, A]) or boxes-scores-classes ([N, K, 6]).")
    var detectionFormat: DetectionFormat = .yolo
    @Option(help: "Per-class NMS IoU threshold (detection metrics).", transform: decimal) var iou: Double = 0.5
    @Option(help: "Detections scoring below this are dropped before NMS (detection metrics).", transform: decimal)
    var scoreThreshold: Double = 0.001
    @Option(help: "Classes C of a yolo output (default: inferred from its shape).") var numClasses: Int?

    func validate() throws {
        guard iou > 0 && iou <= 1 else { throw ValidationError("--iou must lie in (0, 1], got \(iou)") }
        guard scoreThreshold >= 0 && scoreThreshold < 1 else { throw ValidationError("--score-threshold must lie in [0, 1), got \(scoreThreshold)") }
        if let c = numClasses { try checkRange("--num-classes", c, 1...largestCount) }
    }

    var options: DetectionOptions {
        DetectionOptions(format: detectionFormat, iou: iou, scoreThreshold: scoreThreshold, numClasses: numClasses)
    }
}

/// Everything a search needs, prepared once: model, splits, calibration, runtime, the
/// search-split evaluator and the layer table.
struct SearchContext {
    let modelPath: String
    let model: LoadedModel
    let splits: DataSplits
    let table: CalibrationTable
    let runtime: MixedPrecisionRuntime
    let evaluator: CandidateEvaluator
    let layers: [LayerInfo]

    init(modelPath: String, splits options: SplitOptions, common: SearchCommonOptions, measureLatency: Bool) throws {
        Progress.quiet = common.quiet
        self.modelPath = modelPath
        model = try loadModel(modelPath)
        splits = try options.load(graph: model.graph)
        if common.metric.needsLabels && splits.search.labels == nil {
            throw MetricError.missingLabels(metric: common.metric.rawValue, path: splits.search.path)
        }
        if common.metric.needsBoxes {
            // Fail before calibrating, not after the search.
            for split in [splits.search, splits.holdout] { _ = try DetectionTruth(dataset: split) }
        }
        if let c = options.calibration, c.hasSuffix(".json") {
            table = try CalibrationTable.load(path: c, modelDigest: model.digest, session: model.session, scheme: common.scheme)
        } else {
            let progress = Progress(label: "calibrate (\(common.calibrate.rawValue))")
            table = try Calibrator(session: model.session, scheme: common.scheme).calibrate(
                dataset: splits.calibration, options: CalibrationOptions(method: common.calibrate, batchSize: common.batchSize),
                modelDigest: model.digest) { _, done, total in progress.update(done, total) }
        }
        runtime = try MixedPrecisionRuntime(session: model.session, calibration: table, path: common.kernelPath,
                                            scheme: common.scheme)
        guard !runtime.layerNames.isEmpty else { throw CLIError("\(modelPath) has no layer that can run in INT8") }
        let progress = Progress(label: "fp32 reference on the search split")
        evaluator = try CandidateEvaluator(runtime: runtime, data: splits.search, metric: common.metric,
                                           batchSize: common.batchSize,
                                           cache: ActivationCacheOptions(memoryLimitBytes: common.cacheMb << 20, directory: common.cacheDir,
                                                                         diskLimitBytes: common.cacheDiskMb << 20),
                                           transform: common.outputTransform, detection: common.detection, progress: progress.update)
        layers = try LayerTable.build(runtime: runtime, sample: splits.search.batch(0..<min(splits.search.count, common.batchSize)),
                                      measureLatency: measureLatency)
    }

    /// The sensitivity analysis, or (with `--sensitivity auto`) none when all-INT8 already
    /// meets the smallest budget on the search split: greedy then keeps every layer INT8 and
    /// nothing needs ranking.
    func sensitivity(statePath: String?, mode: SensitivityMode, smallestBudget: Budget) throws -> SensitivityReport {
        if mode == .auto {
            let (all, _) = try evaluator.evaluate(runtime.allInt8, rejectAbove: smallestBudget.points(fp32: evaluator.fp32Score))
            if all.complete && all.drop <= smallestBudget.points(fp32: evaluator.fp32Score) {
                return try SensitivityReport.notMeasured(evaluator: evaluator)
            }
        }
        return try sensitivity(statePath: statePath)
    }

    /// Opens `--state DIR/evaluations.json` and hands it to the evaluator, which then replays
    /// saved evaluations and saves new ones. A state made from other inputs is refused.
    func attachState(_ dir: String?, splits options: SplitOptions) throws {
        guard let path = try statePath(dir, "evaluations.json") else { return }
        let key = try SearchStateKey(evaluator: evaluator, data: try options.digestDescription(), seed: options.seed,
                                     mpqVersion: MPQ.version)
        evaluator.store = try EvaluationStore(path: path, key: key)
    }

    /// Runs (or resumes) the sensitivity analysis.
    func sensitivity(statePath: String?) throws -> SensitivityReport {
        let progress = Progress(label: "sensitivity")
        return try SensitivityAnalyzer(evaluator: evaluator, statePath: statePath).run { done, total, _ in
            progress.update(done, total)
        }
    }
}

/// `DIR/name`, creating DIR; nil without a state folder.
func statePath(_ dir: String?, _ name: String) throws -> String? {
    guard let dir else { return nil }
    do { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) } catch {
        throw CLIError("--state \(dir): cannot create the folder (\(error.localizedDescription))")
    }
    return "\(dir)/\(name)"
}

extension Metric: ExpressibleByArgument {}

enum SensitivityMode: String, ExpressibleByArgument, CaseIterable { case auto, always }
extension Pooling: ExpressibleByArgument {}
extension DetectionFormat: ExpressibleByArgument {}
