import ArgumentParser
import Foundation
import Kernels
import ONNX
import Search

struct Calibrate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compute the ranges of the tensors INT8 layers read, from calibration data, and write them as JSON.")

    @Argument(help: "The ONNX model.") var model: String
    @Option(help: "The .npz calibration data: arrays named after the model inputs.") var data: String
    @Option(help: "minmax, percentile, entropy or mse.") var method: CalibrationMethod = .minmax
    @Option(help: "Percentile of |x| kept by --method percentile, in (0, 100].", transform: decimal) var percentile: Double = 99.999
    @Option(help: "Histogram bins per tensor (percentile, entropy, mse).") var bins: Int = 2048
    @Option(help: "Samples per batch.") var batchSize: Int = 64
    @Option(help: "Tensors to calibrate: inputs (what INT8 layers read) or ort (also layer outputs and the activations around Add, Concat, pooling...).")
    var scheme: ExecutionScheme = .ort
    @Option(help: "Where to write the calibration table (JSON).") var out: String
    @Flag(help: "Print nothing but errors.") var quiet = false
    @Flag(help: "Accept NaN and infinite values in float input arrays (by default they are an error naming the array and row).")
    var allowNonfinite = false

    var options: CalibrationOptions {
        CalibrationOptions(method: method, percentile: percentile, bins: bins, batchSize: batchSize)
    }

    func validate() throws {
        try checkRange("--batch-size", batchSize, 1...largestCount)
        guard percentile > 0 && percentile <= 100 else {
            throw ValidationError("--percentile must be in (0, 100], got \(percentile)")
        }
        guard bins >= 1 else { throw ValidationError("--bins must be at least 1, got \(bins)") }
        guard bins <= 1 << 20 else { throw ValidationError("--bins must be at most \(1 << 20), got \(bins)") }
        if let problem = options.problem { throw ValidationError("--bins: \(problem)") }
    }

    func run() throws {
        try checkOutputs(out)
        Progress.quiet = quiet
        try FileKind.requireRegularFile(model, expected: "an ONNX file")
        let graph = try ModelLoader.load(path: model)
        let digest = graph.digest                       // of the graph as loaded: docs/calibration.md
        let session = try Session(graph: GraphPasses.optimize(graph))
        let dataset = try Dataset(path: data, graph: session.graph, allowNonfinite: allowNonfinite)
        let calibrator = Calibrator(session: session, scheme: scheme)
        guard !calibrator.tensors.isEmpty else {
            throw CLIError("\(model) has no quantizable layer (Conv, ConvTranspose, Gemm, MatMul with constant weights): nothing to calibrate")
        }
        let passes = method.needsHistogram ? 2 : 1
        let bars = (1...passes).map { Progress(label: "calibrate pass \($0)/\(passes)") }
        let table = try calibrator.calibrate(dataset: dataset, options: options, modelDigest: digest) { pass, done, total in
            bars[pass.rawValue - 1].update(done, total)
        }
        try writeAtomically(String(decoding: try table.jsonData(), as: UTF8.self), to: out)
        if quiet { return }
        func pad(_ s: String, _ w: Int) -> String { s.count >= w ? s : s + String(repeating: " ", count: w - s.count) }
        func lpad(_ s: String, _ w: Int) -> String { s.count >= w ? s : String(repeating: " ", count: w - s.count) + s }
        let width = min(48, max(6, calibrator.tensors.map(\.count).max() ?? 6))
        print(pad("tensor", width), lpad("min", 12), lpad("max", 12), lpad("scale", 12), lpad("zp", 4))
        for name in calibrator.tensors {
            guard let r = table.ranges[name], let q = table.quant(for: name) else { continue }
            print(pad(name, width), lpad(String(format: "%.6g", r.min), 12), lpad(String(format: "%.6g", r.max), 12),
                  lpad(String(format: "%.6g", q.scale), 12), lpad(String(q.zeroPoint), 4))
        }
        print("\(method.rawValue): \(table.ranges.count) tensors from \(dataset.count) samples, written to \(out)")
    }
}

extension CalibrationMethod: ExpressibleByArgument {}
