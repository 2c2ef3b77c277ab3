import Foundation
import Kernels
import ONNX

/// What a scorer says about a split, in points (higher is better).
public enum SplitScores: Equatable, Sendable {
    /// One score per sample, in data order: the split's score is their mean, and confidence
    /// intervals resample samples.
    case perSample([Double])
    /// One score for the whole split only (mAP, a user command's `{"score": x}`).
    case split(Double)

    public var score: Double {
        switch self {
        case .perSample(let p): return Statistics.mean(p)
        case .split(let s): return s
        }
    }

    /// The per-sample points, nil for a split-level score.
    public var points: [Double]? {
        if case .perSample(let p) = self { return p }
        return nil
    }
}

/// One metric, as every consumer sees it (docs/metrics.md): `eval`, the candidate evaluator
/// (search split) and holdout validation call only this protocol, so a new metric is one
/// type and none of them branches on a metric's name.
///
/// The life of a split: `validate` before any model runs (the ground truth is there and
/// well-formed), `rows` on every batch (which output values are kept: the scored output,
/// decoded detections, every graph output...), `check` once on the first kept outputs
/// (labels against the output's classes), then `score` on the rows kept.
public protocol Scorer: AnyObject {
    /// How reports name the metric: `top1`, `map50`, `command`.
    var name: String { get }
    /// Options that change the scores beyond the name, as text for resumable-state keys
    /// (" detection yolo iou 0.5 ..."); empty when there are none.
    var settings: String { get }
    /// Compares against the FP32 model's outputs: `eval` runs FP32 first to get them.
    var needsReference: Bool { get }
    /// A sample's score depends only on that sample's outputs, so a split may be scored batch
    /// by batch (and a candidate rejected early). False for retrieval (neighbours in the whole
    /// split), mAP and user commands (one call per evaluation).
    var scoresBatchwise: Bool { get }
    /// Throws unless `data` holds the ground truth this metric reads, before any model runs.
    func validate(_ data: Dataset) throws
    /// The values kept from one batch's graph outputs (samples `range` of `data`): a tensor
    /// with the batch along dimension 0. `output` is the scored output.
    func rows(_ outputs: [String: Tensor], output: String, transform: OutputTransform, data: Dataset,
              range: Range<Int>) throws -> Tensor
    /// Checks kept outputs against `data` once (labels within the output's classes).
    func check(_ outputs: Outputs, data: Dataset, output: String) throws
    /// Scores `outputs`, which hold samples `range` of `data`; `reference` holds the FP32
    /// outputs of the same samples.
    func score(_ outputs: Outputs, reference: Outputs?, data: Dataset, range: Range<Int>) throws -> SplitScores
    /// Scores a split whose kept rows wait on disk (RowSpool): `outputs` and `reference` hold
    /// rows `range` of `data`. The default reads them back whole and calls `score`; a scorer
    /// that can consume them in pieces (`--metric-command` streams them into its .npz files)
    /// says so with `scoresFromDisk`.
    func score(spooled outputs: RowSpool, reference: RowSpool, data: Dataset, range: Range<Int>) throws -> SplitScores
    /// `score(spooled:...)` never holds the rows whole.
    var scoresFromDisk: Bool { get }
    /// Per-sample scores are hits (0 or full points), so McNemar's exact test applies.
    func hasBinarySamples(_ outputs: Outputs) -> Bool
    /// The paired bootstrap interval of the drop for a split-level score, or nil when the
    /// metric has no way to recompute itself on a resample (a user command).
    func splitBootstrapCI(reference: Outputs, candidate: Outputs, data: Dataset, resamples: Int,
                          confidence: Double, seed: UInt64) throws -> ConfidenceInterval?
}

extension Scorer {
    public var settings: String { "" }
    public func validate(_ data: Dataset) throws {}
    public func check(_ outputs: Outputs, data: Dataset, output: String) throws {}
    public func hasBinarySamples(_ outputs: Outputs) -> Bool { false }
    public var scoresFromDisk: Bool { false }
    public func score(spooled outputs: RowSpool, reference: RowSpool, data: Dataset, range: Range<Int>) throws -> SplitScores {
        let o = try outputs.all()
        return try score(o, reference: outputs === reference ? o : try reference.all(), data: data, range: range)
    }
    public func splitBootstrapCI(reference: Outputs, candidate: Outputs, data: Dataset, resamples: Int,
                                 confidence: Double, seed: UInt64) throws -> ConfidenceInterval? { nil }

    /// The scored output, pooled by `transform`.
    public func rows(_ outputs: [String: Tensor], output: String, transform: OutputTransform, data: Dataset,
                     range: Range<Int>) throws -> Tensor {
        guard let raw = outputs[output] else {
            throw MetricError.badOutput(output: output, reason: "the graph did not produce it")
        }
        return try transform.apply(raw, dataset: data, range: range)
    }
}

/// The options of the built-in metrics beyond their name, as the command line gives them.
public struct ScorerOptions: Equatable, Sendable {
    /// Post-processing of a detector's output (detection metrics, docs/detection.md).
    public var detection: DetectionOptions
    /// Axis of the classes in an output with more than 2 dimensions (negative: from the end).
    public var classAxis: Int
    /// Label value of positions that do not count (PyTorch's `ignore_index`), also CTC padding.
    public var ignoreIndex: Int64
    /// Class index of the CTC blank.
    public var blank: Int

    public init(detection: DetectionOptions = DetectionOptions(), classAxis: Int = -1, ignoreIndex: Int64 = -100,
                blank: Int = 0) {
        self.detection = detection; self.classAxis = classAxis; self.ignoreIndex = ignoreIndex; self.blank = blank
    }
}

extension Metric {
    /// The scorer of a built-in metric.
    public func scorer(_ options: ScorerOptions = ScorerOptions()) -> Scorer {
        switch self {
        case .top1, .top5, .agreement: return ClassScorer(self, classAxis: options.classAxis, ignoreIndex: options.ignoreIndex)
        case .ctcExact, .ctcAgreement:
            return CTCScorer(self, blank: options.blank, ignoreIndex: options.ignoreIndex, classAxis: options.classAxis)
        case .cosine: return CosineScorer()
        case .retrieval: return RetrievalScorer(k: 1)
        case .retrieval5: return RetrievalScorer(k: 5)
        case .map50, .map50_95, .boxAgreement: return DetectionScorer(self, options: options.detection)
        }
    }
}

/// Mean cosine similarity with the FP32 outputs, x 100 per sample.
public final class CosineScorer: Scorer {
    public init() {}
    public var name: String { Metric.cosine.rawValue }
    public var needsReference: Bool { true }
    public var scoresBatchwise: Bool { true }
    public func score(_ outputs: Outputs, reference: Outputs?, data: Dataset, range: Range<Int>) throws -> SplitScores {
        .perSample(sampleScores(.cosine, outputs: outputs, labels: nil, reference: reference).map { $0 * Metric.cosine.pointsPerSample })
    }
}

/// Nearest-neighbour agreement with the FP32 embeddings (EmbeddingMetrics.swift): a sample's
/// score looks at every row of the split, so the split is scored whole.
public final class RetrievalScorer: Scorer {
    public let k: Int
    public init(k: Int) { self.k = k }
    var metric: Metric { k == 1 ? .retrieval : .retrieval5 }
    public var name: String { metric.rawValue }
    public var needsReference: Bool { true }
    public var scoresBatchwise: Bool { false }
    public func hasBinarySamples(_ outputs: Outputs) -> Bool { true }
    public func score(_ outputs: Outputs, reference: Outputs?, data: Dataset, range: Range<Int>) throws -> SplitScores {
        .perSample(sampleScores(metric, outputs: outputs, labels: nil, reference: reference).map { $0 * metric.pointsPerSample })
    }
}

/// COCO mAP against the data's boxes, or against FP32's detections (Detection.swift): one
/// score per split, bootstrapped over images.
public final class DetectionScorer: Scorer {
    public let metric: Metric
    /// The layout as given, then as resolved (`resolveLayout`, or the first batch `rows` sees):
    /// `auto` becomes one format with its outputs, class count and orientation.
    public private(set) var options: DetectionOptions
    /// Ground truth per split file, read once.
    private var truths: [String: DetectionTruth] = [:]
    /// The graph's output order (boxes-scores pairs are looked for in it); nil until
    /// `resolveLayout`, then `rows` puts the scored output first.
    public private(set) var outputOrder: [String]?
    /// Splits whose ground-truth class ids were checked against the resolved layout.
    private var checkedClasses: Set<String> = []

    public init(_ metric: Metric, options: DetectionOptions) { self.metric = metric; self.options = options }
    public var name: String { metric.rawValue }
    public var settings: String {
        " detection \(options.format.rawValue) iou \(options.iou) score \(options.scoreThreshold) classes \(options.numClasses.map(String.init) ?? "auto") max \(options.maxDetections)"
            + " outputs \(options.outputNames.joined(separator: ",")) classes-first \(options.classesFirst.map { "\($0)" } ?? "-")"
    }

    /// Fixes the layout from one FP32 sample of `data` and checks it against the ground-truth
    /// classes of `data` and of every split in `also`, before anything long runs: a wrong
    /// layout must fail there, not score silently after a search (docs/detection.md).
    /// `outputName`: the scored output of a single-output layout; nil tries the graph's outputs in order.
    public func resolveLayout(session: Session, data: Dataset, also: [Dataset] = [], outputName: String? = nil) throws {
        outputOrder = session.graph.outputs.map(\.name)
        var d = try options.resolved(session: session, dataset: data, outputName: outputName)
        checkedClasses.insert(data.path)
        for split in also {
            d = try d.resolved(outputs: [:], order: [], truthClasses: DetectionTruth.classIDs(split), truthPath: split.path)
            checkedClasses.insert(split.path)
        }
        options = d
    }
    public var needsReference: Bool { metric == .boxAgreement }
    public var scoresBatchwise: Bool { false }

    public func validate(_ data: Dataset) throws { _ = try truth(data) }

    public func rows(_ outputs: [String: Tensor], output: String, transform: OutputTransform, data: Dataset,
                     range: Range<Int>) throws -> Tensor {
        // Every graph output of the batch is decoded (boxes-scores reads two).
        let order = outputOrder ?? [output] + outputs.keys.filter { $0 != output }.sorted()
        if !options.isResolved || !checkedClasses.contains(data.path) {
            // Fixed on the first batch, checked against each split's ground-truth classes.
            var d = options
            if d.outputNames.isEmpty && output != order.first { d.outputNames = [output] }
            options = try d.resolved(outputs: outputs, order: order, truthClasses: DetectionTruth.classIDs(data), truthPath: data.path)
            checkedClasses.insert(data.path)
        }
        return try options.decode(outputs, order: order)
    }

    func truth(_ data: Dataset) throws -> DetectionTruth? {
        guard metric.needsBoxes else { return nil }
        if let t = truths[data.path] { return t }
        let t = try DetectionTruth(dataset: data)
        truths[data.path] = t
        return t
    }

    public func score(_ outputs: Outputs, reference: Outputs?, data: Dataset, range: Range<Int>) throws -> SplitScores {
        .split(DetectionMetrics.score(metric, outputs: outputs, reference: reference ?? outputs, truth: try truth(data)))
    }

    public func splitBootstrapCI(reference: Outputs, candidate: Outputs, data: Dataset, resamples: Int,
                                 confidence: Double, seed: UInt64) throws -> ConfidenceInterval? {
        DetectionMetrics.pairedBootstrapCI(metric, reference: reference, candidate: candidate, truth: try truth(data),
                                           resamples: resamples, confidence: confidence, seed: seed)
    }
}
