import Foundation
import XCTest

/// Issue 14's acceptance for the degrading fixtures: a 1-point search under `--scheme ort`.
/// - `sensor_raw_mlp` (2,000 search and 2,000 holdout samples: 0.05 points each) loses about 25
///   points all-INT8; the search keeps `/0/Gemm` FP32 and the answer meets the budget on the holdout.
/// - `breast_cancer_raw_mlp` (142 holdout samples: 0.70 points each) cannot confirm a 1-point
///   budget at all; the search says so in the map and on stdout, and exits 3 when it misses.
final class DegradingBudgetCLITests: XCTestCase {
    func json(_ path: String) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as! [String: Any]
    }

    func testOnePointSearchOnTheLargeDegradingFixtureMeetsTheBudgetOnTheHoldout() throws {
        let f = "\(CLI.fixtures)/sensor_raw_mlp"
        let out = try CLI.temporaryDirectory().appendingPathComponent("map.json").path
        let r = try CLI.run(["search", "\(f).onnx", "--calibration", "\(f)_calib.npz", "--search", "\(f)_search.npz",
                             "--holdout", "\(f)_holdout.npz", "--scheme", "ort", "--budget", "1%", "--strategy", "greedy",
                             "--out", out])
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        let doc = try json(out)
        XCTAssertEqual(doc["budget_met"] as? Bool, true)
        XCTAssertEqual(doc["scheme"] as? String, "ort")
        let result = doc["result"] as! [String: Any]
        let search = result["search"] as! [String: Any], holdout = result["holdout"] as! [String: Any]
        XCTAssertGreaterThan((search["fp32"] as! Double) - (search["int8_all"] as! Double), 1, "all-INT8 must miss 1 point")
        XCTAssertGreaterThan((holdout["fp32"] as! Double) - (holdout["int8_all"] as! Double), 1, "all-INT8 must miss 1 point")
        XCTAssertLessThanOrEqual(holdout["drop"] as! Double, 1)
        XCTAssertNil(holdout["resolution_note"], "2,000 holdout samples confirm a 1-point budget")
        let layers = doc["layers"] as! [[String: Any]]
        XCTAssertEqual(layers.map { $0["precision"] as! String }, ["fp32", "int8", "int8", "int8"],
                       "the first Gemm carries the loss; the other three run INT8")
        XCTAssertFalse(r.stdout.contains("note:"), r.stdout)
        XCTAssertFalse(r.stderr.contains("warning:"), r.stderr)
    }

    func testTooSmallHoldoutIsReportedAndAMissExits3() throws {
        let f = "\(CLI.fixtures)/breast_cancer_raw_mlp"
        let out = try CLI.temporaryDirectory().appendingPathComponent("map.json").path
        let r = try CLI.run(["search", "\(f).onnx", "--calibration", "\(f)_calib.npz", "--search", "\(f)_search.npz",
                             "--holdout", "\(f)_holdout.npz", "--scheme", "ort", "--budget", "1%", "--strategy", "greedy",
                             "--out", out])
        // Search drop 0, holdout 2 of 142 samples lost (1.41 points): a miss, reported as one.
        XCTAssertEqual(r.status, 3, r.stdout + r.stderr)
        let doc = try json(out)
        XCTAssertEqual(doc["budget_met"] as? Bool, false)
        let holdout = (doc["result"] as! [String: Any])["holdout"] as! [String: Any]
        let note = try XCTUnwrap(holdout["resolution_note"] as? String)
        XCTAssertTrue(note.contains("142 samples cannot confirm a 1-point budget"), note)
        XCTAssertTrue(note.contains("at least 368 samples"), note)
        XCTAssertTrue(r.stdout.contains("note: the holdout split's 142 samples"), r.stdout)
        // ... and warns before the search runs.
        XCTAssertTrue(r.stderr.contains("warning: the holdout split's 142 samples cannot confirm"), r.stderr)
    }
}
