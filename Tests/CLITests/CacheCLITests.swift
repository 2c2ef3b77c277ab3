import Foundation
import XCTest

/// `--cache-mb`, `--cache-dir`, `--cache-disk-mb` (docs/caching.md): a tiny cache changes the
/// cost and the hit rate, never a number of the report.
final class CacheCLITests: XCTestCase {
    let model = "\(CLI.fixtures)/breast_cancer_raw_mlp.onnx"
    var splits: [String] {
        ["--calibration", "\(CLI.fixtures)/breast_cancer_raw_mlp_calib.npz",
         "--search", "\(CLI.fixtures)/breast_cancer_raw_mlp_search.npz",
         "--holdout", "\(CLI.fixtures)/breast_cancer_raw_mlp_holdout.npz"]
    }

    func report(_ path: String) throws -> NSDictionary {
        let d = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as! [String: Any]
        // The cost and the state key (it records the cache options, which decide the cost)
        // may differ; no number of the report may.
        return NSDictionary(dictionary: d.filter { $0.key != "full_model_equivalents" && $0.key != "key" })
    }

    func testTinyCachesGiveTheDefaultSensitivityNumbers() throws {
        let dir = try CLI.temporaryDirectory()
        let spill = dir.appendingPathComponent("spill").path
        var reports: [String: NSDictionary] = [:]
        var costs: [String: Double] = [:]
        for (tag, flags) in [("default", []), ("none", ["--cache-mb", "0"]),
                             ("disk", ["--cache-mb", "0", "--cache-dir", spill, "--cache-disk-mb", "1"])] {
            let out = dir.appendingPathComponent("\(tag).json").path
            let r = try CLI.run(["sensitivity", model] + splits + flags + ["--out", out])
            XCTAssertEqual(r.status, 0, "\(tag): \(r.stderr)")
            XCTAssertTrue(r.stdout.contains("hit rate"), "\(tag): \(r.stdout)")
            if tag == "default" { XCTAssertTrue(r.stdout.contains("cache: every activation, 100.0% hit rate"), r.stdout) }
            if tag == "none" { XCTAssertTrue(r.stdout.contains(" 0.0% hit rate"), r.stdout) }
            if tag == "disk" { XCTAssertTrue(r.stdout.contains("100.0% hit rate") && r.stdout.contains("from disk"), r.stdout) }
            reports[tag] = try report(out)
            let full = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out))) as! [String: Any]
            costs[tag] = full["full_model_equivalents"] as? Double
            let evaluatorKey = (full["key"] as? [String: Any])?["evaluator"] as? String ?? ""
            // Only a disk spill adds its limit to the key (keys without one stay as they were).
            XCTAssertEqual(evaluatorKey.contains(" bytes disk 1048576 bytes reject "), tag == "disk", "\(tag): \(evaluatorKey)")
        }
        XCTAssertEqual(reports["none"], reports["default"])
        XCTAssertEqual(reports["disk"], reports["default"])
        XCTAssertLessThan(costs["default"]!, costs["none"]!)
        XCTAssertLessThan(costs["disk"]!, costs["none"]!)
        // The spill's subfolder is gone when mpq exits.
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: spill), [])
    }

    func testCacheDirThatIsAFileIsBadInput() throws {
        let file = try CLI.temporaryDirectory().appendingPathComponent("file").path
        try Data("x".utf8).write(to: URL(fileURLWithPath: file))
        let r = try CLI.run(["sensitivity", model] + splits + ["--cache-dir", file])
        XCTAssertEqual(r.status, 2, r.stderr)
        XCTAssertTrue(r.stderr.contains("--cache-dir"), r.stderr)
    }
}
