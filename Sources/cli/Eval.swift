import ArgumentParser
import Foundation
import Kernels
import ONNX
import Search

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Evaluate a model on a data set and print the metric in points (0-100).")

    @Argument(help: "The ONNX model.") var model: String
    @Option(help: "The .npz data: arrays named after the model inputs, labels under 'labels'.") var data: String
    @Option(help: "top1, top5 (need labels) or agreement (top-1 agreement with FP32).") var metric: Metric = .top1
    @Option(help: "Samples per batch.") var batchSize: Int = 64
    @Option(help: "The graph output to score (default: the first).") var output: String?
    @Flag(help: "Print one JSON object.") var json = false

    func validate() throws {
        guard batchSize >= 1 else { throw ValidationError("--batch-size must be at least 1, got \(batchSize)") }
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
    }

    func run() throws {
        let session = try loadSession(model)
        let dataset = try Dataset(path: data, graph: session.graph)
        if metric.needsLabels && dataset.labels == nil {
            throw MetricError.missingLabels(metric: metric.rawValue, path: data)
        }
        let evaluator = try Evaluator(session: session, dataset: dataset, batchSize: batchSize, outputName: output)
        let start = Date()
        let outputs = try evaluator.run(progress: Progress(label: "eval").update)
        let seconds = Date().timeIntervalSince(start)
        let s = score(metric, outputs: outputs, labels: dataset.labels, reference: nil)
        let report = Report(model: model, data: data, metric: metric.rawValue, score: (s * 100).rounded() / 100,
                            samples: dataset.count, seconds: seconds,
                            samplesPerSecond: seconds > 0 ? Double(dataset.count) / seconds : 0, precision: "fp32")
        if json {
            print(try jsonString(report))
        } else {
            print("\(metric.rawValue): \(String(format: "%.2f", s)) on \(dataset.count) samples (fp32)")
            print(String(format: "throughput: %.1f samples/s (%.3f s)", report.samplesPerSecond, seconds))
        }
    }
}

extension Metric: ExpressibleByArgument {}
