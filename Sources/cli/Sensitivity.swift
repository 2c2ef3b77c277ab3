import ArgumentParser
import Foundation
import Kernels
import Search

struct Sensitivity: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure each quantizable layer's sensitivity on the search split (drop alone in INT8, recovery alone in FP32, SQNR, KL).")

    @Argument(help: "The ONNX model.") var model: String
    @OptionGroup var splits: SplitOptions
    @OptionGroup var common: SearchCommonOptions
    @Option(help: "Write the report as JSON here.") var out: String?
    @OptionGroup var sharding: ShardOptions

    func run() throws {
        try checkOutputs(out)
        let shard = try sharding.resolved()
        if shard != nil && out == nil { throw CLIError("--shard needs --out PART.json (the part that mpq merge combines)") }
        let context = try SearchContext(modelPath: model, splits: splits, common: common, measureLatency: false)
        // Always measured here (a budget is what `auto` would skip it for).
        let report = try context.sensitivity(statePath: try statePath(common.state, "sensitivity.json"), mode: .always,
                                             smallestBudget: Budget(value: 0), splits: splits, key: try context.runKey(splits), shard: shard)
        let json = try jsonString(report)
        if let out { try writeAtomically(json + "\n", to: out) }
        if common.json { print(json); return }
        print("metric \(report.metric) on \(report.searchSamples) search samples: FP32 \(String(format: "%.2f", report.fp32)), all-INT8 \(String(format: "%.2f", report.allInt8.score)) (drop \(String(format: "%.2f", report.allInt8.drop)))")
        let w = max(5, report.layers.map(\.name.count).max() ?? 5)
        func pad(_ s: String) -> String { s + String(repeating: " ", count: max(0, w - s.count)) }
        print(pad("layer"), "op      ", "drop alone", " recovery", " SQNR dB", "      KL")
        for l in report.layers {
            print(pad(l.name), l.op.padding(toLength: 8, withPad: " ", startingAt: 0),
                  String(format: "%10.3f %9.3f %8.1f %8.5f", l.aloneInt8.drop, l.recovery, l.aloneInt8.sqnr ?? 0, l.aloneInt8.kl ?? 0))
        }
        print(String(format: "cost: %.2f full-model-equivalent evaluations for %d layers (%d candidate evaluations)",
                     report.fullModelEquivalents, report.layers.count, report.evaluations))
        print(context.evaluator.cacheStatistics.summary)
    }
}
