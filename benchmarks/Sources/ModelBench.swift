import Foundation
import Kernels
import ONNX
import Search

/// Whole-model latency in mpq: FP32 against all-INT8 (minmax calibration on the fixture's
/// calibration split), per batch size, measured side by side in one run.
enum ModelBench {
    static let warmup = 3
    static let iterations = 15

    static func main(_ args: [String]) -> Int32 {
        let root = args.first ?? "Tests/Fixtures"
        let models = [("digits_cnn", "digits"), ("tabular_mlp", "breast_cancer"), ("breast_cancer_raw_mlp", "breast_cancer_raw_mlp"),
                      ("text_encoder", "text_encoder")]
        print("model latency, min / median ms per batch over \(iterations) runs after \(warmup) warm-up; kernels: \(KernelPath.auto.resolved.rawValue)")
        print("model                   batch   fp32 min  fp32 med   int8 min  int8 med   int8/fp32 (min)")
        for (name, data) in models {
            let path = "\(root)/\(name).onnx"
            guard FileManager.default.fileExists(atPath: path) else { continue }
            do {
                let graph = try ModelLoader.load(path: path)
                let session = try Session(graph: GraphPasses.optimize(graph))
                let calib = try Dataset(path: "\(root)/\(data)_calib.npz", graph: graph)
                let table = try Calibrator(session: session).calibrate(dataset: calib, options: CalibrationOptions(method: .minmax),
                                                                       modelDigest: graph.digest)
                let runtime = try MixedPrecisionRuntime(session: session, calibration: table)
                for batch in Set([1, min(64, calib.count)]).sorted() {
                    let feeds = calib.batch(0..<batch)
                    try runtime.apply(runtime.allFP32)
                    let fp32 = BenchTiming.measure(warmup: warmup, iterations: iterations) { _ = try! session.run(feeds) }
                    try runtime.apply(runtime.allInt8)
                    let int8 = BenchTiming.measure(warmup: warmup, iterations: iterations) { _ = try! session.run(feeds) }
                    print(String(format: "%@ %5d  %9.3f %9.3f  %9.3f %9.3f   %6.2f", name.padding(toLength: 22, withPad: " ", startingAt: 0), batch,
                                 fp32.min * 1e3, fp32.median * 1e3, int8.min * 1e3, int8.median * 1e3, int8.min / fp32.min))
                }
            } catch {
                print("\(name): \(error)")
                return 1
            }
        }
        return 0
    }
}
