import ArgumentParser
import Foundation
import Kernels
import ONNX
import Search

/// Options of the search strategies, shared by `search` and `sweep`.
struct StrategyOptions: ParsableArguments {
    @Option(help: "greedy, evolutionary, or both (the evolutionary search starts from the greedy answer).")
    var strategy: SearchStrategy = .both
    @Option(help: "What to maximise within the budget: macs (INT8 share of MACs), latency (measured), size (weight bytes).")
    var objective: Objective = .macs
    @Option(help: "absolute (points) or relative (percent of the FP32 score).") var budgetType: Budget.Kind = .absolute
    @Option(help: "Judge the holdout by the upper bound of this confidence interval instead of the point estimate (e.g. 0.95).",
            transform: decimal)
    var confidence: Double?
    @Option(help: "Evolutionary search: generations.") var generations: Int = 30
    @Option(help: "Evolutionary search: population size.") var population: Int = 24
    @Option(help: "Evolutionary search: time limit in seconds.", transform: decimal) var timeLimit: Double?
    @Flag(help: "Record wall-clock seconds in the output (then the same seed no longer gives the same bytes).")
    var recordTime = false

    func validate() throws {
        if let c = confidence, !(c > 0 && c < 1) { throw ValidationError("--confidence must lie strictly between 0 and 1, got \(c)") }
        try checkRange("--generations", generations, 0...largestCount)
        try checkRange("--population", population, 2...largestCount)
        if let t = timeLimit, !(t > 0 && t <= 1e9) { throw ValidationError("--time-limit must be a number of seconds in (0, 1e9], got \(t)") }
    }

    func plan(_ budget: Budget, seed: UInt64) -> SearchPlan {
        SearchPlan(budget: budget, strategy: strategy, objective: objective,
                   evolutionary: EvolutionaryOptions(populationSize: population, generations: generations,
                                                     timeLimitSeconds: timeLimit, seed: seed),
                   criterion: confidence == nil ? .point : .upper, confidence: confidence ?? 0.95)
    }
}

struct SearchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "search",
        abstract: "Find the precision map with the most INT8 within an accuracy budget, validated on the holdout split.",
        discussion: "Exit code 3 when no map with INT8 layers meets the budget on the holdout split; the best map found and the Pareto front are written anyway.")

    @Argument(help: "The ONNX model.") var model: String
    @OptionGroup var splits: SplitOptions
    @OptionGroup var common: SearchCommonOptions
    @OptionGroup var strategyOptions: StrategyOptions
    @Option(help: "Largest acceptable drop: 1% = one point (see --budget-type).") var budget: String = "1%"
    @Option(help: "Where to write the precision map (JSON).") var out: String

    func validate() throws {
        guard Budget(parsing: budget) != nil else {
            throw ValidationError("--budget '\(budget)' must be a plain decimal number from 0 to 100, optionally with %, such as 1% or 0.5 (no hex, nan or negative values)")
        }
    }

    func run() throws {
        try checkOutputs(out)
        let start = Date()
        let budget = Budget(parsing: self.budget, type: strategyOptions.budgetType)!
        let context = try SearchContext(modelPath: model, splits: splits, common: common,
                                        measureLatency: strategyOptions.objective == .latency)
        // Before the sensitivity analysis and the search: their time is the user's to decide on.
        warnIfHoldoutCannotConfirm(context, budget: budget, confidence: strategyOptions.confidence ?? 0.95)
        // The sensitivity evaluations are replayed from the state like every other one.
        try context.attachState(common.state, splits: splits)
        let sensitivity = try context.sensitivity(statePath: nil, mode: common.sensitivity, smallestBudget: budget, splits: splits)
        let runner = context.pipeline.runner(sensitivity: sensitivity, validator: try context.pipeline.validator(seed: splits.seed))
        let plan = strategyOptions.plan(budget, seed: splits.seed)
        let log = Progress(label: "search")
        let outcome = try runner.run(plan) { log.note($0) }
        var document = runner.document(outcome, plan: plan, modelPath: model, modelSHA256: try SHA256.hex(ofFile: model),
                                       dataDescription: context.splits.description, seed: splits.seed, version: MPQ.version,
                                       wallSeconds: strategyOptions.recordTime ? (Date().timeIntervalSince(start) * 100).rounded() / 100 : nil)
        if plan.objective == .latency {
            // Confirm the answer end to end on the batch the per-layer savings were measured on.
            document.latency = try LatencyProbe(runtime: context.runtime, sample: context.pipeline.sample).confirm(outcome.best.map)
        }
        try context.evaluator.store?.save()
        let data = try document.jsonData()
        try OutputFile.write(data, to: out)
        if common.json {
            print(String(decoding: data, as: UTF8.self), terminator: "")
        } else {
            printSummary(document)
            print(context.evaluator.cacheStatistics.summary)
            if let speed = try? measureSpeed(context, map: outcome.best.map) { print(speed) }
        }
        if !outcome.met { throw ExitCode(ExitStatus.budgetNotMet.rawValue) }
    }

    func printSummary(_ d: PrecisionMapDocument) {
        let h = d.result.holdout, s = d.result.search
        print("model \(d.model.path)  metric \(d.metric)  budget \(Budget(value: d.budget.value, type: Budget.Kind(rawValue: d.budget.type)!).label) (\(d.budget.points) points)  seed \(d.seed)")
        print("           FP32     INT8-all  mixed    drop")
        print(String(format: "search   %8.2f %8.2f %8.2f %7.2f", s.fp32, s.int8All, s.mixed, s.drop))
        if let note = h.ciNote {
            print(String(format: "holdout  %8.2f %8.2f %8.2f %7.2f  (%@)", h.fp32, h.int8All, h.mixed, h.drop, note))
        } else {
            print(String(format: "holdout  %8.2f %8.2f %8.2f %7.2f  (%.0f%% CI %.2f .. %.2f)", h.fp32, h.int8All, h.mixed, h.drop,
                         h.confidence * 100, h.ci95[0], h.ci95[1]))
        }
        print(String(format: "INT8: %d of %d layers, %.1f%% of MACs; %@ search; %d evaluation%@ (%.2f full-model equivalents)",
                     d.int8Layers, d.layers.count, d.int8MacFraction * 100, d.strategy, d.evaluations, d.evaluations == 1 ? "" : "s", d.fullModelEquivalents))
        for l in d.layers { print("  \(l.precision == .int8 ? "int8" : "FP32")  \(l.name)  (\(l.op), \(l.macs) MACs)") }
        print(d.budgetMet ? "budget met on the holdout split (\(h.criterion) estimate); map written to \(out)"
                          : "budget NOT met on the holdout split (\(h.criterion) estimate); best map written to \(out)")
        if let note = h.resolutionNote { print("note: \(note)") }
    }
}

/// Before a search: a warning on stderr when the holdout split is too small to confirm the
/// budget (per-sample binary metrics: SplitResolution), so that a user learns it before the
/// search's time is spent rather than from a miss by one sample after it.
func warnIfHoldoutCannotConfirm(_ context: SearchContext, budget: Budget, confidence: Double) {
    let pipeline = context.pipeline
    guard pipeline.scorer.scoresBatchwise, pipeline.scorer.hasBinarySamples(pipeline.evaluator.fp32Sample),
          context.splits.holdout.count > 0 else { return }
    let points = budget.points(fp32: pipeline.evaluator.fp32Score)
    if let note = SplitResolution(samples: context.splits.holdout.count, budget: points, confidence: confidence).note(split: "holdout") {
        FileHandle.standardError.write(Data("warning: \(note)\n".utf8))
    }
}

/// One line with the chosen map's measured speed in mpq's runtime next to FP32 and all-INT8:
/// one holdout batch, best of 5 runs after a warm-up (best of 2 when a warm-up pass takes
/// over half a second: on a transformer the line cost a quarter of a 1% search), the map's
/// timing reused when it is the all-INT8 map. Printed only: timings would make the map's
/// bytes depend on the machine. The QDQ export's speed in ONNX Runtime is measured by
/// benchmarks/scheme_speed.py.
func measureSpeed(_ context: SearchContext, map: PrecisionMap) throws -> String {
    let runtime = context.runtime
    let holdout = context.splits.holdout
    let rows = min(holdout.count, 64)
    guard rows > 0 else { return "" }
    let feeds = holdout.batch(0..<rows)
    let saved = runtime.map
    defer { try? runtime.apply(saved) }
    var repeats = 5
    func best(_ m: PrecisionMap) throws -> Double {
        try runtime.apply(m)
        let warm = DispatchTime.now().uptimeNanoseconds
        _ = try runtime.session.run(feeds)
        if Double(DispatchTime.now().uptimeNanoseconds - warm) / 1e9 > 0.5 { repeats = 2 }
        var t = Double.infinity
        for _ in 0..<repeats {
            let start = DispatchTime.now().uptimeNanoseconds
            _ = try runtime.session.run(feeds)
            t = min(t, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
        }
        return t
    }
    let fp32 = try best(runtime.allFP32), all = try best(runtime.allInt8)
    let mine = map.int8Layers == runtime.allInt8.int8Layers ? all : try best(map)
    let line = String(format: "speed in mpq's runtime (scheme %@, batch %d, best of %d): FP32 %.2f ms, INT8-all %.2f ms (%@), this map %.2f ms (%@)",
                      runtime.scheme.rawValue, rows, repeats, fp32, all, speedup(fp32, all), mine, speedup(fp32, mine))
    return line + widenedWeightsNote(path: runtime.path.resolved, weightBits: runtime.weightBits)
}

/// Why INT8 may not beat FP32 here, where that is the case: on an AVX2 CPU without VNNI, 8-bit
/// weights multiply exactly only through the widening GEMM (about 60 GMAC/s a core on Zen 3,
/// against ~45 for FP32 FMA), while 7-bit weights take `vpmaddubsw`, ~1.4x faster (s29: the
/// detector's all-INT8 at batch 16 and 64 0.99-1.06x FP32 with 8-bit weights, 0.76-0.78x with
/// 7). Empty on other paths and with 7-bit weights.
func widenedWeightsNote(path: KernelPath, weightBits: WeightBits) -> String {
    guard path == .avx2, weightBits == .eight else { return "" }
    return "\nhint: on the AVX2 kernel path (no VNNI) 8-bit weights multiply exactly only through the widening INT8 GEMM; "
        + "--weight-bits 7 (ONNX Runtime's reduce_range) runs INT8 about 1.4x faster there, for one bit of weight resolution"
}

/// "1.32x faster" or "1.18x slower" than `reference`, never "0.85x faster".
func speedup(_ reference: Double, _ time: Double) -> String {
    time <= reference ? String(format: "%.2fx faster", reference / time) : String(format: "%.2fx slower", time / reference)
}

extension SearchStrategy: ExpressibleByArgument {}
extension Objective: ExpressibleByArgument {}
extension Budget.Kind: ExpressibleByArgument {}
