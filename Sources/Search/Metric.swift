import Foundation
import ONNX

/// Scores in points (0-100), higher is better, so a drop is `fp32 - candidate` whatever
/// the metric and `--budget 1%` means one point.
public enum Metric: String, CaseIterable, Codable, Sendable {
    /// Share of samples whose arg-max is the label.
    case top1
    /// Share of samples whose label is among the 5 largest outputs.
    case top5
    /// Share of samples whose arg-max equals the FP32 model's (no labels needed).
    case agreement
    /// Mean cosine similarity of each sample's outputs with the FP32 model's, x 100 (no labels needed).
    case cosine
    /// Share of samples whose nearest neighbour (cosine, itself excluded) within the split
    /// is the same as under FP32 (embeddings; no labels needed).
    case retrieval
    /// Share of samples whose FP32 nearest neighbour is among the candidate's 5 nearest.
    case retrieval5
    /// COCO mAP at IoU 0.5 against `gt_boxes`/`gt_classes` (object detection, docs/detection.md).
    case map50
    /// COCO mAP averaged over IoU 0.50:0.05:0.95.
    case map50_95
    /// mAP at IoU 0.5 against the FP32 model's detections scoring >= 0.25 (no labels needed).
    case boxAgreement = "box-agreement"
    /// Share of samples whose greedy CTC decoding of a sequence output [N, T, C] equals
    /// `labels` [N, L] (padded with the ignore index) exactly (CTCScorer.swift).
    case ctcExact = "ctc-exact"
    /// Share of samples whose greedy CTC decoding equals the FP32 model's (no labels needed).
    case ctcAgreement = "ctc-agreement"

    /// Multiplier from a sample score to points: label and agreement metrics score 0/1.
    public var pointsPerSample: Double { self == .cosine ? 1 : 100 }

    public var needsLabels: Bool { self == .top1 || self == .top5 || self == .ctcExact }
    public var needsReference: Bool { self != .top1 && self != .top5 && self != .map50 && self != .map50_95 && self != .ctcExact }
    /// False when a sample's score depends on the other samples (retrieval looks for
    /// neighbours in the whole split): scores are then computed on the full output set only.
    public var isPerSample: Bool { self != .retrieval && self != .retrieval5 && !isDetection }
}

public enum MetricError: Error, CustomStringConvertible, Equatable {
    case missingLabels(metric: String, path: String)
    case badOutput(output: String, reason: String)
    /// The output or the data cannot be pooled as asked (EmbeddingMetrics.swift).
    case badPooling(reason: String)
    /// map50/map50_95 without `gt_boxes`/`gt_classes` in the data (Detection.swift).
    case missingGroundTruth(path: String, available: [String])
    /// A label outside [0, classes) of the scored output (checkLabels).
    case labelOutOfRange(path: String, row: Int, value: Int64, classes: Int, output: String)
    /// Labels that do not fit the scored output's layout (sequence metrics, docs/metrics.md).
    case badLabels(path: String, reason: String)
    /// `--metric-command` failed or printed something that is not scores (CommandScorer).
    case commandFailed(command: String, reason: String, stderr: String)

    public var description: String {
        switch self {
        case .missingLabels(let m, let p): return "metric '\(m)' needs labels: \(p) has no 'labels' array (use --metric agreement for label-free scoring)"
        case .badOutput(let o, let r): return "output '\(o)': \(r)"
        case .badPooling(let r): return r
        case .labelOutOfRange(let p, let r, let v, let c, let o):
            return "\(p): 'labels' row \(r) holds class \(v), but output '\(o)' has \(c) classes (labels must lie in 0..<\(c))"
        case .badLabels(let p, let r): return "\(p): 'labels' \(r)"
        case .commandFailed(let c, let r, let e):
            return "--metric-command '\(c)' \(r)" + (e.isEmpty ? " (no stderr)" : "; its stderr ends with:\n\(e)")
        case .missingGroundTruth(let p, let a): return "detection metrics map50/map50_95 need ground truth: \(p) has no 'gt_boxes' [N, M, 4] and 'gt_classes' [N, M] arrays (arrays: \(a.joined(separator: ", "))); use --metric box-agreement for label-free scoring"
        }
    }
}

/// Checks that every label names a class of the scored output (label metrics only): the
/// data file cannot know how many classes the model has, so this runs once the first
/// output is known. Negative labels, float and 2-D label arrays are refused when the
/// file is read (Dataset.checkLabels).
public func checkLabels(_ metric: Metric, labels: [Int64]?, classes: Int, path: String, output: String) throws {
    guard metric.needsLabels, let labels else { return }
    if let row = labels.firstIndex(where: { $0 < 0 || $0 >= Int64(classes) }) {
        throw MetricError.labelOutOfRange(path: path, row: row, value: labels[row], classes: classes, output: output)
    }
}

/// Per-sample outputs of a classifier: `rows` samples of `width` scores each.
public struct Outputs: Sendable, Equatable {
    public var values: [Float]
    public var rows: Int
    public var width: Int
    /// The shape of one sample's values (their product is `width`): [T, C] for a sequence
    /// output [N, T, C], so sequence metrics can find the class axis.
    public var sampleShape: [Int]

    public init(values: [Float], rows: Int, width: Int, sampleShape: [Int]? = nil) {
        self.values = values; self.rows = rows; self.width = width
        self.sampleShape = sampleShape ?? [width]
    }

    /// Equal values in equal rows: the sample shape is only a view of them.
    public static func == (a: Outputs, b: Outputs) -> Bool {
        a.values == b.values && a.rows == b.rows && a.width == b.width
    }

    public func row(_ i: Int) -> ArraySlice<Float> { values[i * width..<(i + 1) * width] }

    /// Index of the largest value; the first on ties, as numpy's argmax.
    public func argmax(_ i: Int) -> Int {
        var best = i * width
        for j in i * width..<(i + 1) * width where values[j] > values[best] { best = j }
        return best - i * width
    }

    /// Indices of the k largest values (ties broken by the lower index).
    public func topK(_ i: Int, _ k: Int) -> [Int] {
        let r = Array(row(i))
        return r.indices.sorted { r[$0] > r[$1] || (r[$0] == r[$1] && $0 < $1) }.prefix(k).map { $0 }
    }
}

/// Per-sample scores (1 = correct for label metrics, 100 x cosine for `cosine`) for a metric, the unit that confidence intervals
/// and paired tests work on. Retrieval scores (0/1) look at every row of `outputs`: pass the whole split.
public func sampleScores(_ metric: Metric, outputs: Outputs, labels: [Int64]?, reference: Outputs?) -> [Double] {
    switch metric {
    case .top1:
        guard let labels else { return [] }
        return (0..<outputs.rows).map { outputs.argmax($0) == Int(labels[$0]) ? 1 : 0 }
    case .top5:
        guard let labels else { return [] }
        return (0..<outputs.rows).map { outputs.topK($0, 5).contains(Int(labels[$0])) ? 1 : 0 }
    case .agreement:
        let ref = reference ?? outputs
        return (0..<outputs.rows).map { outputs.argmax($0) == ref.argmax($0) ? 1 : 0 }
    case .cosine:
        let ref = reference ?? outputs
        return (0..<outputs.rows).map { 100 * cosineSimilarity(outputs.row($0), ref.row($0)) }
    case .retrieval, .retrieval5:
        return retrievalScores(outputs: outputs, reference: reference ?? outputs, k: metric == .retrieval ? 1 : 5)
    case .map50, .map50_95, .boxAgreement:
        // Split-level metrics with no per-sample decomposition: DetectionMetrics.score.
        return []
    case .ctcExact, .ctcAgreement:
        // They need the blank and the class axis: CTCScorer.
        return []
    }
}

/// Cosine similarity of two vectors; 1 when both are zero (identical), 0 when one is.
public func cosineSimilarity(_ a: ArraySlice<Float>, _ b: ArraySlice<Float>) -> Double {
    var dot = 0.0, na = 0.0, nb = 0.0
    for (x, y) in zip(a, b) { dot += Double(x) * Double(y); na += Double(x) * Double(x); nb += Double(y) * Double(y) }
    if na == 0 && nb == 0 { return 1 }
    if na == 0 || nb == 0 { return 0 }
    return dot / (na.squareRoot() * nb.squareRoot())
}

/// The metric in points.
public func score(_ metric: Metric, outputs: Outputs, labels: [Int64]?, reference: Outputs?) -> Double {
    if metric == .boxAgreement { return DetectionMetrics.score(metric, outputs: outputs, reference: reference, truth: nil) }
    let s = sampleScores(metric, outputs: outputs, labels: labels, reference: reference)
    guard !s.isEmpty else { return 0 }
    return metric.pointsPerSample * s.reduce(0, +) / Double(s.count)
}
