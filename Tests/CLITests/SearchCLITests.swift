import Foundation
import XCTest
#if canImport(FoundationXML)
import FoundationXML
#endif

/// `mpq search`, `sensitivity` and `sweep` on the degrading fixture (all-INT8 loses
/// 24.6 search points, concentrated in its first layer).
final class SearchCLITests: XCTestCase {
    let model = "\(CLI.fixtures)/breast_cancer_raw_mlp.onnx"
    var splits: [String] {
        ["--calibration", "\(CLI.fixtures)/breast_cancer_raw_mlp_calib.npz",
         "--search", "\(CLI.fixtures)/breast_cancer_raw_mlp_search.npz",
         "--holdout", "\(CLI.fixtures)/breast_cancer_raw_mlp_holdout.npz",
         // These numbers are the inputs scheme's (Q/DQ on layer inputs); ort is tested in ExecutionSchemeTests.
         "--scheme", "inputs"]
    }

    func json(_ path: String) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as! [String: Any]
    }

    func testGreedyAndEvolutionaryMeetTheBudgetOnTheSearchSplitDeterministically() throws {
        let dir = try CLI.temporaryDirectory()
        var objectives: [String: Double] = [:]
        for strategy in ["greedy", "evolutionary"] {
            let a = dir.appendingPathComponent("\(strategy)-a.json").path, b = dir.appendingPathComponent("\(strategy)-b.json").path
            for out in [a, b] {
                let r = try CLI.run(["search", model] + splits + ["--budget", "2%", "--strategy", strategy, "--seed", "7",
                                                                  "--generations", "6", "--population", "10", "--out", out])
                XCTAssertEqual(r.status, 0, "\(strategy): \(r.stdout) \(r.stderr)")
            }
            XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: a)), try Data(contentsOf: URL(fileURLWithPath: b)),
                           "\(strategy): the same seed must give the same bytes")
            let doc = try json(a)
            let result = doc["result"] as! [String: Any]
            let search = result["search"] as! [String: Any], holdout = result["holdout"] as! [String: Any]
            XCTAssertLessThanOrEqual(search["drop"] as! Double, 2, strategy)
            XCTAssertEqual((holdout["ci95"] as! [Double]).count, 2)
            XCTAssertEqual(doc["schema"] as? String, "mpq.precision-map/1")
            XCTAssertEqual(doc["seed"] as? Int, 7)
            let layers = doc["layers"] as! [[String: Any]]
            XCTAssertEqual(layers.first?["name"] as? String, "/0/Gemm")
            XCTAssertEqual(layers.first?["precision"] as? String, "fp32", "the first layer carries the loss")
            objectives[strategy] = doc["objective_value"] as? Double
            // The map reproduces its holdout score in mpq eval.
            let e = try CLI.run(["eval", model, "--data", "\(CLI.fixtures)/breast_cancer_raw_mlp_holdout.npz", "--precision", a,
                                 "--calibration", "\(CLI.fixtures)/breast_cancer_raw_mlp_calib.npz", "--json"])
            XCTAssertEqual(e.status, 0, e.stderr)
            let score = (try JSONSerialization.jsonObject(with: Data(e.stdout.utf8)) as! [String: Any])["score"] as! Double
            XCTAssertEqual(score, holdout["mixed"] as! Double, accuracy: 0.01)
        }
        XCTAssertGreaterThanOrEqual(objectives["evolutionary"]!, objectives["greedy"]!)
    }

    func testUnreachableBudgetExits3AndStillWritesTheMap() throws {
        let out = try CLI.temporaryDirectory().appendingPathComponent("map.json").path
        // The holdout loses 1.41 points even with the best map: a 0.5-point budget cannot hold there.
        let r = try CLI.run(["search", model] + splits + ["--budget", "0.5%", "--strategy", "greedy", "--out", out])
        XCTAssertEqual(r.status, 3, r.stderr)
        let doc = try json(out)
        XCTAssertEqual(doc["budget_met"] as? Bool, false)
        XCTAssertFalse((doc["pareto"] as! [Any]).isEmpty)
        XCTAssertTrue(r.stdout.contains("NOT met"), r.stdout)
    }

    /// The speed line says why INT8 may not beat FP32 on the AVX2 path: 8-bit weights there run
    /// the widening GEMM, and --weight-bits 7 is the way out (s29); not with 7-bit weights, and
    /// not on the VNNI path.
    func testSpeedLineNamesTheWideningGEMMOnTheAVX2Path() throws {
        let dir = try CLI.temporaryDirectory()
        for (args, expected) in [(["--kernel-path", "avx2"], true), (["--kernel-path", "avx2", "--weight-bits", "7"], false),
                                 (["--kernel-path", "reference"], false)] {
            let out = dir.appendingPathComponent("map-\(args.joined()).json").path
            let r = try CLI.run(["search", model] + splits + ["--budget", "2%", "--strategy", "greedy", "--out", out] + args)
            if r.status == 2 && r.stderr.contains("not supported by this CPU") { throw XCTSkip("no AVX2 here: \(r.stderr)") }
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertTrue(r.stdout.contains("speed in mpq's runtime"), r.stdout)
            XCTAssertEqual(r.stdout.contains("--weight-bits 7 (ONNX Runtime's reduce_range)"), expected, "\(args): \(r.stdout)")
        }
    }

    func testSensitivityIsCheapAndResumes() throws {
        let dir = try CLI.temporaryDirectory()
        let state = dir.appendingPathComponent("state").path
        let full = dir.appendingPathComponent("full.json").path
        let r = try CLI.run(["sensitivity", model] + splits + ["--state", state, "--out", full])
        XCTAssertEqual(r.status, 0, r.stderr)
        let report = try json(full)
        let layers = report["layers"] as! [[String: Any]]
        XCTAssertEqual(layers.count, 4)
        // Cheaper than one full-model evaluation per layer, thanks to the activation caches.
        XCTAssertLessThan(report["full_model_equivalents"] as! Double, 4)
        // Simulate a run killed after two layers, then resume: same layers, same numbers.
        var partial = report
        partial["layers"] = Array(layers.prefix(2))
        partial["complete"] = false
        let statePath = "\(state)/sensitivity.json"
        try JSONSerialization.data(withJSONObject: partial, options: [.sortedKeys]).write(to: URL(fileURLWithPath: statePath))
        let resumed = dir.appendingPathComponent("resumed.json").path
        let r2 = try CLI.run(["sensitivity", model] + splits + ["--state", state, "--out", resumed])
        XCTAssertEqual(r2.status, 0, r2.stderr)
        let again = try json(resumed)
        XCTAssertEqual(NSArray(array: again["layers"] as! [Any]), NSArray(array: layers))
        XCTAssertEqual(again["complete"] as? Bool, true)
    }

    func testSweepRequireGatesTheExitCodeAndWritesJUnit() throws {
        let dir = try CLI.temporaryDirectory()
        let out = dir.appendingPathComponent("sweep.json").path, xml = dir.appendingPathComponent("sweep.xml").path
        let met = try CLI.run(["sweep", model] + splits + ["--budgets", "1,2", "--require", "2%", "--strategy", "greedy",
                                                          "--out", out, "--junit", xml])
        XCTAssertEqual(met.status, 0, met.stderr)
        let missed = try CLI.run(["sweep", model] + splits + ["--budgets", "1,2", "--require", "1%", "--strategy", "greedy",
                                                             "--out", out, "--junit", xml])
        XCTAssertEqual(missed.status, 3, missed.stderr)
        let text = try String(contentsOfFile: xml, encoding: .utf8)
        XCTAssertTrue(text.hasPrefix("<?xml"))
        XCTAssertTrue(text.contains("<testcase classname=\"mpq.budget\" name=\"budget 1%\">"), text)
        XCTAssertTrue(text.contains("tests=\"2\" failures=\"1\""), text)
        let parser = XMLParser(data: Data(text.utf8))
        XCTAssertTrue(parser.parse(), "JUnit XML must be well-formed: \(String(describing: parser.parserError))")
        let sweep = try json(out)
        XCTAssertEqual((sweep["rows"] as! [Any]).count, 2)
        XCTAssertEqual(sweep["all_required_met"] as? Bool, false)
    }

    func testBadSplitFlagsAreUsageErrors() throws {
        XCTAssertEqual(try CLI.run(["search", model, "--out", "/tmp/x.json"]).status, 2)
        XCTAssertEqual(try CLI.run(["search", model, "--data", "\(CLI.fixtures)/breast_cancer_raw_mlp_search.npz", "--split", "0.5,0.6,0.1",
                                    "--out", "/tmp/x.json"]).status, 2)
        XCTAssertEqual(try CLI.run(["search", model] + splits + ["--budget", "lots", "--out", "/tmp/x.json"]).status, 2)
        XCTAssertEqual(try CLI.run(["sweep", model] + splits + ["--budgets", "1,2", "--require", "3%", "--out", "/tmp/x.json"]).status, 2)
    }
}

final class ReportCLITests: XCTestCase {
    func testReportIsSelfContainedHTMLAndMarkdown() throws {
        let dir = try CLI.temporaryDirectory()
        let map = dir.appendingPathComponent("map.json").path
        let f = CLI.fixtures
        let s = try CLI.run(["search", "\(f)/breast_cancer_raw_mlp.onnx", "--calibration", "\(f)/breast_cancer_raw_mlp_calib.npz",
                             "--search", "\(f)/breast_cancer_raw_mlp_search.npz", "--holdout", "\(f)/breast_cancer_raw_mlp_holdout.npz",
                             "--budget", "2%", "--strategy", "greedy", "--out", map])
        XCTAssertEqual(s.status, 0, s.stderr)
        let html = dir.appendingPathComponent("report.html").path
        let r = try CLI.run(["report", map, "--out", html])
        XCTAssertEqual(r.status, 0, r.stderr)
        let text = try String(contentsOfFile: html, encoding: .utf8)
        XCTAssertTrue(text.hasPrefix("<!DOCTYPE html>"))
        for forbidden in ["http://", "https://", "<script", "<link", "src="] {
            XCTAssertFalse(text.contains(forbidden), "the report must make no external requests: found \(forbidden)")
        }
        for expected in ["/0/Gemm", "<svg", "94.37", "80.99", "92.96", "Budget met"] {
            XCTAssertTrue(text.contains(expected), "missing \(expected)")
        }
        let md = dir.appendingPathComponent("report.md").path
        XCTAssertEqual(try CLI.run(["report", map, "--format", "markdown", "--out", md]).status, 0)
        let mdText = try String(contentsOfFile: md, encoding: .utf8)
        XCTAssertTrue(mdText.contains("| breast_cancer_raw_mlp.onnx | 94.37 | 80.99 | 92.96 |"), mdText)
        XCTAssertTrue(mdText.contains("Kept in FP32: `/0/Gemm`"), mdText)
        // Not a map: exit 2, no file.
        let bad = dir.appendingPathComponent("bad.html").path
        let e = try CLI.run(["report", "\(f)/digits_cnn.json", "--out", bad])
        XCTAssertEqual(e.status, 2)
        XCTAssertFalse(FileManager.default.fileExists(atPath: bad))
    }
}
