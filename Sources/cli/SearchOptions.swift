import ArgumentParser
import Foundation
import Kernels
import ONNX
import Search

/// The data splits: three files, or one file split with a seed.
struct SplitOptions: ParsableArguments {
    @Option(help: "One .npz with every sample (or a folder of .npz shards with the same arrays, concatenated in name order), split by --split and --seed.") var data: String?
    @Option(help: "Fractions for calibration,search,holdout when --data is one file.") var split: String = "0.2,0.4,0.4"
    @Option(help: "Calibration split (.npz), or a calibration table (.json) computed on it.") var calibration: String?
    @Option(help: "Search split (.npz): every candidate is scored on it.") var search: String?
    @Option(help: "Holdout split (.npz): only the final answer is scored on it.") var holdout: String?
    @Option(help: "Seed for the split, the bootstrap and the evolutionary search (written into the output).")
    var seed: UInt64 = 0
    @Flag(help: "Accept NaN and infinite values in float input arrays (by default they are an error naming the array and row).")
    var allowNonfinite = false
    @Flag(help: "Accept splits that share samples by content (by default an error naming the count).")
    var allowOverlap = false

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
            return "data \(try dataDigest(data)) split \(fractions!.map { String($0) }.joined(separator: ",")) seed \(seed)"
        }
        let cal = calibration!.hasSuffix(".json") ? "table" : "sha256:" + (try SHA256.hex(ofFile: calibration!))
        return "calibration \(cal) search sha256:\(try SHA256.hex(ofFile: search!)) holdout sha256:\(try SHA256.hex(ofFile: holdout!))"
    }

    /// The splits, checked disjoint by content (docs/search.md); with --allow-overlap a
    /// shared row is only a warning.
    func load(graph: Graph) throws -> DataSplits {
        let splits: DataSplits
        let named: [(name: String, data: Dataset)]
        if let data {
            splits = try DataSplits.split(data, fractions: fractions!, seed: seed, graph: graph, allowNonfinite: allowNonfinite)
            named = [("calibration", splits.calibration), ("search", splits.search), ("holdout", splits.holdout)]
        } else if calibration!.hasSuffix(".json") {
            // A calibration table stands in for the calibration split, which is then not read.
            let s = try Dataset(path: search!, graph: graph, allowNonfinite: allowNonfinite)
            let h = try Dataset(path: holdout!, graph: graph, allowNonfinite: allowNonfinite)
            splits = DataSplits(calibration: s, search: s, holdout: h,
                                description: "calibration table \(calibration!), search \(search!), holdout \(holdout!)")
            named = [("search", s), ("holdout", h)]
        } else {
            splits = try DataSplits.load(calibration: calibration!, search: search!, holdout: holdout!, graph: graph,
                                         allowNonfinite: allowNonfinite)
            named = [("calibration", splits.calibration), ("search", splits.search), ("holdout", splits.holdout)]
        }
        let shared = try DataSplits.checkDisjoint(named, allowOverlap: allowOverlap)
        if !shared.isEmpty {
            let list = shared.map { "\($0.rows) rows of \($0.later) also in \($0.earlier)" }.joined(separator: "; ")
            FileHandle.standardError.write(Data("warning: --allow-overlap: \(list)\n".utf8))
        }
        return splits
    }

    /// Refuses a calibration table computed on the search or holdout split itself.
    func checkTable(_ table: CalibrationTable, splits: DataSplits) throws {
        guard let d = table.dataDigest, !allowOverlap, let path = calibration else { return }
        for s in [splits.search, splits.holdout] where s.contentDigest() == d {
            throw DataSplitError.tableFromSplit(table: path, split: s.path)
        }
    }
}

/// How outputs are scored: the metric, pooling of token-level outputs, detector
/// post-processing. Shared by `eval` and the search commands.
struct ScoringOptions: ParsableArguments {
    @Option(help: "top1, top5 (need labels), agreement (top-1 agreement with FP32), cosine, retrieval or retrieval5 (embeddings vs FP32), map50, map50_95 (detection, need gt_boxes/gt_classes), box-agreement (detection vs FP32), ctc-exact (greedy CTC decoding vs labels [N, L]) or ctc-agreement (vs FP32's decoding). top1/top5/agreement score outputs with more than 2 dimensions per position (docs/metrics.md).")
    var metric: Metric = .top1
    @Option(help: "Class axis of outputs with more than 2 dimensions (top1/top5/agreement per position, ctc-*); negative counts from the end.")
    var classAxis: Int = -1
    @Option(help: "Label value of positions that do not count (sequence labels [N, T], CTC target padding).") var ignoreIndex: Int = -100
    @Option(help: "Class index of the CTC blank (ctc-exact, ctc-agreement).") var blank: Int = 0
    @Option(help: "Your own metric instead of --metric: run through /bin/sh -c as 'CMD OUTPUTS.npz DATA.npz REFERENCE.npz' per evaluation; it prints a JSON array of per-sample scores in points or {\"score\": x} (docs/metrics.md).")
    var metricCommand: String?
    @Option(help: "Pool a token-level output [N, L, D] to [N, D] before scoring: none, mean (over the mask's real tokens) or cls.")
    var pool: Pooling = .none
    @Option(help: "Data array with the attention mask [N, L] for --pool mean ('none': every token).") var mask: String = "attention_mask"
    @OptionGroup var detectionFlags: DetectionFlags

    /// The metric as the library scores it.
    func scorer() -> Scorer {
        if let metricCommand { return CommandScorer(command: metricCommand) }
        return metric.scorer(ScorerOptions(detection: detectionFlags.options, classAxis: classAxis, ignoreIndex: Int64(ignoreIndex), blank: blank))
    }

    func validate() throws {
        if classAxis == 0 { throw ValidationError("--class-axis 0 is the batch axis; the default -1 is the last one") }
        try checkRange("--blank", blank, 0...largestCount)
        if let c = metricCommand, c.trimmingCharacters(in: .whitespaces).isEmpty { throw ValidationError("--metric-command must not be empty") }
    }
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
    @Option(help: "Weight range of the INT8 layers: 8 ([-127, 127]) or 7 ([-64, 64], ONNX Runtime's reduce_range: exact and about 1.4x faster INT8 GEMMs on AVX2 CPUs without VNNI, in mpq and in ORT, for one bit of weight resolution).")
    var weightBits: WeightBits = .eight
    @Option(help: "Memory cap for cached activations of the search split, in MiB (when every activation does not fit, only a frontier of them is kept: docs/caching.md).") var cacheMb: Int = 2048
    @Option(help: "Folder for a disk spill of the activation cache (a temporary subfolder, removed at exit); none by default.")
    var cacheDir: String?
    @Option(help: "Size cap of the disk spill under --cache-dir, in MiB.") var cacheDiskMb: Int = 8192
    @Option(help: "Folder for resumable state: search and sweep save every evaluated candidate (evaluations.json), sensitivity every layer (sensitivity.json); a rerun replays them.")
    var state: String?
    @Option(help: "Per-layer sensitivity analysis: auto (skipped when all-INT8 already meets the budget), always, or a report FILE.json written by mpq sensitivity or mpq merge for the same model, data, seed and options (reused, not recomputed).")
    var sensitivity: SensitivityOption = .auto
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
    @Option(help: "Detector output layout for map50/map50_95/box-agreement: auto (from the output shapes and the ground truth's classes), yolo ([N, A, 5+C], objectness), yolov8 ([N, 4+C, A], no objectness), boxes-scores (boxes [N, A, 4] + scores [N, A, C] or [N, C, A]) or boxes-scores-classes ([N, K, 6]).")
    var detectionFormat: DetectionFormat = .auto
    @Option(help: "Per-class NMS IoU threshold (detection metrics).", transform: decimal) var iou: Double = 0.5
    @Option(help: "Detections scoring below this are dropped before NMS (detection metrics).", transform: decimal)
    var scoreThreshold: Double = 0.001
    @Option(help: "Classes C of the output (default: the ground truth's largest class id + 1 for auto, else from the shape).") var numClasses: Int?

    func validate() throws {
        guard iou > 0 && iou <= 1 else { throw ValidationError("--iou must lie in (0, 1], got \(iou)") }
        guard scoreThreshold >= 0 && scoreThreshold < 1 else { throw ValidationError("--score-threshold must lie in [0, 1), got \(scoreThreshold)") }
        if let c = numClasses { try checkRange("--num-classes", c, 1...largestCount) }
    }

    var options: DetectionOptions {
        DetectionOptions(format: detectionFormat, iou: iou, scoreThreshold: scoreThreshold, numClasses: numClasses)
    }

    /// Says on stderr how the output is read (auto's choice included).
    func announce(_ d: DetectionOptions) {
        FileHandle.standardError.write(Data("detection layout\(detectionFormat == .auto ? " (auto)" : ""): \(d.summary)\n".utf8))
    }
}

/// The command line's side of a search: loads the model and the splits from the flags and
/// hands them to the library's `SearchPipeline`, which assembles the rest.
struct SearchContext {
    let modelPath: String
    let model: LoadedModel
    let pipeline: SearchPipeline
    var splits: DataSplits { pipeline.splits }
    var table: CalibrationTable { pipeline.table }
    var runtime: MixedPrecisionRuntime { pipeline.runtime }
    var scorer: Scorer { pipeline.scorer }
    var evaluator: CandidateEvaluator { pipeline.evaluator }
    var layers: [LayerInfo] { pipeline.layers }

    init(modelPath: String, splits options: SplitOptions, common: SearchCommonOptions, measureLatency: Bool) throws {
        Progress.quiet = common.quiet
        self.modelPath = modelPath
        model = try loadModel(modelPath)
        let splits = try options.load(graph: model.graph)
        var table: CalibrationTable?
        if let c = options.calibration, c.hasSuffix(".json") {
            table = try CalibrationTable.load(path: c, modelDigest: model.digest, session: model.session, scheme: common.scheme)
            try options.checkTable(table!, splits: splits)
        }
        let settings = PipelineOptions(calibrationMethod: common.calibrate, batchSize: common.batchSize, kernelPath: common.kernelPath,
                                       scheme: common.scheme, cacheLimitBytes: common.cacheMb << 20,
                                       cacheDirectory: common.cacheDir, cacheDiskLimitBytes: common.cacheDiskMb << 20,
                                       transform: common.outputTransform, measureLatency: measureLatency, visitSeed: options.seed,
                                       weightBits: common.weightBits)
        // The pipeline resolves a detector's layout before calibrating (a wrong one fails there).
        pipeline = try SearchPipeline(session: model.session, modelDigest: model.digest, modelName: modelPath, splits: splits,
                                      scorer: common.scoring.scorer(), calibration: table, options: settings) { phase, done, total in
            Progress(label: phase).update(done, total)
        }
        // Once every input is read and checked: a bad-input error stays first on stderr.
        if let detection = pipeline.scorer as? DetectionScorer { common.detectionFlags.announce(detection.options) }
    }

    /// The sensitivity analysis, or (with `--sensitivity auto`) none when all-INT8 already
    /// meets the smallest budget on the search split, or the analysis `--sensitivity FILE.json`
    /// names. `key`/`shard`: what a report (or one part of it) records for `mpq merge`.
    func sensitivity(statePath: String?, mode: SensitivityOption, smallestBudget: Budget, splits options: SplitOptions,
                     key: SearchStateKey? = nil, shard: Shard? = nil) throws -> SensitivityReport {
        let library: SensitivityMode
        switch mode {
        case .report(let path): return try loadSensitivity(path, splits: options)
        case .auto: library = .auto
        case .always: library = .always
        }
        let progress = Progress(label: "sensitivity")
        return try pipeline.sensitivity(mode: library, smallestBudget: smallestBudget, statePath: statePath, key: key, shard: shard,
                                        progress: progress.update)
    }

    /// What every number of this run depends on: merges and reuses compare it.
    func runKey(_ options: SplitOptions) throws -> SearchStateKey {
        try SearchStateKey(evaluator: evaluator, data: try options.digestDescription(), seed: options.seed, mpqVersion: MPQ.version)
    }

    /// A finished analysis from `--sensitivity FILE.json`, checked against this run.
    func loadSensitivity(_ path: String, splits options: SplitOptions) throws -> SensitivityReport {
        try FileKind.requireRegularFile(path, expected: "a sensitivity report (.json)")
        guard let data = FileManager.default.contents(atPath: path),
              let report = SensitivityAnalyzer.decodeState(data) else {
            throw CLIError("--sensitivity \(path): not a sensitivity report written by mpq sensitivity or mpq merge")
        }
        try report.checkReusable(for: try runKey(options), path: path)
        return report
    }

    /// Opens `--state DIR/evaluations.json` and hands it to the evaluator, which then replays
    /// saved evaluations and saves new ones. A state made from other inputs is refused.
    func attachState(_ dir: String?, splits options: SplitOptions) throws {
        guard let path = try statePath(dir, "evaluations.json") else { return }
        evaluator.store = try EvaluationStore(path: path, key: try runKey(options))
    }

}

/// `sha256:HEX` of a data file; of a shard folder, the digest of its shards' names and digests
/// in name order (what `Dataset` concatenates).
func dataDigest(_ path: String) throws -> String {
    guard FileKind(path: path) == .directory else { return "sha256:" + (try SHA256.hex(ofFile: path)) }
    let lines = try Dataset.shardFiles(path).map { "\(($0 as NSString).lastPathComponent) \(try SHA256.hex(ofFile: $0))" }
    return "shards sha256:" + SHA256.hex(Data(lines.joined(separator: "\n").utf8))
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

/// `--sensitivity auto|always|FILE.json`: the library's SensitivityMode, or a finished analysis.
enum SensitivityOption: ExpressibleByArgument, Equatable {
    case auto, always
    /// A finished analysis to reuse (a merged sharded one, typically).
    case report(String)

    init?(argument: String) {
        switch argument {
        case "auto": self = .auto
        case "always": self = .always
        default:
            guard argument.hasSuffix(".json") else { return nil }
            self = .report(argument)
        }
    }
    static var allValueStrings: [String] { ["auto", "always", "FILE.json"] }
}
extension Pooling: ExpressibleByArgument {}
extension DetectionFormat: ExpressibleByArgument {}
