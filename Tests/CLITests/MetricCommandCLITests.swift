import Foundation
import XCTest

/// `--metric-command` (docs/metrics.md) with /bin/sh one-liners: what the command prints
/// becomes the score, and every way it can fail is exit 2 naming the command. The equality
/// with the built-in top1 through a Python script is checked in tools/crosscheck/run.sh.
final class MetricCommandCLITests: XCTestCase {
    let model = "\(CLI.fixtures)/breast_cancer_raw_mlp.onnx"
    let holdout = "\(CLI.fixtures)/breast_cancer_raw_mlp_holdout.npz"

    /// A command that prints `text` and ignores the three paths mpq appends (`#`).
    func printing(_ text: String) -> String { "printf '%s' '\(text)' #" }

    func testPerSampleAndSplitLevelScores() throws {
        let dir = try CLI.temporaryDirectory()
        // 142 holdout samples: 100 for the first 71, 0 for the rest.
        let scores = (0..<142).map { $0 < 71 ? "100" : "0" }.joined(separator: ",")
        let file = dir.appendingPathComponent("scores.json").path
        try "[\(scores)]".write(toFile: file, atomically: true, encoding: .utf8)
        let r = try CLI.run(["eval", model, "--data", holdout, "--metric-command", "cat '\(file)' #"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.hasPrefix("command: 50.00 on 142 samples"), r.stdout)
        let split = try CLI.run(["eval", model, "--data", holdout, "--metric-command", printing("{\"score\": 42.5}")])
        XCTAssertEqual(split.status, 0, split.stderr)
        XCTAssertTrue(split.stdout.hasPrefix("command: 42.50 on 142 samples"), split.stdout)
    }

    func testSplitLevelSearchHasNoConfidenceInterval() throws {
        let dir = try CLI.temporaryDirectory()
        let out = dir.appendingPathComponent("map.json").path
        let r = try CLI.run(["search", model, "--calibration", "\(CLI.fixtures)/breast_cancer_raw_mlp_calib.npz",
                             "--search", "\(CLI.fixtures)/breast_cancer_raw_mlp_search.npz", "--holdout", holdout,
                             "--metric-command", printing("{\"score\": 90}"), "--budget", "1", "--out", out])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("no confidence interval"), r.stdout)
        let doc = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out))) as! [String: Any]
        XCTAssertEqual(doc["metric"] as? String, "command")
        let h = (doc["result"] as! [String: Any])["holdout"] as! [String: Any]
        XCTAssertEqual(h["mixed"] as? Double, 90)
        XCTAssertEqual(h["ci95"] as? [Double], [0, 0])
        XCTAssertNotNil(h["ci_note"] ?? h["ciNote"], "\(h)")
    }

    func testFailingCommandsExit2NamingTheCommand() throws {
        let cases: [(command: String, expect: [String])] = [
            ("echo 'model exploded' >&2; exit 7 #", ["exited with status 7", "model exploded"]),
            (printing("[1, 2, 3]"), ["printed 3 scores for 142 samples"]),
            (printing("[NaN]"), ["printed no JSON"]),
            (printing("not json"), ["printed no JSON"]),
            (printing("{\"points\": 3}"), ["neither an array"]),
            ("kill -9 $$ #", ["killed by signal"]),
        ]
        for c in cases {
            let r = try CLI.run(["eval", model, "--data", holdout, "--metric-command", c.command])
            XCTAssertEqual(r.status, 2, "\(c.command): \(r.stdout) \(r.stderr)")
            XCTAssertTrue(r.stderr.contains("--metric-command '\(c.command)'"), r.stderr)
            for e in c.expect { XCTAssertTrue(r.stderr.contains(e), "\(c.command): \(r.stderr)") }
            XCTAssertTrue(r.stdout.isEmpty, r.stdout)
        }
        let empty = try CLI.run(["eval", model, "--data", holdout, "--metric-command", " "])
        XCTAssertEqual(empty.status, 2)
    }
}

/// Sequence metrics from the command line on the CTC fixture (docs/metrics.md).
final class SequenceMetricCLITests: XCTestCase {
    let model = "\(CLI.fixtures)/sequence/ctc_digits.onnx"
    let holdout = "\(CLI.fixtures)/sequence/ctc_digits_holdout.npz"

    func testCTCExactAndLabelShapeErrors() throws {
        let r = try CLI.run(["eval", model, "--data", holdout, "--metric", "ctc-exact"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.hasPrefix("ctc-exact: 87.00 on 400 samples"), r.stdout)   // numpy on ORT: 87.00
        // top1 per position needs one label per position: [N, 20], not the [N, 5] targets.
        let top1 = try CLI.run(["eval", model, "--data", holdout, "--metric", "top1"])
        XCTAssertEqual(top1.status, 2)
        XCTAssertTrue(top1.stderr.contains("must be [N, 20]") && top1.stderr.contains("[N, 5]"), top1.stderr)
        let axis = try CLI.run(["eval", model, "--data", holdout, "--metric", "agreement", "--class-axis", "0"])
        XCTAssertEqual(axis.status, 2)
        XCTAssertTrue(axis.stderr.contains("--class-axis 0"), axis.stderr)
    }
}
