import ArgumentParser
import Foundation
import Kernels
import ONNX
import Search

/// `mpq profile`: where one batch's time goes, per node and per op type, in FP32 and (with
/// --precision) in INT8, side by side. The tool to find which layer is slow and why.
struct Profile: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Time every node of the model on one batch: per node and per op type, FP32 and the given precision side by side.")

    @Argument(help: "The ONNX model.") var model: String
    @Option(help: "The .npz data (the first batch is timed).") var data: String
    @Option(help: "Samples per batch.") var batchSize: Int = 16
    @Option(help: "Timed runs (after one warm-up); each node's median (or --statistic) is reported.") var runs: Int = 5
    @Option(help: "How the runs are summarised: median (the typical run) or min (the least disturbed run, to compare with another runtime's minima on a shared machine).")
    var statistic: RunStatistic = .median
    @Option(help: "Print the slowest N nodes (all with --json).") var top: Int = 20
    @OptionGroup var precisionOptions: PrecisionOptions
    @Flag(help: "Print one JSON object.") var json = false
    @Flag(help: "No progress lines on stderr.") var quiet = false

    func validate() throws {
        try checkRange("--batch-size", batchSize, 1...largestCount)
        try checkRange("--runs", runs, 1...10_000)
        try checkRange("--top", top, 1...largestCount)
    }

    struct Row: Codable {
        let name: String
        let op: String
        let int8: Bool
        let macs: Int
        let fp32Ms: Double
        let fp32Share: Double
        let ms: Double?
        let share: Double?
        /// The kernel an INT8 Conv/Gemm/MatMul ran in the timed runs, as the runtime reported it
        /// ("pointwise", "pointwise+avx2", "implicit", "im2col+vnni", "im2col+amx", "depthwise+vnni", "gemm+vnni",
        /// ...); nil for other nodes.
        let engine: String?
    }

    struct Report: Codable {
        let model: String
        let batch: Int
        let runs: Int
        /// "median" or "min": how every time in the report summarises the runs.
        let statistic: String
        let precision: String
        let scheme: String?
        let kernelPath: String
        let fp32Ms: Double
        let ms: Double?
        /// End to end: the median (or minimum) of plain runs (image chains, the blocked layout and every
        /// fusion on, as `eval` runs). The per-node times come from the same kind of runs
        /// (`Session.profile`), so they add up to about this.
        let fp32RunMs: Double
        let runMs: Double?
        let nodes: [Row]
        let opTypes: [String: Double]
    }

    func run() throws {
        Progress.quiet = quiet
        let model = try loadModel(self.model)
        let dataset = try Dataset(path: data, graph: model.graph, allowNonfinite: precisionOptions.allowNonfinite)
        let rows = min(batchSize, dataset.count)
        let feeds = dataset.batch(0..<rows)
        let runtime = try precisionOptions.makeRuntime(model, batchSize: batchSize)
        let map = runtime?.map
        try runtime?.apply(runtime!.allFP32)
        let fp32 = try model.session.profile(feeds, runs: runs, statistic: statistic, progress: Progress(label: "profile fp32").update)
        let fp32Run = try model.session.timeRuns(feeds, runs: runs, statistic: statistic)
        var other: [NodeProfile]? = nil
        var otherRun: Double? = nil
        if let runtime, let map {
            try runtime.apply(map)
            other = try model.session.profile(feeds, runs: runs, statistic: statistic,
                                              progress: Progress(label: "profile \(precisionOptions.precision)").update)
            otherRun = try model.session.timeRuns(feeds, runs: runs, statistic: statistic)
        }
        let int8Nodes = runtime.map { Set($0.plan.int8Layers).union($0.plan.int8RegionOps) } ?? []
        let fp32Total = max(fp32.reduce(0) { $0 + $1.seconds }, 1e-12)
        let otherTotal = other.map { max($0.reduce(0) { $0 + $1.seconds }, 1e-12) }
        let table = fp32.enumerated().map { i, p in
            Row(name: p.name, op: p.opType, int8: int8Nodes.contains(p.name), macs: p.macs, fp32Ms: p.seconds * 1e3,
                fp32Share: p.seconds / fp32Total * 100, ms: other.map { $0[i].seconds * 1e3 },
                share: other.map { $0[i].seconds / otherTotal! * 100 },
                engine: int8Nodes.contains(p.name) ? runtime?.layers[p.name]?.engine : nil)
        }
        var byOp: [String: Double] = [:]
        for (i, p) in fp32.enumerated() { byOp[p.opType, default: 0] += (other?[i].seconds ?? p.seconds) * 1e3 }
        let report = Report(model: self.model, batch: rows, runs: runs, statistic: statistic.rawValue, precision: precisionOptions.precision,
                            scheme: runtime?.scheme.rawValue, kernelPath: runtime?.path.resolved.rawValue ?? "none",
                            fp32Ms: fp32Total * 1e3, ms: otherTotal.map { $0 * 1e3 }, fp32RunMs: fp32Run * 1e3,
                            runMs: otherRun.map { $0 * 1e3 }, nodes: table, opTypes: byOp)
        if json { print(try jsonString(report)); return }
        printTable(report)
    }

    func printTable(_ r: Report) {
        let int8 = r.ms != nil
        let stat = r.statistic == RunStatistic.min.rawValue ? ("minimum", "fastest run", "per-node minima") : ("median", "median run", "per-node medians")
        print("model \(r.model)  batch \(r.batch)  \(stat.0) of \(r.runs) runs  precision \(r.precision)\(r.scheme.map { " (scheme \($0))" } ?? "")  kernels \(r.kernelPath)")
        print(String(format: "end to end: FP32 %.3f ms", r.fp32RunMs) + (r.runMs.map { String(format: ", %@ %.3f ms (%.2fx)", r.precision, $0, r.fp32RunMs / $0) } ?? "")
              + " (\(stat.1), chains and fusions on, as eval runs)")
        print(String(format: "sum of nodes: FP32 %.3f ms", r.fp32Ms) + (r.ms.map { String(format: ", %@ %.3f ms (%.2fx)", r.precision, $0, r.fp32Ms / $0) } ?? "")
              + " (\(stat.2) of the same runs; a chain's time split over its nodes)")
        func pad(_ s: String, _ w: Int) -> String { s.count >= w ? String(s.prefix(w)) : s + String(repeating: " ", count: w - s.count) }
        let nameWidth = min(40, max(8, r.nodes.map(\.name.count).max() ?? 8))
        print(pad("node", nameWidth) + "  " + pad("op", 18) + "   fp32 ms  share" + (int8 ? "   this ms  share  GOP/s  engine" : "  GFLOP/s"))
        let ranked = r.nodes.sorted { ($0.ms ?? $0.fp32Ms) > ($1.ms ?? $1.fp32Ms) }.prefix(top)
        for n in ranked {
            let t = n.ms ?? n.fp32Ms
            let rate = n.macs > 0 && t > 0 ? String(format: "%7.1f", 2 * Double(n.macs) / (t / 1e3) / 1e9) : "      -"
            var line = pad(n.name, nameWidth) + "  " + pad(n.op + (n.int8 ? " int8" : ""), 18)
            line += String(format: "  %8.3f %5.1f%%", n.fp32Ms, n.fp32Share)
            if let ms = n.ms, let share = n.share { line += String(format: "  %8.3f %5.1f%%", ms, share) }
            print(line + "  " + rate + (n.engine.map { "  " + $0 } ?? ""))
        }
        print("by op type (\(int8 ? r.precision : "fp32") ms): " + r.opTypes.sorted { $0.value > $1.value }.prefix(12)
            .map { String(format: "%@ %.3f", $0.key, $0.value) }.joined(separator: ", "))
    }
}

extension RunStatistic: ExpressibleByArgument {}
