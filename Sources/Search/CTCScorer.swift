import Foundation
import ONNX

/// Greedy CTC decoding of a sequence output [N, T, C] (docs/metrics.md): arg-max per step,
/// repeats collapsed, blanks dropped. `ctc-exact` scores a hit when the decoded sequence
/// equals the sample's `labels` row [L] (padded with the ignore index); `ctc-agreement` when
/// it equals the FP32 model's decoded sequence.
public final class CTCScorer: Scorer {
    public let metric: Metric
    public let blank: Int
    public let ignoreIndex: Int64
    public let classAxis: Int

    public init(_ metric: Metric, blank: Int = 0, ignoreIndex: Int64 = -100, classAxis: Int = -1) {
        precondition(metric == .ctcExact || metric == .ctcAgreement, "not a CTC metric: \(metric)")
        self.metric = metric; self.blank = blank; self.ignoreIndex = ignoreIndex; self.classAxis = classAxis
    }

    public var name: String { metric.rawValue }
    public var settings: String { " blank \(blank) ignore-index \(ignoreIndex) class-axis \(classAxis)" }
    public var needsReference: Bool { metric == .ctcAgreement }
    public var scoresBatchwise: Bool { true }
    public func hasBinarySamples(_ outputs: Outputs) -> Bool { true }

    public func validate(_ data: Dataset) throws {
        guard metric == .ctcExact else { return }
        guard data.labels != nil else { throw MetricError.missingLabels(metric: metric.rawValue, path: data.path) }
        guard data.labelsPerSample >= 2 else {
            throw MetricError.badLabels(path: data.path, reason: "must be [N, L] target sequences padded with \(ignoreIndex) for ctc-exact, they are [N]")
        }
    }

    public func check(_ outputs: Outputs, data: Dataset, output: String) throws {
        let layout = try self.layout(outputs, output: output)
        guard blank >= 0 && blank < layout.classes else {
            throw MetricError.badOutput(output: output, reason: "--blank \(blank) is not one of its \(layout.classes) classes")
        }
        guard metric == .ctcExact, let labels = data.labels else { return }
        try layout.checkLabels(labels, ignoreIndex: ignoreIndex, path: data.path, output: output, perSample: data.labelsPerSample)
        if let k = labels.firstIndex(of: Int64(blank)) {
            throw MetricError.badLabels(path: data.path, reason: "row \(k / data.labelsPerSample) holds the blank \(blank) (--blank): targets are non-blank classes")
        }
    }

    func layout(_ outputs: Outputs, output: String) throws -> ClassLayout {
        guard ClassLayout.isSequence(outputs) else {
            throw MetricError.badOutput(output: output, reason: "\(metric.rawValue) needs a sequence output [N, T, C], the model gives \(Tensor.describe([outputs.rows] + outputs.sampleShape))")
        }
        return try ClassLayout(outputs.sampleShape, classAxis: classAxis, output: output)
    }

    /// The greedy decoding of `sample`: arg-max per position, repeats collapsed, blanks dropped.
    public func decode(_ o: Outputs, _ sample: Int, layout: ClassLayout) -> [Int64] {
        var out: [Int64] = []
        var previous = -1
        for t in 0..<layout.positions {
            let c = layout.argmax(o, sample, t)
            if c != previous && c != blank { out.append(Int64(c)) }
            previous = c
        }
        return out
    }

    public func score(_ outputs: Outputs, reference: Outputs?, data: Dataset, range: Range<Int>) throws -> SplitScores {
        let layout = try self.layout(outputs, output: "output")
        let ref = reference ?? outputs
        let labels = data.labels(range)
        let width = data.labelsPerSample
        return .perSample((0..<outputs.rows).map { i in
            let got = decode(outputs, i, layout: layout)
            let want: [Int64]
            if metric == .ctcAgreement {
                want = decode(ref, i, layout: layout)
            } else {
                guard let labels else { return 0 }
                want = labels[i * width..<(i + 1) * width].filter { $0 != ignoreIndex }
            }
            return got == want ? 100 : 0
        })
    }
}
