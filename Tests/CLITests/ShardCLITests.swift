import Foundation
import XCTest

/// Sharded sensitivity and sweep (`--shard K/N`, `mpq merge`, docs/scale.md) on the
/// breast-cancer MLP: the merged parts must be the report one machine writes.
final class ShardCLITests: XCTestCase {
    let model = "\(CLI.fixtures)/breast_cancer_raw_mlp.onnx"
    var splits: [String] {
        ["--calibration", "\(CLI.fixtures)/breast_cancer_raw_mlp_calib.npz",
         "--search", "\(CLI.fixtures)/breast_cancer_raw_mlp_search.npz",
         "--holdout", "\(CLI.fixtures)/breast_cancer_raw_mlp_holdout.npz",
         "--scheme", "inputs", "--seed", "3"]
    }

    func text(_ path: String) throws -> String { try String(contentsOfFile: path, encoding: .utf8) }

    /// The report without its cost fields, the only ones a merge sums instead of copying.
    func withoutCost(_ json: String) -> String {
        json.split(separator: "\n", omittingEmptySubsequences: false)
            .filter { !$0.contains("\"full_model_equivalents\"") && !$0.contains("\"evaluations\"") }
            .joined(separator: "\n")
    }

    func sensitivity(_ extra: [String], out: String, environment: [String: String] = [:]) throws -> CLIResult {
        try CLI.run(["sensitivity", model] + splits + extra + ["--out", out], environment: environment)
    }

    /// One unsharded report and the parts of N = 2 and N = 3, computed once for every test.
    struct Runs { let dir: String; let full: String; let parts: [Int: [String]] }
    nonisolated(unsafe) static var runs: Runs?

    func prepared() throws -> Runs {
        if let r = Self.runs { return r }
        let dir = try CLI.temporaryDirectory().path
        let full = "\(dir)/full.json"
        XCTAssertEqual(try sensitivity([], out: full).status, 0)
        var parts: [Int: [String]] = [:]
        for n in [2, 3] {
            parts[n] = try (0..<n).map { k in
                let part = "\(dir)/part-\(k)-of-\(n).json"
                let r = try sensitivity(["--shard", "\(k)/\(n)"], out: part)
                XCTAssertEqual(r.status, 0, r.stderr)
                return part
            }
        }
        Self.runs = Runs(dir: dir, full: full, parts: parts)
        return Self.runs!
    }

    func document(_ path: String) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as! [String: Any]
    }

    func testMergedShardsEqualTheUnshardedReport() throws {
        let runs = try prepared()
        let fullDoc = try document(runs.full)
        let layerCount = (fullDoc["layers"] as! [Any]).count
        XCTAssertEqual(layerCount, 4)
        for n in [2, 3] {
            let parts = runs.parts[n]!
            for (k, part) in parts.enumerated() {
                XCTAssertEqual((try document(part)["layers"] as! [Any]).count, (layerCount - k + n - 1) / n, "shard \(k)/\(n) holds layers k, k+n, ...")
            }
            let merged = "\(runs.dir)/merged-\(n).json"
            // Parts in any order.
            let m = try CLI.run(["merge"] + parts.reversed() + ["--out", merged])
            XCTAssertEqual(m.status, 0, m.stderr)
            XCTAssertEqual(withoutCost(try text(merged)), withoutCost(try text(runs.full)), "N=\(n): merged parts differ from one machine's report")
            let mergedDoc = try document(merged)
            XCTAssertEqual(mergedDoc["layers"] as! NSArray, fullDoc["layers"] as! NSArray, "N=\(n): every layer's numbers")
            XCTAssertNil(mergedDoc["shard"])
        }
    }

    func testMismatchedMissingAndDuplicatePartsAreRefused() throws {
        let runs = try prepared()
        let p0 = runs.parts[2]![0], p1 = runs.parts[2]![1]
        let dir = try CLI.temporaryDirectory().path
        let other = "\(dir)/other.json", percentile = "\(dir)/pct.json"
        XCTAssertEqual(try CLI.run(["sensitivity", model] + splits.dropLast(2) + ["--seed", "4", "--shard", "1/2", "--out", other]).status, 0)
        XCTAssertEqual(try sensitivity(["--shard", "1/2", "--calibrate", "percentile"], out: percentile).status, 0)
        let out = "\(dir)/merged.json"
        func refused(_ parts: [String], _ words: [String]) throws {
            let r = try CLI.run(["merge"] + parts + ["--out", out])
            XCTAssertEqual(r.status, 2, "\(parts): \(r.stderr)")
            for w in words { XCTAssertTrue(r.stderr.contains(w), "\(w) not in: \(r.stderr)") }
            XCTAssertFalse(FileManager.default.fileExists(atPath: out), "no partial output")
        }
        try refused([p0, other], ["other.json", "seed", "4 instead of 3"])
        try refused([p0, percentile], ["pct.json", "calibration"])
        try refused([p0], ["shard 1 of 2 missing"])
        try refused([p0, p0, p1], ["shard 0 is given twice"])
        try refused([p0, runs.parts[3]![1]], ["shard count"])
        try refused([runs.full, p1], ["full.json", "not a sharded sensitivity part"])
        // A bad --shard is a usage error.
        XCTAssertEqual(try sensitivity(["--shard", "2/2"], out: "\(dir)/x.json").status, 2)
    }

    func testShardAutoReadsKubernetesAndSlurmEnvironments() throws {
        let explicit = try prepared().parts[3]![1]
        let dir = try CLI.temporaryDirectory().path
        let k8s = "\(dir)/k8s.json", slurm = "\(dir)/slurm.json"
        XCTAssertEqual(try sensitivity(["--shard", "auto"], out: k8s, environment: ["JOB_COMPLETION_INDEX": "1", "MPQ_SHARD_COUNT": "3"]).status, 0)
        XCTAssertEqual(try sensitivity(["--shard", "auto"], out: slurm,
                                       environment: ["SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_COUNT": "3"]).status, 0)
        XCTAssertEqual(withoutCost(try text(k8s)), withoutCost(try text(explicit)))
        XCTAssertEqual(withoutCost(try text(slurm)), withoutCost(try text(explicit)))
        let missing = try sensitivity(["--shard", "auto"], out: "\(dir)/none.json", environment: ["JOB_COMPLETION_INDEX": "1"])
        XCTAssertEqual(missing.status, 2)
        XCTAssertTrue(missing.stderr.contains("MPQ_SHARD_COUNT"), missing.stderr)
    }

    func testSearchReusesAMergedAnalysisAndRefusesAnotherRunsOne() throws {
        let runs = try prepared()
        let dir = try CLI.temporaryDirectory().path
        let merged = "\(dir)/merged.json"
        XCTAssertEqual(try CLI.run(["merge"] + runs.parts[2]! + ["--out", merged]).status, 0)
        let search = ["search", model] + splits + ["--budget", "2%", "--strategy", "greedy", "--sensitivity", "always"]
        let fresh = "\(dir)/fresh.json", reused = "\(dir)/reused.json"
        XCTAssertEqual(try CLI.run(search + ["--out", fresh]).status, 0)
        let r = try CLI.run(search.dropLast(2) + ["--sensitivity", merged, "--out", reused])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try document(reused)["layers"] as! NSArray, try document(fresh)["layers"] as! NSArray,
                       "the same map, with the same sensitivity numbers")
        let other = try CLI.run(["search", model] + splits.dropLast(2) + ["--seed", "9", "--budget", "2%", "--strategy", "greedy",
                                                                          "--sensitivity", merged, "--out", "\(dir)/x.json"])
        XCTAssertEqual(other.status, 2)
        XCTAssertTrue(other.stderr.contains("seed"), other.stderr)
        let part = try CLI.run(search.dropLast(2) + ["--sensitivity", runs.parts[2]![0], "--out", "\(dir)/y.json"])
        XCTAssertEqual(part.status, 2)
        XCTAssertTrue(part.stderr.contains("merge the parts first"), part.stderr)
    }

    func testShardedSweepMergesToTheUnshardedRows() throws {
        let dir = try CLI.temporaryDirectory().path
        let sweep = ["sweep", model] + splits + ["--budgets", "1,2,3", "--require", "2%", "--strategy", "greedy"]
        let full = "\(dir)/full.json", p0 = "\(dir)/s0.json", p1 = "\(dir)/s1.json", merged = "\(dir)/merged.json"
        XCTAssertEqual(try CLI.run(sweep + ["--out", full]).status, 0)
        XCTAssertEqual(try CLI.run(sweep + ["--shard", "0/2", "--out", p0]).status, 0)
        XCTAssertEqual(try CLI.run(sweep + ["--shard", "1/2", "--out", p1]).status, 0)
        let m = try CLI.run(["merge", p1, p0, "--out", merged, "--junit", "\(dir)/merged.xml"])
        XCTAssertEqual(m.status, 0, m.stderr)
        func doc(_ p: String) throws -> [String: Any] {
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: p))) as! [String: Any]
        }
        let a = try doc(merged), b = try doc(full)
        XCTAssertEqual(a["rows"] as! NSArray, b["rows"] as! NSArray)
        XCTAssertEqual(a["all_required_met"] as? Bool, true)
        let mapsA = (a["maps"] as! [[String: Any]]).map { ($0["map"] as! [String: Any])["layers"] as! NSArray }
        let mapsB = (b["maps"] as! [[String: Any]]).map { ($0["map"] as! [String: Any])["layers"] as! NSArray }
        XCTAssertEqual(mapsA, mapsB)
        // A sensitivity part is not a sweep part.
        XCTAssertEqual(try CLI.run(["merge", p0, try prepared().parts[2]![1], "--out", "\(dir)/bad.json"]).status, 2)
    }
}
