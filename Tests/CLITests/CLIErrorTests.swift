import Foundation
import XCTest

/// Bad input gives a clear message naming the file, node, tensor or flag, and exit code 2;
/// success gives 0.
final class CLIErrorTests: XCTestCase {
    let model = "\(CLI.examples)/digits_cnn.onnx"
    let holdout = "\(CLI.examples)/digits_holdout.npz"

    func testEvalOnBundledExampleMatchesOnnxRuntime() throws {
        let r = try CLI.run(["eval", model, "--data", holdout, "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let json = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        XCTAssertEqual(json["metric"] as? String, "top1")
        XCTAssertEqual(json["samples"] as? Int, 359)
        XCTAssertEqual(json["score"] as? Double, 98.89)    // ONNX Runtime: 355/359 (Examples/README.md)
    }

    /// `--weight-type` picks the qdq / ort-exclude weight encoding; elsewhere it is a usage error.
    func testExportWeightTypeFlag() throws {
        let dir = try CLI.temporaryDirectory()
        let map = dir.appendingPathComponent("map.json").path
        try Data(#"{"layers": {"/block/conv1/Conv": "int8"}}"#.utf8).write(to: URL(fileURLWithPath: map))
        let out = dir.appendingPathComponent("m.qdq.onnx").path
        let ok = try CLI.run(["export", model, "--precision", map, "--format", "qdq", "--weight-type", "uint8",
                              "--calibration", "\(CLI.examples)/digits_calib.npz", "--out", out])
        XCTAssertEqual(ok.status, 0, ok.stderr)
        XCTAssertTrue(ok.stdout.contains("uint8 weights") && ok.stdout.contains("1 of"), ok.stdout)
        let flags = dir.appendingPathComponent("flags.txt").path
        let bad = try CLI.run(["export", model, "--precision", map, "--format", "trtexec", "--weight-type", "uint8", "--out", flags])
        XCTAssertEqual(bad.status, 2, bad.stderr)
        XCTAssertTrue(bad.stderr.contains("--weight-type"), bad.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: flags))
    }

    /// `--weight-bits 7` reaches the map (`weight_bits`), and a run asking other bits of that map fails.
    func testWeightBitsFlag() throws {
        let dir = try CLI.temporaryDirectory()
        let map = dir.appendingPathComponent("map7.json").path
        let s = try CLI.run(["search", model, "--calibration", "\(CLI.examples)/digits_calib.npz", "--search", "\(CLI.examples)/digits_search.npz",
                             "--holdout", holdout, "--budget", "100", "--strategy", "greedy", "--weight-bits", "7", "--out", map, "--quiet"])
        XCTAssertEqual(s.status, 0, s.stderr)
        let doc = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: map))) as! [String: Any]
        XCTAssertEqual(doc["weight_bits"] as? Int, 7)
        let ok = try CLI.run(["eval", model, "--data", holdout, "--precision", map, "--json"])
        XCTAssertEqual(ok.status, 0, ok.stderr)
        let bad = try CLI.run(["eval", model, "--data", holdout, "--precision", map, "--weight-bits", "8"])
        XCTAssertEqual(bad.status, 2, bad.stderr)
        XCTAssertTrue(bad.stderr.contains("--weight-bits 7"), bad.stderr)
        let six = try CLI.run(["eval", model, "--data", holdout, "--precision", "int8", "--calibration", "\(CLI.examples)/digits_calib.npz",
                               "--weight-bits", "6"])
        XCTAssertEqual(six.status, 2, six.stderr)
    }

    func testMissingModelFile() throws {
        let r = try CLI.run(["eval", "/nonexistent/model.onnx", "--data", holdout])
        XCTAssertEqual(r.status, 2)
        XCTAssertTrue(r.stderr.contains("/nonexistent/model.onnx"), r.stderr)
    }

    func testTruncatedModelIsAClearError() throws {
        let dir = try CLI.temporaryDirectory()
        let data = try Data(contentsOf: URL(fileURLWithPath: model))
        for (i, cut) in [data.count / 2, data.count - 7, 100].enumerated() {
            let path = dir.appendingPathComponent("truncated\(i).onnx").path
            try data.prefix(cut).write(to: URL(fileURLWithPath: path))
            let r = try CLI.run(["inspect", path])
            XCTAssertEqual(r.status, 2, "cut at \(cut): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains(path) && r.stderr.contains("not a valid ONNX model"), r.stderr)
        }
    }

    func testGarbageFileIsNotAModel() throws {
        let dir = try CLI.temporaryDirectory()
        let path = dir.appendingPathComponent("garbage.onnx").path
        try Data("this is not protobuf at all \u{1}\u{2}\u{3}".utf8).write(to: URL(fileURLWithPath: path))
        let r = try CLI.run(["inspect", path])
        XCTAssertEqual(r.status, 2, r.stderr)
        XCTAssertTrue(r.stderr.contains("not a valid ONNX model"), r.stderr)
    }

    func testUnsupportedOpFailsAtLoadNamingNodeTypeDomainOpset() throws {
        let r = try CLI.run(["inspect", "\(CLI.fixtures)/errors/unsupported_op.onnx"])
        XCTAssertEqual(r.status, 2, r.stderr)
        for part in ["'my_custom_node'", "'FancyOp'", "com.example", "opset 1"] {
            XCTAssertTrue(r.stderr.contains(part), "missing \(part) in: \(r.stderr)")
        }
    }

    func testMissingInputArrayNamesInputAndFile() throws {
        let r = try CLI.run(["eval", model, "--data", "\(CLI.fixtures)/breast_cancer_holdout.npz"])
        XCTAssertEqual(r.status, 2)
        XCTAssertTrue(r.stderr.contains("input 'input'") && r.stderr.contains("breast_cancer_holdout.npz") && r.stderr.contains("features"), r.stderr)
    }

    func testWrongShapeNamesExpectedAndActual() throws {
        let r = try CLI.run(["eval", "\(CLI.fixtures)/tabular_mlp.onnx", "--data", holdout])
        XCTAssertEqual(r.status, 2)
        XCTAssertTrue(r.stderr.contains("missing") || r.stderr.contains("expects"), r.stderr)
        let r2 = try CLI.run(["eval", model, "--data", "\(CLI.fixtures)/errors/wrong_shape.npz"])
        XCTAssertEqual(r2.status, 2)
        XCTAssertTrue(r2.stderr.contains("input 'input' expects [N,1,16,16]") && r2.stderr.contains("[4,64]"), r2.stderr)
    }

    func testWrongDTypeNamesExpectedAndActual() throws {
        let r = try CLI.run(["eval", model, "--data", "\(CLI.fixtures)/errors/wrong_dtype.npz"])
        XCTAssertEqual(r.status, 2)
        XCTAssertTrue(r.stderr.contains("input 'input' expects float32") && r.stderr.contains("int64"), r.stderr)
    }

    func testLabelMetricWithoutLabels() throws {
        let r = try CLI.run(["eval", model, "--data", "\(CLI.fixtures)/errors/no_labels.npz", "--metric", "top1"])
        XCTAssertEqual(r.status, 2)
        XCTAssertTrue(r.stderr.contains("needs labels"), r.stderr)
        let ok = try CLI.run(["eval", model, "--data", "\(CLI.fixtures)/errors/no_labels.npz", "--metric", "agreement"])
        XCTAssertEqual(ok.status, 0, ok.stderr)
    }

    func testUsageErrorsExitWith2() throws {
        XCTAssertEqual(try CLI.run(["eval", model]).status, 2)                                  // --data missing
        XCTAssertEqual(try CLI.run(["eval", model, "--data", holdout, "--metric", "top7"]).status, 2)
        XCTAssertEqual(try CLI.run(["eval", model, "--data", holdout, "--batch-size", "0"]).status, 2)
        XCTAssertEqual(try CLI.run(["frobnicate"]).status, 2)
        let r = try CLI.run(["eval", model, "--data", holdout, "--precision", "int8"])
        XCTAssertEqual(r.status, 2)
        XCTAssertTrue(r.stderr.contains("--calibration"), r.stderr)
        XCTAssertEqual(try CLI.run(["--help"]).status, 0)
    }

    func testPrecisionMapWithUnknownLayer() throws {
        let dir = try CLI.temporaryDirectory()
        let map = dir.appendingPathComponent("map.json").path
        try Data(#"{"version": 1, "layers": {"/no/such/Conv": "int8"}}"#.utf8).write(to: URL(fileURLWithPath: map))
        let r = try CLI.run(["eval", model, "--data", holdout, "--precision", map, "--calibration", "\(CLI.examples)/digits_calib.npz"])
        XCTAssertEqual(r.status, 2)
        XCTAssertTrue(r.stderr.contains("'/no/such/Conv'"), r.stderr)
    }

    func testCalibrationForAnotherModelIsRejected() throws {
        let dir = try CLI.temporaryDirectory()
        let calib = dir.appendingPathComponent("calib.json").path
        let c = try CLI.run(["calibrate", "\(CLI.fixtures)/tabular_mlp.onnx", "--data", "\(CLI.fixtures)/breast_cancer_calib.npz",
                             "--method", "minmax", "--out", calib, "--quiet"])
        XCTAssertEqual(c.status, 0, c.stderr)
        let r = try CLI.run(["eval", model, "--data", holdout, "--precision", "int8", "--calibration", calib])
        XCTAssertEqual(r.status, 2)
        XCTAssertTrue(r.stderr.contains(calib), r.stderr)
    }

    func testInt8EvalOnEveryKernelPath() throws {
        var scores: [Double] = []
        for path in ["reference", "avx2", "vnni"] {
            let r = try CLI.run(["eval", model, "--data", holdout, "--precision", "int8",
                                 "--calibration", "\(CLI.examples)/digits_calib.npz", "--kernel-path", path, "--json"])
            if r.status == 2 && r.stderr.contains("not supported by this CPU") { continue }
            XCTAssertEqual(r.status, 0, r.stderr)
            let json = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
            XCTAssertEqual(json["kernel_path"] as? String, path)
            scores.append(json["score"] as! Double)
        }
        XCTAssertFalse(scores.isEmpty)
        XCTAssertEqual(Set(scores).count, 1, "paths disagree: \(scores)")
    }

    func testInspectListsLayers() throws {
        let r = try CLI.run(["inspect", model, "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let json = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        XCTAssertEqual(json["quantizable_layers"] as? Int, 7)
        let nodes = json["nodes"] as! [[String: Any]]
        XCTAssertEqual(nodes.first?["name"] as? String, "/stem/stem.0/Conv")
        XCTAssertEqual(nodes.first?["op"] as? String, "Conv+Relu")
        XCTAssertEqual(nodes.first?["output_shape"] as? [Int], [1, 16, 16, 16])
    }
}
