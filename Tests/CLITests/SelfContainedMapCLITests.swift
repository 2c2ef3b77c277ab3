import Foundation
import XCTest

/// A map from `mpq search` runs on its own: its recorded scales and zero points, no
/// calibration data (docs/precision-map.md, "Self-contained maps").
final class SelfContainedMapCLITests: XCTestCase {
    let mlp = "\(CLI.fixtures)/breast_cancer_raw_mlp.onnx"
    var mlpSplits: [String] {
        ["--calibration", "\(CLI.fixtures)/breast_cancer_raw_mlp_calib.npz",
         "--search", "\(CLI.fixtures)/breast_cancer_raw_mlp_search.npz",
         "--holdout", "\(CLI.fixtures)/breast_cancer_raw_mlp_holdout.npz"]
    }

    func object(_ text: String) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], text)
    }

    /// `eval --precision map.json` without `--calibration` scores the holdout exactly as the
    /// search did, under both schemes: the `ort` one rebuilds the requantized tensors from
    /// the map's `tensors`. The eval prints 2 decimals and a holdout of 142 samples moves in
    /// steps of 0.70 points, so equal rounded scores are equal counts of correct samples; the
    /// outputs are the same bytes as the same layers run as a bare map (no parameters)
    /// calibrated on the search's calibration split.
    func testMapFromSearchEvaluatesWithoutCalibration() throws {
        let dir = try CLI.temporaryDirectory()
        for scheme in ["ort", "inputs"] {
            let map = dir.appendingPathComponent("\(scheme).json").path
            let s = try CLI.run(["search", mlp] + mlpSplits + ["--budget", "1%", "--strategy", "greedy", "--scheme", scheme,
                                                               "--out", map])
            XCTAssertTrue(s.status == 0 || s.status == 3, s.stderr)
            let doc = try object(String(decoding: try Data(contentsOf: URL(fileURLWithPath: map)), as: UTF8.self))
            let holdout = ((doc["result"] as! [String: Any])["holdout"] as! [String: Any])
            let mixed = try XCTUnwrap(holdout["mixed"] as? Double)
            let int8 = (doc["layers"] as! [[String: Any]]).filter { $0["precision"] as? String == "int8" }.count
            XCTAssertGreaterThan(int8, 0, "\(scheme): the map must run something in INT8 for the test to mean anything")
            let fromMap = dir.appendingPathComponent("\(scheme)-map.npz").path
            let calibrated = dir.appendingPathComponent("\(scheme)-calibrated.npz").path
            let e = try CLI.run(["eval", mlp, "--data", "\(CLI.fixtures)/breast_cancer_raw_mlp_holdout.npz",
                                 "--precision", map, "--json", "--save-outputs", fromMap])
            XCTAssertEqual(e.status, 0, "\(scheme): \(e.stderr)")
            let report = try object(e.stdout)
            XCTAssertEqual(report["score"] as? Double, (mixed * 100).rounded() / 100, "\(scheme): the map's holdout score")
            XCTAssertEqual(report["int8_layers"] as? Int, int8)
            var bare: [String: String] = [:]
            for l in doc["layers"] as! [[String: Any]] { bare[l["name"] as! String] = l["precision"] as? String }
            let bareMap = dir.appendingPathComponent("\(scheme)-bare.json").path
            try JSONSerialization.data(withJSONObject: ["layers": bare]).write(to: URL(fileURLWithPath: bareMap))
            let c = try CLI.run(["eval", mlp, "--data", "\(CLI.fixtures)/breast_cancer_raw_mlp_holdout.npz", "--precision", bareMap,
                                 "--scheme", scheme, "--calibration", "\(CLI.fixtures)/breast_cancer_raw_mlp_calib.npz",
                                 "--save-outputs", calibrated])
            XCTAssertEqual(c.status, 0, c.stderr)
            XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: fromMap)), try Data(contentsOf: URL(fileURLWithPath: calibrated)),
                           "\(scheme): the map's parameters are the calibration's, bit for bit")
        }
    }

    /// A bare map has no parameters: without `--calibration` it is a usage error (exit 2)
    /// naming the map and the flag; with it, it runs.
    func testBareMapNeedsCalibration() throws {
        let map = try CLI.temporaryDirectory().appendingPathComponent("bare.json").path
        try Data(#"{"layers": {"/0/Gemm": "int8"}}"#.utf8).write(to: URL(fileURLWithPath: map))
        let data = "\(CLI.fixtures)/breast_cancer_raw_mlp_holdout.npz"
        let r = try CLI.run(["eval", mlp, "--data", data, "--precision", map])
        XCTAssertEqual(r.status, 2, r.stderr)
        XCTAssertTrue(r.stderr.contains(map) && r.stderr.contains("--calibration"), r.stderr)
        XCTAssertEqual(r.stdout, "")
        let ok = try CLI.run(["eval", mlp, "--data", data, "--precision", map,
                              "--calibration", "\(CLI.fixtures)/breast_cancer_raw_mlp_calib.npz"])
        XCTAssertEqual(ok.status, 0, ok.stderr)
        let int8 = try CLI.run(["eval", mlp, "--data", data, "--precision", "int8"])
        XCTAssertEqual(int8.status, 2, "all-INT8 has nothing to take parameters from")
    }
}
