import ArgumentParser
import Foundation
import Kernels

struct Conformance: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run ONNX backend test cases (<case>/model.onnx + test_data_set_*/*.pb) and print a table per op.")

    @Argument(help: "A folder of test cases.") var directory: String
    @Flag(help: "Print every case, not only failures.") var verbose = false
    @Flag(help: "Print the per-op table as Markdown (for docs/conformance.md).") var markdown = false

    func run() throws {
        let cases = try Kernels.Conformance.cases(in: directory)
        guard !cases.isEmpty else { throw CLIError("no test cases (<case>/model.onnx) under \(directory)") }
        var perOp: [String: (pass: Int, fail: Int, unsupported: Int)] = [:]
        var failures: [(String, String)] = []
        for dir in cases {
            let r = Kernels.Conformance.run(caseDirectory: dir)
            let key = r.ops.count == 1 ? r.ops[0] : (r.ops.isEmpty ? "?" : "(\(r.ops.count) ops)")
            var row = perOp[key] ?? (0, 0, 0)
            switch r.outcome {
            case .passed: row.pass += 1; if verbose { print("pass \(r.name)") }
            case .failed(let why): row.fail += 1; failures.append((r.name, why)); print("FAIL \(r.name): \(why)")
            case .unsupported(let why): row.unsupported += 1; if verbose { print("skip \(r.name): \(why)") }
            }
            perOp[key] = row
        }
        let total = perOp.values.reduce((0, 0, 0)) { ($0.0 + $1.pass, $0.1 + $1.fail, $0.2 + $1.unsupported) }
        if markdown {
            print("| op | passed | failed | not supported |\n|---|---:|---:|---:|")
            for (op, r) in perOp.sorted(by: { $0.key < $1.key }) { print("| \(op) | \(r.pass) | \(r.fail) | \(r.unsupported) |") }
        }
        print("\(total.0) passed, \(total.1) failed, \(total.2) not supported")
        if total.1 > 0 { throw ExitCode(1) }
    }
}
