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
        let model: String
        let metric: String
        let seed: UInt64
        let criterion: String
        let rows: [SweepRow]
        let maps: [Entry]
        let allRequiredMet: Bool
    }

    func run() throws {
        try checkOutputs(out, junit)
        let context = try SearchContext(modelPath: model, splits: splits, common: common,
                                        measureLatency: strategyOptions.objective == .latency)
        // One state for every budget: the evaluations are shared.
        try context.attachState(common.state, splits: splits)
        let sensitivity = try context.sensitivity(statePath: nil, mode: common.sensitivity,
                                                  smallestBudget: Budget(value: budgetValues.min() ?? 0, type: strategyOptions.budgetType))
        let validator = try HoldoutValidator(runtime: context.runtime, holdout: context.splits.holdout, metric: common.metric,
                                             batchSize: common.batchSize, seed: splits.seed, transform: common.outputTransform,
                                             detection: context.evaluator.detection)
        // The holdout's labels against the output width, before the search rather than after it.
        try checkLabels(common.metric, labels: context.splits.holdout.labels, classes: context.evaluator.fp32Outputs.width,
                        path: context.splits.holdout.path, output: context.model.session.graph.outputs[0].name)
        let runner = SearchRunner(evaluator: context.evaluator, sensitivity: sensitivity, layers: context.layers, validator: validator)
        let sha = try SHA256.hex(ofFile: model)
        let required = Set(requiredValues)
        var entries: [Entry] = []
        let log = Progress(label: "sweep")
        for value in budgetValues.sorted() {
            let plan = strategyOptions.plan(Budget(value: value, type: strategyOptions.budgetType), seed: splits.seed)
            log.note("budget \(formattedNumber(value))")
            let outcome = try runner.run(plan)
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
        let allMet = rows.allSatisfy { !$0.required || $0.met }
        let criterion: BudgetCriterion = strategyOptions.confidence == nil ? .point : .upper
        let document = Document(model: model, metric: common.metric.rawValue, seed: splits.seed, criterion: criterion.rawValue,
                                rows: rows, maps: entries, allRequiredMet: allMet)
        let enc = deterministicJSONEncoder(snakeCase: true)
        try writeAtomically(String(decoding: try enc.encode(document), as: UTF8.self) + "\n", to: out)
        if let junit {
            let report = JUnitReport(rows: rows, modelDigest: context.model.digest, metric: common.metric, seed: splits.seed,
                                     criterion: criterion)
            try writeAtomically(report.xml(), to: junit)
        }
        if common.json {
            print(String(decoding: try enc.encode(rows), as: UTF8.self))
        } else {
            print("budget   INT8 MACs  search drop  holdout drop (CI)            met  required")
            for r in rows {
                let b = formattedNumber(r.budget) + "%"
                print(String(repeating: " ", count: max(0, 7 - b.count)) + b + String(format: "  %8.1f%%  %11.2f  %7.2f (%6.2f .. %6.2f)  %@  %@", r.int8Share * 100,
                             r.searchDrop, r.holdoutDrop, r.ciLow, r.ciHigh, r.met ? "yes" : "NO ", r.required ? "yes" : ""))
            }
        }
        if !allMet { throw ExitCode(ExitStatus.budgetNotMet.rawValue) }
    }
}

func formattedNumber(_ v: Double) -> String { v == v.rounded() ? String(Int(v)) : String(v) }
