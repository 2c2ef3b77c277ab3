// mpq-bench: release-build benchmarks, one subcommand each. Never run by `swift test`.
//   swift run -c release mpq-bench <subcommand> [options]
// Add a subcommand by adding one entry to `subcommands` and its own file.
import Foundation

let subcommands: [(name: String, summary: String, run: ([String]) -> Int32)] = [
    ("gemm", "INT8 GEMM per kernel path vs OpenBLAS sgemm, and the VNNI peak", GemmBench.main),
    ("im2col", "uint8 im2col variants on typical conv layers, next to their GEMM", Im2colBench.main),
    ("depthwise", "depthwise INT8 (every path) and FP32 kernels on MobileNetV2 shapes", DepthwiseBench.main),
    ("model", "whole-model latency, FP32 vs all-INT8, on the fixtures", ModelBench.main),
]

let arguments = Array(CommandLine.arguments.dropFirst())
guard let name = arguments.first, let command = subcommands.first(where: { $0.name == name }) else {
    print("usage: mpq-bench <subcommand> [options]\nsubcommands:")
    for c in subcommands { print("  \(c.name)\t\(c.summary)") }
    exit(arguments.isEmpty || arguments.first == "--help" ? 0 : 2)
}
exit(command.run(Array(arguments.dropFirst())))
