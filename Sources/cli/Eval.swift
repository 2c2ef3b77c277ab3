import ArgumentParser
import Foundation
import Kernels
import ONNX
import Search

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Evaluate a model on a data set and print the metric in points (0-100).")

    @Argument(help: "The ONNX model.") var model: String
    @Option(help: "The .npz data: arrays named after the model inputs, labels under 'labels' (or a folder of .npz shards with the same arrays, concatenated in name order; large inputs are read batch by batch).") var data: String
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
        // Agreement compares with the FP32 model: run it first, without INT8 routes.
        var reference: Outputs?
        if scorer.needsReference, let runtime {
            let map = runtime.map
            try runtime.apply(runtime.allFP32)
            reference = try evaluator.run(progress: Progress(label: "fp32 reference").update)
            try runtime.apply(map)
        }
        let start = Date()
        let outputs = try evaluator.run(progress: Progress(label: "eval").update)
        let seconds = Date().timeIntervalSince(start)
        try scorer.check(outputs, data: dataset, output: evaluator.outputName)
        let s = try scorer.score(outputs, reference: reference ?? outputs, data: dataset, range: 0..<dataset.count).score
        if let detection { scoring.detectionFlags.announce(detection.options) }
        if let saveOutputs {
            try Numpy.writeNPZ([evaluator.outputName: Tensor(shape: [outputs.rows, outputs.width], floats: outputs.values)], path: saveOutputs)
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

