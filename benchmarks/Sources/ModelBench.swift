import CKernels
import Foundation
import Kernels
import ONNX
import Search

/// Whole-model latency in mpq: FP32 against all-INT8 under both schemes (minmax calibration
/// on the model's calibration data), per batch size, measured side by side in one run.
///
///     mpq-bench model [FIXTURES_DIR] [NAME=MODEL.onnx,CALIB.npz ...]
///
/// Without model arguments: the committed fixtures. Each `NAME=...` adds a model (the
/// generated ResNet/MobileNet shapes of benchmarks/models/resnet_shaped.py, for example).
enum ModelBench {
    static let warmup = 3
    static let iterations = Int(ProcessInfo.processInfo.environment["MPQ_BENCH_RUNS"] ?? "") ?? 15  // MPQ_BENCH_RUNS: more, for perf

    /// MPQ_BENCH_BATCHES=1,16: the batch sizes to time (default per model), e.g. one batch size
    /// alone under `perf record`.
    static let batches: [Int]? = ProcessInfo.processInfo.environment["MPQ_BENCH_BATCHES"].map {
        $0.split(separator: ",").compactMap { Int($0) }.filter { $0 > 0 }
    }.flatMap { $0.isEmpty ? nil : $0 }

    /// MPQ_BENCH_ONLY=fp32|inputs|ort: time one column alone (the others print 0), for profiling
    /// it under perf and for quicker A/B runs.
    static let only = ProcessInfo.processInfo.environment["MPQ_BENCH_ONLY"]

    /// MPQ_BENCH_WEIGHT_BITS=7: the INT8 columns with 7-bit weights (`--weight-bits 7`).
    static let weightBits = WeightBits(rawValue: Int(ProcessInfo.processInfo.environment["MPQ_BENCH_WEIGHT_BITS"] ?? "") ?? 8) ?? .eight

    static func timed(_ column: String) -> Bool { only == nil || only == column }

    struct Case { let name: String; let model: String; let calibration: String; let batches: [Int] }

    static func cases(_ args: [String]) -> [Case] {
        let extra = args.filter { $0.contains("=") }
        if !extra.isEmpty {
            return extra.compactMap { arg in
                let parts = arg.split(separator: "=", maxSplits: 1)
                let files = parts[1].split(separator: ",").map(String.init)
                guard files.count == 2 else { return nil }
                return Case(name: String(parts[0]), model: files[0], calibration: files[1], batches: batches ?? [1, 16])
            }
        }
        let root = args.first ?? "Tests/Fixtures"
        return [("digits_cnn", "digits"), ("tabular_mlp", "breast_cancer"), ("breast_cancer_raw_mlp", "breast_cancer_raw_mlp"),
                ("text_encoder", "text_encoder")].map {
            Case(name: $0.0, model: "\(root)/\($0.0).onnx", calibration: "\(root)/\($0.1)_calib.npz", batches: batches ?? [1, 64])
        } + [Case(name: "shapes_det", model: "\(root)/detection/shapes_det.onnx",
                  calibration: "\(root)/detection/shapes_det_calib.npz", batches: batches ?? [1, 16])]
    }

    static func main(_ args: [String]) -> Int32 {
        print("model latency, min / median ms per batch over \(iterations) runs after \(warmup) warm-up; kernels: \(KernelPath.auto.resolved.rawValue), INT8 GEMM engine: \(String(cString: mpq_qgemm_engine_name(MPQ_PATH_AUTO)))")
        print("model                   batch   fp32 min  fp32 med   int8(inputs) min/med   int8(ort) min/med   inputs/fp32  ort/fp32 (min)")
        for c in cases(args) {
            guard FileManager.default.fileExists(atPath: c.model) else { continue }
            do {
                let graph = try ModelLoader.load(path: c.model)
                let session = try Session(graph: GraphPasses.optimize(graph))
                let calib = try Dataset(path: c.calibration, graph: graph)
                let table = try Calibrator(session: session, scheme: .ort).calibrate(
                    dataset: calib, options: CalibrationOptions(method: .minmax), modelDigest: graph.digest)
                let inputs = try MixedPrecisionRuntime(session: session, calibration: table, scheme: .inputs, weightBits: weightBits)
                let ort = try MixedPrecisionRuntime(session: session, calibration: table, scheme: .ort, weightBits: weightBits)
                for batch in Set(c.batches.map { min($0, calib.count) }).sorted() {
                    let feeds = calib.batch(0..<batch)
                    let skipped = BenchTiming(seconds: [0])
                    try inputs.apply(inputs.allFP32)
                    let fp32 = !timed("fp32") ? skipped : BenchTiming.measure(warmup: warmup, iterations: iterations) { _ = try! session.run(feeds) }
                    try inputs.apply(inputs.allInt8)
                    let a = !timed("inputs") ? skipped : BenchTiming.measure(warmup: warmup, iterations: iterations) { _ = try! session.run(feeds) }
                    try ort.apply(ort.allInt8)
                    let b = !timed("ort") ? skipped : BenchTiming.measure(warmup: warmup, iterations: iterations) { _ = try! session.run(feeds) }
                    print(String(format: "%@ %5d  %9.3f %9.3f  %9.3f %9.3f  %9.3f %9.3f   %9.2f %9.2f", c.name.padding(toLength: 22, withPad: " ", startingAt: 0),
                                 batch, fp32.min * 1e3, fp32.median * 1e3, a.min * 1e3, a.median * 1e3, b.min * 1e3, b.median * 1e3,
                                 a.min / fp32.min, b.min / fp32.min))
                }
            } catch {
                print("\(c.name): \(error)")
                return 1
            }
        }
        return 0
    }
}
