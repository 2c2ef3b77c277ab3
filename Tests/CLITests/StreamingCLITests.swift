import Foundation
import ONNX
import XCTest

/// `mpq eval --data DIR` over a folder of shards (streamed batch by batch) must score and
/// output exactly what the one in-memory file gives (docs/scale.md).
final class StreamingCLITests: XCTestCase {
    func testEvalOverShardsEqualsEvalOverTheFile() throws {
        let model = "\(CLI.fixtures)/digits_cnn.onnx", file = "\(CLI.fixtures)/digits_search.npz"
        let all = try Numpy.readNPZ(path: file)
        let n = all["labels"]!.shape[0]
        let dir = try CLI.temporaryDirectory()
        let shards = dir.appendingPathComponent("shards").path
        try FileManager.default.createDirectory(atPath: shards, withIntermediateDirectories: true)
        let cuts = [0, 100, 101, n]
        for k in 0..<3 {
            try Numpy.writeNPZ(all.mapValues { $0.slice(cuts[k]..<cuts[k + 1]) }, path: "\(shards)/digits-\(k).npz")
        }
        var reports: [[String: Any]] = [], outputs: [Data] = []
        for (data, name) in [(file, "file"), (shards, "shards")] {
            let saved = dir.appendingPathComponent("\(name)-outputs.npz").path
            let r = try CLI.run(["eval", model, "--data", data, "--batch-size", "32",
                                 "--save-outputs", saved, "--json"])
            XCTAssertEqual(r.status, 0, r.stderr)
            reports.append(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any])
            outputs.append(try Data(contentsOf: URL(fileURLWithPath: saved)))
        }
        XCTAssertEqual(reports[0]["score"] as? Double, reports[1]["score"] as? Double)
        XCTAssertEqual(reports[1]["samples"] as? Int, n)
        XCTAssertEqual(outputs[0], outputs[1], "every sample's output, bit for bit")
        // An empty folder names itself.
        let empty = dir.appendingPathComponent("empty").path
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
        let r = try CLI.run(["eval", model, "--data", empty])
        XCTAssertEqual(r.status, 2)
        XCTAssertTrue(r.stderr.contains("no .npz shards"), r.stderr)
    }

    /// `--data X.npy` and `--calibration X.npy` (a single-input model's samples, read by rows)
    /// score and save what the same arrays in `.npz` files give.
    func testEvalOverNPYEqualsEvalOverTheNPZ() throws {
        let model = "\(CLI.fixtures)/digits_cnn.onnx"
        let dir = try CLI.temporaryDirectory()
        // The first 48 rows of each split (the test runs a debug build), as .npz and as .npy.
        var npy: [String] = [], npz: [String] = []
        for split in ["holdout", "calib"] {
            let arrays = try Numpy.readNPZ(path: "\(CLI.fixtures)/digits_\(split).npz").mapValues { $0.slice(0..<48) }
            let input = try XCTUnwrap(arrays.first { $0.key != "labels" }?.value)
            npy.append(dir.appendingPathComponent("\(split).npy").path)
            npz.append(dir.appendingPathComponent("\(split).npz").path)
            try Numpy.npyData(input).write(to: URL(fileURLWithPath: npy.last!))
            try Numpy.writeNPZ(arrays, path: npz.last!)
        }
        var scores: [Double] = [], outputs: [Data] = []
        for (data, calib, name) in [(npz[0], npz[1], "npz"), (npy[0], npy[1], "npy")] {
            let saved = dir.appendingPathComponent("\(name)-outputs.npz").path
            let r = try CLI.run(["eval", model, "--data", data, "--metric", "agreement", "--precision", "int8", "--calibration", calib,
                                 "--save-outputs", saved, "--json", "--quiet"])
            XCTAssertEqual(r.status, 0, r.stderr)
            scores.append(try XCTUnwrap((try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])?["score"] as? Double))
            outputs.append(try Data(contentsOf: URL(fileURLWithPath: saved)))
        }
        XCTAssertEqual(scores[0], scores[1])
        XCTAssertEqual(outputs[0], outputs[1], "every sample's output, bit for bit")
        // A label metric names what is missing.
        let r = try CLI.run(["eval", model, "--data", npy[0]])
        XCTAssertEqual(r.status, 2)
        XCTAssertTrue(r.stderr.contains("needs labels") && r.stderr.contains(npy[0]), r.stderr)
    }
}
