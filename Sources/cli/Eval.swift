import ArgumentParser
import Foundation
import Kernels
import ONNX
import Search

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Evaluate a model on a data set and print the metric in points (0-100).")

    @Argument(help: "The ONNX model.") var model: String
    @Option(help: "The .npz data: arrays named after the model inputs, labels under 'labels' (or a folder of .npz shards with the same arrays, concatenated in name order; or one .npy holding a single-input model's samples, for label-free metrics; large inputs are read batch by batch).") var data: String
    @OptionGroup var scoring: ScoringOptions
    var metric: Metric { scoring.metric }
    var pool: Pooling { scoring.pool }
    var mask: String { scoring.mask }
    var detectionFlags: DetectionFlags { scoring.detectionFlags }
    @Option(help: "Samples per batch.") var batchSize: Int = 64
    @Option(help: "The graph output to score (default: the first).") var output: String?
    @OptionGroup var precisionOptions: PrecisionOptions
    @Option(help: "Also write the scored output of every sample to this .npz (under the output's name).") var saveOutputs: String?
    @Flag(help: "Print one JSON object.") var json = false
    @Flag(help: "No progress lines on stderr.") var quiet = false

    func validate() throws {
        try checkRange("--batch-size", batchSize, 1...largestCount)
    }

    struct Report: Codable {
        let model: String
        let data: String
        let metric: String
        let score: Double
        let samples: Int
        let seconds: Double
        let samplesPerSecond: Double
        let precision: String
        let int8Layers: Int
        let quantizableLayers: Int
        let kernelPath: String
    }

    func run() throws {
        try checkOutputs(saveOutputs)
        Progress.quiet = quiet
        let model = try loadModel(self.model)
        let dataset = try Dataset(path: data, graph: model.graph, allowNonfinite: precisionOptions.allowNonfinite)
        let scorer = scoring.scorer()
        try scorer.validate(dataset)
        // A detector's layout is resolved before anything runs, announced once the run
        // succeeded: an error must be the first thing on stderr.
        let detection = scorer as? DetectionScorer
        try detection?.resolveLayout(session: model.session, data: dataset, outputName: output)
        let runtime = try precisionOptions.makeRuntime(model, batchSize: batchSize)
        let evaluator = try Evaluator(session: model.session, dataset: dataset, batchSize: batchSize, outputName: output,
                                      transform: OutputTransform(pooling: pool, mask: mask), scorer: scorer)
        // Agreement compares with the FP32 model: run it first, without INT8 routes. Its rows
        // wait on disk (RowSpool) and come back a batch at a time (docs/scale.md, "Outputs").
        var reference: RowSpool?
        if scorer.needsReference, let runtime {
            let map = runtime.map
            try runtime.apply(runtime.allFP32)
            try evaluator.forEachBatch(progress: Progress(label: "fp32 reference").update) { _, batch in
                if reference == nil { reference = try RowSpool(width: batch.width, sampleShape: batch.sampleShape) }
                try reference!.append(batch.values)
            }
            try runtime.apply(map)
        }
        // A per-sample metric keeps its points; a split-level one spools the rows it scores
        // (detections, pooled embeddings, a command's outputs), as --save-outputs does.
        var points: [Double] = []
        var first: Outputs?
        var saved: RowSpool?
        let start = Date()
        try evaluator.forEachBatch(progress: Progress(label: "eval").update) { range, batch in
            if first == nil {
                try scorer.check(batch, data: dataset, output: evaluator.outputName)
                first = batch
                if saveOutputs != nil || !scorer.scoresBatchwise { saved = try RowSpool(width: batch.width, sampleShape: batch.sampleShape) }
            }
            try saved?.append(batch.values)
            if scorer.scoresBatchwise {
                let ref = try reference?.outputs(range) ?? batch
                points += try scorer.score(batch, reference: ref, data: dataset, range: range).points ?? []
            }
        }
        let seconds = Date().timeIntervalSince(start)
        let s: Double
        if scorer.scoresBatchwise {
            s = SplitScores.perSample(points).score
        } else {
            s = try scorer.score(spooled: saved!, reference: reference ?? saved!, data: dataset, range: 0..<dataset.count).score
        }
        if let detection { scoring.detectionFlags.announce(detection.options) }
        if let saveOutputs, let saved {
            let rowBytes = saved.width * MemoryLayout<Float>.size
            try Numpy.writeNPZ(streaming: [NPZEntrySource(name: evaluator.outputName, dtype: .float32, shape: [saved.rows, saved.width],
                                                          dataBytes: saved.rows * rowBytes, read: saved.bytes(at:count:))], path: saveOutputs)
        }
        let int8 = runtime?.map.int8Layers.count ?? 0
        let precisionName = runtime == nil ? "fp32" : (precisionOptions.precision == "int8" || precisionOptions.precision == "fp32" ? precisionOptions.precision : "mixed")
        let report = Report(model: self.model, data: data, metric: scorer.name, score: (s * 100).rounded() / 100,
                            samples: dataset.count, seconds: seconds,
                            samplesPerSecond: seconds > 0 ? Double(dataset.count) / seconds : 0, precision: precisionName,
                            int8Layers: int8, quantizableLayers: MixedPrecisionRuntime.quantizableNodes(model.session).count,
                            kernelPath: runtime.map { $0.path.resolved.rawValue } ?? "none")
        if json {
            print(try jsonString(report))
        } else {
            print("\(scorer.name): \(String(format: "%.2f", s)) on \(dataset.count) samples (\(precisionName), \(int8)/\(report.quantizableLayers) layers INT8\(runtime == nil ? "" : ", kernels: " + report.kernelPath))")
            print(String(format: "throughput: %.1f samples/s (%.3f s)", report.samplesPerSecond, seconds))
        }
    }
}

