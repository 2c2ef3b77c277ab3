import ArgumentParser
import Foundation
import Kernels
import ONNX
import Search

struct Report: ParsableCommand {
    enum Format: String, ExpressibleByArgument, CaseIterable { case html, markdown }

    static let configuration = CommandConfiguration(
        abstract: "Write a self-contained HTML (or Markdown) report of a precision map and, optionally, a sweep.")

    @Argument(help: "The precision map (from mpq search).") var map: String
    @Argument(help: "A sweep (from mpq sweep), optional.") var sweep: String?
    @Option(help: "Where to write the report.") var out: String
    @Option(help: "html or markdown (for CI comments).") var format: Format = .html
    @Option(help: "Measure latency per sample with this data (.npz); needs --calibration.") var latencyData: String?
    @Option(help: "Calibration data (.npz) or table (.json) for the latency measurement.") var calibration: String?
    @Flag(help: "Accept NaN and infinite values in float input arrays (by default they are an error naming the array and row).")
    var allowNonfinite = false

    func validate() throws {
        if latencyData != nil && calibration == nil { throw ValidationError("--latency-data needs --calibration") }
    }

    func run() throws {
        try checkOutputs(out)
        try FileKind.requireRegularFile(map, expected: "a precision map (.json)")
        guard let data = FileManager.default.contents(atPath: map) else { throw ModelError.fileNotFound(path: map) }
        let document: PrecisionMapDocument
        do { document = try PrecisionMapDocument.decode(data) } catch {
            throw CLIError("\(map) is not a precision map written by mpq search (\(error))")
        }
        var input = ReportInput(map: document)
        if let sweep {
            try FileKind.requireRegularFile(sweep, expected: "a sweep (.json)")
            guard let d = FileManager.default.contents(atPath: sweep) else { throw ModelError.fileNotFound(path: sweep) }
            do { input.sweep = try ReportInput.sweepRows(d) } catch { throw CLIError("\(sweep) is not a sweep written by mpq sweep (\(error))") }
        }
        if let latencyData, let calibration {
            input.latency = try measureLatency(document, data: latencyData, calibration: calibration)
        }
        let text = format == .html ? HTMLReport.render(input) : MarkdownReport.render(input)
        try writeAtomically(text, to: out)
        print("report written to \(out)")
    }

    /// Seconds per sample for FP32, all-INT8 and the map, best of 5 runs over one batch.
    func measureLatency(_ d: PrecisionMapDocument, data: String, calibration: String) throws -> (fp32: Double, int8All: Double, mixed: Double) {
        let model = try loadModel(d.model.path)
        let scheme = d.scheme.flatMap(ExecutionScheme.init(rawValue:)) ?? .inputs
        let options = try PrecisionOptions.parse(["--precision", "fp32", "--calibration", calibration, "--scheme", scheme.rawValue]
                                                 + (allowNonfinite ? ["--allow-nonfinite"] : []))
        let table = try options.calibrationTable(for: model, batchSize: 64)
        let runtime = try MixedPrecisionRuntime(session: model.session, calibration: table, scheme: scheme,
                                                weightBits: d.weightBits.flatMap(WeightBits.init(rawValue:)) ?? .eight)
        let dataset = try Dataset(path: data, graph: model.graph, allowNonfinite: allowNonfinite)
        let feeds = dataset.batch(0..<min(64, dataset.count))
        let rows = Double(min(64, dataset.count))
        func time(_ map: PrecisionMap) throws -> Double {
            try runtime.apply(map)
            _ = try model.session.run(feeds)
            var best = Double.infinity
            for _ in 0..<5 {
                let start = Date()
                _ = try model.session.run(feeds)
                best = min(best, Date().timeIntervalSince(start))
            }
            return best / rows
        }
        return (try time(runtime.allFP32), try time(runtime.allInt8), try time(d.precisionMap))
    }
}
