import ArgumentParser
import Foundation
import ONNX
import Search

/// `mpq merge PART.json... --out FILE`: combines the parts of a sharded `mpq sensitivity` or
/// `mpq sweep` (the kind is read from the parts' schema) into the file one machine writes.
struct Merge: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Combine the parts of a sharded sensitivity analysis or sweep (--shard K/N) into one report.",
        discussion: "Every part must come from the same model, data, calibration, seed, scheme, metric and options, and shards 0..N-1 must each appear once; otherwise exit 2 naming the field or shard. A merged sweep exits 3 when a --require'd budget is not met, like mpq sweep.")

    @Argument(help: "The parts (.json) written with --shard K/N.") var parts: [String]
    @Option(help: "Where to write the merged report (JSON).") var out: String
    @Option(help: "Sweeps only: also write a JUnit XML report here.") var junit: String?
    @Flag(help: "Print JSON on stdout.") var json = false

    func validate() throws {
        guard !parts.isEmpty else { throw ValidationError("give the parts to merge: mpq merge PART.json... --out FILE") }
    }

    private struct Schema: Decodable { let schema: String }

    func run() throws {
        try checkOutputs(out, junit)
        var loaded: [(path: String, data: Data, schema: String)] = []
        for path in parts {
            try FileKind.requireRegularFile(path, expected: "a part written with --shard")
            guard let data = FileManager.default.contents(atPath: path),
                  let schema = try? JSONDecoder().decode(Schema.self, from: data).schema else {
                throw CLIError("\(path): not a JSON report written by mpq sensitivity or mpq sweep")
            }
            loaded.append((path, data, schema))
        }
        let kind = loaded[0].schema
        for p in loaded where p.schema != kind {
            throw CLIError("\(p.path) is a \(p.schema) file, \(loaded[0].path) a \(kind) file: merge parts of one command")
        }
        switch kind {
        case SensitivityReport.schemaName: try mergeSensitivity(loaded.map { ($0.path, $0.data) })
        case "mpq.sweep/1": try mergeSweep(loaded.map { ($0.path, $0.data) })
        default: throw CLIError("\(loaded[0].path): cannot merge \(kind) files (only mpq sensitivity and mpq sweep parts)")
        }
    }

    private func mergeSensitivity(_ files: [(String, Data)]) throws {
        guard junit == nil else { throw CLIError("--junit applies to sweeps, not to sensitivity parts") }
        let reports = try files.map { path, data -> (path: String, report: SensitivityReport) in
            guard let r = SensitivityAnalyzer.decodeState(data) else {
                throw CLIError("\(path): unreadable sensitivity report")
            }
            return (path, r)
        }
        let merged = try SensitivityReport.merge(reports)
        let text = try jsonString(merged)
        try writeAtomically(text + "\n", to: out)
        if json { print(text) } else {
            print("merged \(files.count) part\(files.count == 1 ? "" : "s"): \(merged.layers.count) layers, \(String(format: "%.2f", merged.fullModelEquivalents)) full-model-equivalent evaluations in all; written to \(out)")
        }
    }

    private func mergeSweep(_ files: [(String, Data)]) throws {
        let dec = JSONDecoder()
        dec.keyDecodingStrategy = .convertFromSnakeCase
        let docs = try files.map { path, data -> (path: String, doc: Sweep.Document) in
            guard let d = try? dec.decode(Sweep.Document.self, from: data) else { throw CLIError("\(path): unreadable sweep file") }
            return (path, d)
        }
        let first = docs[0].doc
        _ = try checkParts(docs.map { ($0.path, $0.doc.key, $0.doc.shard) }, kind: "sweep", itemList: "budgets",
                           describe: formattedNumber) { i, differ in
            if docs[i].doc.criterion != first.criterion { throw differ("criterion", first.criterion, docs[i].doc.criterion) }
        }
        var byBudget: [Double: Sweep.Entry] = [:]
        for (path, d) in docs {
            let expected = d.shard!.shard.share(of: d.shard!.items)
            guard d.maps.map(\.budget) == expected else {
                throw MergeError.wrongItems(path: path, reason: "shard \(d.shard!.shard.label) should hold budgets \(expected.map(formattedNumber).joined(separator: ",")), it holds \(d.maps.map { formattedNumber($0.budget) }.joined(separator: ","))")
            }
            for e in d.maps { byBudget[e.budget] = e }
        }
        var merged = first
        merged.maps = first.shard!.items.map { byBudget[$0]! }
        merged.rows = merged.maps.map(\.row)
        merged.allRequiredMet = merged.rows.allSatisfy { !$0.required || $0.met }
        merged.shard = nil
        try Sweep.write(merged, out: out, junit: junit, json: json)
        if !merged.allRequiredMet { throw ExitCode(ExitStatus.budgetNotMet.rawValue) }
    }
}
