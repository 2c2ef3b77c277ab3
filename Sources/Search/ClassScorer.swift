import Foundation
import ONNX

/// Top-1, top-5 (against `labels`) and top-1 agreement with FP32: one hit per sample.
public final class ClassScorer: Scorer {
    public let metric: Metric

    public init(_ metric: Metric) {
        precondition(metric == .top1 || metric == .top5 || metric == .agreement, "not a class metric: \(metric)")
        self.metric = metric
    }

    public var name: String { metric.rawValue }
    public var needsReference: Bool { metric == .agreement }
    public var scoresBatchwise: Bool { true }
    public func hasBinarySamples(_ outputs: Outputs) -> Bool { true }

    public func validate(_ data: Dataset) throws {
        if metric.needsLabels && data.labels == nil { throw MetricError.missingLabels(metric: metric.rawValue, path: data.path) }
    }

    public func check(_ outputs: Outputs, data: Dataset, output: String) throws {
        try checkLabels(metric, labels: data.labels, classes: outputs.width, path: data.path, output: output)
    }

    public func score(_ outputs: Outputs, reference: Outputs?, data: Dataset, range: Range<Int>) throws -> SplitScores {
        .perSample(sampleScores(metric, outputs: outputs, labels: data.labels(range), reference: reference)
            .map { $0 * metric.pointsPerSample })
    }
}
