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
}
