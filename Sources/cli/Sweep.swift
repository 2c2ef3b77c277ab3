import ArgumentParser
import Foundation
import Kernels
import ONNX
import Search

struct Sweep: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Search several budgets at once (sensitivity and evaluations are shared), for CI pipelines.",
        discussion: "Exit code 3 when a --require'd budget is not met on the holdout split; sweep.json (and the JUnit file) are written anyway.")

    @Argument(help: "The ONNX model.") var model: String
    @OptionGroup var splits: SplitOptions
    @OptionGroup var common: SearchCommonOptions
    @OptionGroup var strategyOptions: StrategyOptions
    @Option(help: "Comma-separated budgets, e.g. 0.25,0.5,1,2,3 (points, or % of FP32 with --budget-type relative).")
    var budgets: String = "0.25,0.5,1,2,3"
    @Option(help: "Budgets that must be met (repeatable or comma-separated), e.g. 1%.") var require: [String] = []
    @Option(help: "Where to write the sweep (JSON).") var out: String
    @Option(help: "Also write a JUnit XML report here.") var junit: String?
    @OptionGroup var sharding: ShardOptions

    var budgetValues: [Double] { budgets.split(separator: ",").compactMap { Budget(parsing: String($0))?.value } }
    var requiredValues: [Double] { require.flatMap { $0.split(separator: ",") }.compactMap { Budget(parsing: String($0))?.value } }

    func validate() throws {
        guard !budgets.isEmpty, budgetValues.count == budgets.split(separator: ",").count else {
            throw ValidationError("--budgets '\(budgets)' must be comma-separated decimal numbers from 0 to 100, such as 0.5,1,2")
        }
        let req = require.flatMap { $0.split(separator: ",") }
        guard requiredValues.count == req.count else { throw ValidationError("--require '\(require.joined(separator: ","))' must be budgets such as 1%") }
        for r in requiredValues where !budgetValues.contains(r) {
            throw ValidationError("--require \(formattedNumber(r))% is not one of --budgets \(budgets)")
        }
    }

    struct Entry: Codable {
        let budget: Double
        let row: SweepRow
        let map: PrecisionMapDocument
    }

    struct Document: Codable {
        var schema = "mpq.sweep/1"
        var model: String
        var metric: String
        var seed: UInt64
        var criterion: String
        var rows: [SweepRow]
        var maps: [Entry]
        var allRequiredMet: Bool
        /// What the numbers depend on; `mpq merge` compares it across parts.
        var key: SearchStateKey?
        /// Set in a part written with `--shard`: its shard and every budget of the sweep.
        var shard: ShardPart<Double>?
    }

    func run() throws {
        try checkOutputs(out, junit)
        let shard = try sharding.resolved()
        let context = try SearchContext(modelPath: model, splits: splits, common: common,
                                        measureLatency: strategyOptions.objective == .latency)
        // One state for every budget: the evaluations are shared.
        try context.attachState(common.state, splits: splits)
        let sensitivity = try context.sensitivity(statePath: nil, mode: common.sensitivity,
                                                  smallestBudget: Budget(value: budgetValues.min() ?? 0, type: strategyOptions.budgetType),
                                                  splits: splits)
        let runner = context.pipeline.runner(sensitivity: sensitivity, validator: try context.pipeline.validator(seed: splits.seed))
        let sha = try SHA256.hex(ofFile: model)
        let required = Set(requiredValues)
        var entries: [Entry] = []
        let log = Progress(label: "sweep")
        let allBudgets = budgetValues.sorted()
        // A part searches its share of the budgets; sensitivity (and `--sensitivity auto`'s
        // decision, made on the smallest budget of all) is the same in every part.
        let mine = shard.map { $0.share(of: allBudgets) } ?? allBudgets
        let plans = mine.map { strategyOptions.plan(Budget(value: $0, type: strategyOptions.budgetType), seed: splits.seed) }
        try context.pipeline.sweep(plans, runner: runner, progress: { log.note("budget \(formattedNumber($0.budget.value))") }) { plan, outcome in
            let value = plan.budget.value
            let doc = runner.document(outcome, plan: plan, modelPath: model, modelSHA256: sha, dataDescription: context.splits.description,
                                      seed: splits.seed, version: MPQ.version, wallSeconds: nil)
            let v = outcome.validation
            let row = SweepRow(budget: value, budgetType: strategyOptions.budgetType.rawValue,
                               int8Share: doc.int8MacFraction, searchDrop: doc.result.search.drop, holdoutDrop: v.drop,
                               ciLow: v.ci[0], ciHigh: v.ci[1], met: outcome.met, required: required.contains(value))
            entries.append(Entry(budget: value, row: row, map: doc))
        }
        try context.evaluator.store?.save()
        let rows = entries.map(\.row)
        let criterion: BudgetCriterion = strategyOptions.confidence == nil ? .point : .upper
        let document = Document(model: model, metric: context.scorer.name, seed: splits.seed, criterion: criterion.rawValue,
                                rows: rows, maps: entries, allRequiredMet: rows.allSatisfy { !$0.required || $0.met },
                                key: try context.runKey(splits), shard: shard.map { ShardPart(shard: $0, items: allBudgets) })
        try Self.write(document, out: out, junit: junit, json: common.json)
        // A part's verdict waits for the merge: a failing part would be retried or block it.
        if shard == nil && !document.allRequiredMet { throw ExitCode(ExitStatus.budgetNotMet.rawValue) }
    }

    /// Writes the sweep (and JUnit), prints the table: shared with `mpq merge`.
    static func write(_ document: Document, out: String, junit: String?, json: Bool) throws {
        let rows = document.rows
        let enc = deterministicJSONEncoder(snakeCase: true)
        try writeAtomically(String(decoding: try enc.encode(document), as: UTF8.self) + "\n", to: out)
        if let junit {
            let report = JUnitReport(rows: rows, modelDigest: document.key?.model ?? "", metricName: document.metric,
                                     seed: document.seed, criterion: BudgetCriterion(rawValue: document.criterion) ?? .point)
            try writeAtomically(report.xml(), to: junit)
        }
        if json {
            print(String(decoding: try enc.encode(rows), as: UTF8.self))
        } else {
            print("budget   INT8 MACs  search drop  holdout drop (CI)            met  required")
            for r in rows {
                let b = formattedNumber(r.budget) + "%"
                print(String(repeating: " ", count: max(0, 7 - b.count)) + b + String(format: "  %8.1f%%  %11.2f  %7.2f (%6.2f .. %6.2f)  %@  %@", r.int8Share * 100,
                             r.searchDrop, r.holdoutDrop, r.ciLow, r.ciHigh, r.met ? "yes" : "NO ", r.required ? "yes" : ""))
            }
            if let note = document.maps.first?.map.result.holdout.ciNote { print("CI: \(note) (the columns repeat the drop)") }
        }
    }
}

func formattedNumber(_ v: Double) -> String { v == v.rounded() ? String(Int(v)) : String(v) }
