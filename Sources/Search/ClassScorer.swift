import Foundation
import ONNX

/// Top-1, top-5 (against `labels`) and top-1 agreement with FP32. An output [N, C] scores
/// one hit per sample; an output with more dimensions ([N, T, C], docs/metrics.md) is
/// scored at every position along the class axis, against labels [N, T] where the ignore
/// index marks positions that do not count, and a sample scores its share of correct
/// positions, so confidence intervals stay per sample.
public final class ClassScorer: Scorer {
    public let metric: Metric
    /// Axis of the classes in the full output (negative: from the end).
    public let classAxis: Int
    /// Label value of positions that do not count (PyTorch's `ignore_index`).
    public let ignoreIndex: Int64

    public init(_ metric: Metric, classAxis: Int = -1, ignoreIndex: Int64 = -100) {
        precondition(metric == .top1 || metric == .top5 || metric == .agreement, "not a class metric: \(metric)")
        self.metric = metric; self.classAxis = classAxis; self.ignoreIndex = ignoreIndex
    }

    public var name: String { metric.rawValue }
    public var settings: String {
        classAxis == -1 && ignoreIndex == -100 ? "" : " class-axis \(classAxis) ignore-index \(ignoreIndex)"
    }
    public var needsReference: Bool { metric == .agreement }
    public var scoresBatchwise: Bool { true }
    /// Shares of positions are not hits.
    public func hasBinarySamples(_ outputs: Outputs) -> Bool { !ClassLayout.isSequence(outputs) }

    public func validate(_ data: Dataset) throws {
        if metric.needsLabels && data.labels == nil { throw MetricError.missingLabels(metric: metric.rawValue, path: data.path) }
    }

    public func check(_ outputs: Outputs, data: Dataset, output: String) throws {
        guard metric.needsLabels, let labels = data.labels else { return }
        guard ClassLayout.isSequence(outputs) else {
            guard data.labelsPerSample == 1 else {
                throw MetricError.badLabels(path: data.path, reason: "are [N, \(data.labelsPerSample)] per position, but output '\(output)' gives one prediction per sample \(Tensor.describe([outputs.rows] + outputs.sampleShape)); use labels [N]")
            }
            return try checkLabels(metric, labels: labels, classes: outputs.width, path: data.path, output: output)
        }
        let layout = try ClassLayout(outputs.sampleShape, classAxis: classAxis, output: output)
        guard data.labelsPerSample == layout.positions, labels.count == data.count * layout.positions else {
            throw MetricError.badLabels(path: data.path, reason: "must be [N, \(layout.positions)], one class per position of output '\(output)' \(Tensor.describe([outputs.rows] + outputs.sampleShape)) with classes on axis \(classAxis), they are [N, \(data.labelsPerSample)]")
        }
        try layout.checkLabels(labels, ignoreIndex: ignoreIndex, path: data.path, output: output)
    }

    public func score(_ outputs: Outputs, reference: Outputs?, data: Dataset, range: Range<Int>) throws -> SplitScores {
        guard ClassLayout.isSequence(outputs) else {
            return .perSample(sampleScores(metric, outputs: outputs, labels: data.labels(range), reference: reference)
                .map { $0 * metric.pointsPerSample })
        }
        let layout = try ClassLayout(outputs.sampleShape, classAxis: classAxis, output: "output")
        let labels = data.labels(range)
        let ref = reference ?? outputs
        let p = layout.positions
        return .perSample((0..<outputs.rows).map { i in
            var counted = 0, correct = 0
            for pos in 0..<p {
                let hit: Bool
                switch metric {
                case .agreement:
                    hit = layout.argmax(outputs, i, pos) == layout.argmax(ref, i, pos)
                default:
                    guard let labels else { return 0 }
                    let want = labels[i * p + pos]
                    if want == ignoreIndex { continue }
                    hit = metric == .top1 ? layout.argmax(outputs, i, pos) == Int(want)
                                          : layout.topK(outputs, i, pos, 5).contains(Int(want))
                }
                counted += 1
                if hit { correct += 1 }
            }
            // A sample whose every position is ignored has nothing wrong.
            return counted == 0 ? 100 : 100 * Double(correct) / Double(counted)
        })
    }
}
