import Foundation
import XCTest

/// `--state` for search and sweep (docs/search.md, "Resuming"): a rerun, or a run resumed
/// from a partial state, writes the same bytes as a run without state; a state made from
/// other inputs is refused with exit 2.
final class ResumeCLITests: XCTestCase {
    let model = "\(CLI.fixtures)/breast_cancer_raw_mlp.onnx"
    var splits: [String] {
        ["--calibration", "\(CLI.fixtures)/breast_cancer_raw_mlp_calib.npz",
         "--search", "\(CLI.fixtures)/breast_cancer_raw_mlp_search.npz",
         "--holdout", "\(CLI.fixtures)/breast_cancer_raw_mlp_holdout.npz",
         "--scheme", "inputs"]
    }
    var searchFlags: [String] {
        splits + ["--budget", "2%", "--strategy", "both", "--seed", "7", "--generations", "6", "--population", "10",
                  "--batch-size", "16"]
    }

    func bytes(_ path: String) throws -> Data { try Data(contentsOf: URL(fileURLWithPath: path)) }

    /// Keeps the first `n` saved evaluations, as a run killed after them would have left.
    func truncate(state: String, to n: Int) throws -> Int {
        let url = URL(fileURLWithPath: state)
        var doc = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        let all = doc["evaluations"] as! [Any]
        doc["evaluations"] = Array(all.prefix(n))
        try JSONSerialization.data(withJSONObject: doc, options: [.sortedKeys]).write(to: url)
        return all.count
    }

    func testSearchWithStateRerunsAndResumesToTheSameBytes() throws {
        let dir = try CLI.temporaryDirectory().path
        let plain = "\(dir)/plain.json"
        let r0 = try CLI.run(["search", model] + searchFlags + ["--out", plain])
        XCTAssertEqual(r0.status, 0, r0.stderr)
        let state = "\(dir)/state"
        for (i, out) in ["\(dir)/first.json", "\(dir)/second.json"].enumerated() {
            let r = try CLI.run(["search", model] + searchFlags + ["--state", state, "--out", out])
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertEqual(try bytes(out), try bytes(plain), "run \(i + 1) with --state differs from the run without")
        }
        let saved = try truncate(state: "\(state)/evaluations.json", to: 5)
        XCTAssertGreaterThan(saved, 10, "every evaluation is saved")
        let resumed = "\(dir)/resumed.json"
        let r = try CLI.run(["search", model] + searchFlags + ["--state", state, "--out", resumed])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try bytes(resumed), try bytes(plain), "a resumed run must count what the search used")
        let doc = try JSONSerialization.jsonObject(with: bytes("\(state)/evaluations.json")) as! [String: Any]
        XCTAssertEqual((doc["evaluations"] as! [Any]).count, saved, "the resumed run saves what it computed")
        XCTAssertEqual(doc["schema"] as? String, "mpq.search-state/1")
    }

    func testSweepSharesOneStateAcrossBudgets() throws {
        let dir = try CLI.temporaryDirectory().path
        let flags = splits + ["--budgets", "1,2,5", "--strategy", "both", "--seed", "7", "--generations", "4", "--population", "8"]
        let plain = "\(dir)/plain.json", state = "\(dir)/state"
        XCTAssertEqual(try CLI.run(["sweep", model] + flags + ["--out", plain]).status, 0)
        for out in ["\(dir)/first.json", "\(dir)/second.json"] {
            let r = try CLI.run(["sweep", model] + flags + ["--state", state, "--out", out])
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertEqual(try bytes(out), try bytes(plain))
        }
        _ = try truncate(state: "\(state)/evaluations.json", to: 7)
        let resumed = "\(dir)/resumed.json"
        XCTAssertEqual(try CLI.run(["sweep", model] + flags + ["--state", state, "--out", resumed]).status, 0)
        XCTAssertEqual(try bytes(resumed), try bytes(plain))
    }

    func testStateFromAnotherSeedOrSchemeIsRefused() throws {
        let dir = try CLI.temporaryDirectory().path
        let state = "\(dir)/state", out = "\(dir)/map.json"
        let base = splits + ["--budget", "2%", "--strategy", "greedy", "--state", state, "--out", out]
        XCTAssertEqual(try CLI.run(["search", model] + base + ["--seed", "7"]).status, 0)
        try FileManager.default.removeItem(atPath: out)
        let seed = try CLI.run(["search", model] + base + ["--seed", "8"])
        XCTAssertEqual(seed.status, 2, seed.stderr)
        XCTAssertTrue(seed.stderr.contains("evaluations.json was made with another seed;"), seed.stderr)
        let flags = base.filter { $0 != "inputs" && $0 != "--scheme" } + ["--seed", "7", "--scheme", "ort"]
        let scheme = try CLI.run(["search", model] + flags)
        XCTAssertEqual(scheme.status, 2, scheme.stderr)
        XCTAssertTrue(scheme.stderr.contains("evaluations.json was made with another") && scheme.stderr.contains("scheme"), scheme.stderr)
        let sweep = try CLI.run(["sweep", model] + splits + ["--budgets", "1,2", "--strategy", "greedy", "--seed", "9",
                                                            "--state", state, "--out", out])
        XCTAssertEqual(sweep.status, 2, sweep.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out), "a refused state writes no map")
    }
}
