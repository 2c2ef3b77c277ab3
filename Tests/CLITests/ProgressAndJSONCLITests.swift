import Foundation
import XCTest

/// Progress reaches a log that is not a terminal (one line per interval per phase,
/// `--quiet` silences it); every `--json` output keys its objects in snake_case.
final class ProgressAndJSONCLITests: XCTestCase {
    let mlp = "\(CLI.fixtures)/breast_cancer_raw_mlp.onnx"
    var mlpSplits: [String] {
        ["--calibration", "\(CLI.fixtures)/breast_cancer_raw_mlp_calib.npz",
         "--search", "\(CLI.fixtures)/breast_cancer_raw_mlp_search.npz",
         "--holdout", "\(CLI.fixtures)/breast_cancer_raw_mlp_holdout.npz"]
    }

    /// stderr is a pipe here, as in CI: progress comes as full lines (phase, done/total,
    /// elapsed, ETA), at most one per interval; `MPQ_PROGRESS_INTERVAL=0` shows every one
    /// without waiting. `--quiet` silences them.
    func testProgressLinesOnANonTerminal() throws {
        let digits = "\(CLI.fixtures)/digits_cnn.onnx", data = "\(CLI.fixtures)/digits_holdout.npz"
        let fast = ["MPQ_PROGRESS_INTERVAL": "0"]
        let r = try CLI.run(["eval", digits, "--data", data, "--batch-size", "64"], environment: fast)
        XCTAssertEqual(r.status, 0, r.stderr)
        let lines = r.stderr.split(separator: "\n").filter { $0.hasPrefix("eval: ") }
        XCTAssertEqual(lines.count, 6, "359 samples in batches of 64: \(r.stderr)")
        XCTAssertTrue(lines[0].hasPrefix("eval: 64/359 (17.8%), elapsed ") && lines[0].contains(", ETA "), String(lines[0]))
        XCTAssertTrue(lines.last!.hasPrefix("eval: 359/359 (100.0%)"), String(lines.last!))
        XCTAssertFalse(r.stderr.contains("\r"), "no terminal control characters in a log")

        let slow = try CLI.run(["eval", digits, "--data", data], environment: ["MPQ_PROGRESS_INTERVAL": "3600"])
        XCTAssertFalse(slow.stderr.contains("eval: "), "at most one line per interval: \(slow.stderr)")
        let quiet = try CLI.run(["eval", digits, "--data", data, "--quiet"], environment: fast)
        XCTAssertEqual(quiet.status, 0)
        XCTAssertEqual(quiet.stderr, "", "--quiet")

        let s = try CLI.run(["sensitivity", mlp] + mlpSplits, environment: fast)
        XCTAssertEqual(s.status, 0, s.stderr)
        for phase in ["calibrate (minmax): ", "fp32 reference on the search split: ", "sensitivity: "] {
            XCTAssertTrue(s.stderr.contains(phase), "\(phase) in \(s.stderr)")
        }
        let sq = try CLI.run(["sensitivity", mlp] + mlpSplits + ["--quiet"], environment: fast)
        XCTAssertEqual(sq.stderr, "", "--quiet")

        // A search step note shows at once that the search started, then one per interval.
        let out = try CLI.temporaryDirectory().appendingPathComponent("m.json").path
        let search = try CLI.run(["search", mlp] + mlpSplits + ["--budget", "1%", "--out", out],
                                 environment: ["MPQ_PROGRESS_INTERVAL": "3600"])
        XCTAssertTrue(search.status == 0 || search.status == 3, search.stderr)
        XCTAssertEqual(search.stderr.split(separator: "\n").filter { $0.hasPrefix("search [0s]: ") }.count, 1, search.stderr)
    }

    /// Every command's `--json`: object keys in snake_case (maps keyed by names, such as
    /// inspect's inputs or profile's op types, hold data, not keys).
    func testJSONKeysAreSnakeCase() throws {
        let digits = "\(CLI.fixtures)/digits_cnn.onnx", holdout = "\(CLI.fixtures)/digits_holdout.npz"
        let dir = try CLI.temporaryDirectory()
        let runs: [(String, [String])] = [
            ("inspect", ["inspect", digits, "--json"]),
            ("eval", ["eval", digits, "--data", holdout, "--precision", "int8", "--calibration", "\(CLI.fixtures)/digits_calib.npz", "--json"]),
            ("profile", ["profile", digits, "--data", holdout, "--runs", "1", "--json"]),
            ("sensitivity", ["sensitivity", mlp] + mlpSplits + ["--json"]),
            ("search", ["search", mlp] + mlpSplits + ["--budget", "1%", "--out", dir.appendingPathComponent("m.json").path, "--json"]),
            ("sweep", ["sweep", mlp] + mlpSplits + ["--budgets", "1,100", "--out", dir.appendingPathComponent("s.json").path, "--json"]),
        ]
        let dataKeys: Set<String> = ["inputs", "op_types"]
        func check(_ value: Any, _ path: String, _ bad: inout [String]) {
            if let o = value as? [String: Any] {
                for (k, v) in o {
                    if k.contains(where: \.isUppercase) { bad.append("\(path).\(k)") }
                    if !dataKeys.contains(k) { check(v, "\(path).\(k)", &bad) }
                }
            } else if let a = value as? [Any] {
                for v in a { check(v, path + "[]", &bad) }
            }
        }
        for (name, args) in runs {
            let r = try CLI.run(args, environment: ["MPQ_PROGRESS_INTERVAL": "3600"])
            XCTAssertTrue(r.status == 0 || r.status == 3, "\(name): \(r.stderr)")
            let value = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8))
            var bad: [String] = []
            check(value, name, &bad)
            XCTAssertEqual(bad, [], "\(name): keys not in snake_case")
        }
    }
}
