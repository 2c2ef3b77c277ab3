import Foundation
import Kernels
import ONNX

/// Streams a dataset through a session batch by batch. `forEachBatch` hands each batch's
/// kept values to the caller and keeps none (memory: one batch, docs/scale.md "Outputs");
/// `run` collects every sample's values, for split-level metrics and tests.
public struct Evaluator {
    public let session: Session
    public let dataset: Dataset
    public let batchSize: Int
    /// The graph output scored; the first one by default.
    public let outputName: String
    /// Applied to every batch's output before it is kept (pooling token embeddings).
    public let transform: OutputTransform
    /// Decodes a detector's output per batch into boxes (docs/detection.md); nil keeps it raw.
    public let detection: DetectionOptions?
    /// Chooses the values kept per batch (Scorer.rows); nil keeps the output, pooled and decoded.
    public let scorer: Scorer?

    public init(session: Session, dataset: Dataset, batchSize: Int = 64, outputName: String? = nil,
                transform: OutputTransform = .identity, detection: DetectionOptions? = nil, scorer: Scorer? = nil) throws {
        self.detection = detection
        self.scorer = scorer
        try transform.check(dataset)
        self.session = session
        self.dataset = dataset
        self.batchSize = max(1, batchSize)
        self.transform = transform
        let names = session.graph.outputs.map(\.name)
        if let o = outputName {
            guard names.contains(o) else {
                throw MetricError.badOutput(output: o, reason: "not a graph output (outputs: \(names.joined(separator: ", ")))")
            }
            self.outputName = o
        } else {
            self.outputName = names[0]
        }
    }

    /// Runs every batch and keeps every sample's kept values: O(N x width). For split-level
    /// metrics (their scorer needs the whole split) and tests; scoring goes through `forEachBatch`.
    /// `progress` gets (samples done, total).
    public func run(progress: ((Int, Int) -> Void)? = nil) throws -> Outputs {
        var values: [Float] = []
        var width = 0
        var sampleShape: [Int]?
        try forEachBatch(progress: progress) { range, y in
            if sampleShape == nil { width = y.width; sampleShape = y.sampleShape; values.reserveCapacity(y.width * dataset.count) }
            values.append(contentsOf: y.values)
        }
        return Outputs(values: values, rows: dataset.count, width: width, sampleShape: sampleShape)
    }

    /// Runs every batch and hands each one's kept values (samples `range`, in data order) to
    /// `body`, keeping none of them: memory is one batch of outputs (docs/scale.md, "Outputs").
    public func forEachBatch(progress: ((Int, Int) -> Void)? = nil, _ body: (Range<Int>, Outputs) throws -> Void) throws {
        var width = -1
        var sampleShape: [Int]?
        var detection = self.detection
        let names = session.graph.outputs.map(\.name)
        if detection?.outputNames.isEmpty == true && outputName != names[0] { detection?.outputNames = [outputName] }
        let truthIDs = detection == nil ? [] : DetectionTruth.classIDs(dataset)
        for range in dataset.batches(size: batchSize) {
            let outs = try session.run(dataset.batch(range))
            var y: Tensor
            if let scorer {
                y = try scorer.rows(outs, output: outputName, transform: transform, data: dataset, range: range)
            } else if let d = detection {
                // Fixed on the first batch, checked against this split's ground-truth classes.
                let r = try d.resolved(outputs: outs, order: names, truthClasses: truthIDs, truthPath: dataset.path)
                detection = r
                y = try r.decode(outs, order: names)
            } else {
                guard let raw = outs[outputName] else {
                    throw MetricError.badOutput(output: outputName, reason: "the graph did not produce it")
                }
                y = try transform.apply(raw, dataset: dataset, range: range)
            }
            guard y.rank >= 1, y.shape[0] == range.count else {
                throw MetricError.badOutput(output: outputName, reason: "shape \(Tensor.describe(y.shape)) has no batch dimension of \(range.count)")
            }
            let w = y.count / range.count
            if width < 0 { width = w; sampleShape = Array(y.shape.dropFirst()) }
            try body(range, Outputs(values: y.asFloats, rows: range.count, width: width, sampleShape: sampleShape))
            progress?(range.upperBound, dataset.count)
        }
    }
}
