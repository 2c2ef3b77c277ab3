import Foundation
import XCTest

/// `mpq profile`: every executed node once, in execution order, shares summing to 100%,
/// and the INT8 side marks the layers and region ops that ran in INT8.
final class ProfileCLITests: XCTestCase {
    func testProfileCoversEveryNodeAndSharesSumTo100() throws {
        let model = "\(CLI.examples)/digits_cnn.onnx"
        let r = try CLI.run(["profile", model, "--data", "\(CLI.examples)/digits_holdout.npz", "--runs", "2",
                             "--precision", "int8", "--calibration", "\(CLI.examples)/digits_calib.npz", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let report = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let nodes = try XCTUnwrap(report["nodes"] as? [[String: Any]])
        // The optimised graph's nodes (inspect lists them in execution order).
        let inspect = try CLI.run(["inspect", model, "--json"])
        let planned = try XCTUnwrap((JSONSerialization.jsonObject(with: Data(inspect.stdout.utf8)) as? [String: Any])?["nodes"] as? [[String: Any]])
        XCTAssertEqual(nodes.map { $0["name"] as? String }, planned.map { $0["name"] as? String })
        for key in ["fp32_share", "share"] {
            let total = nodes.compactMap { $0[key] as? Double }.reduce(0, +)
            XCTAssertEqual(total, 100, accuracy: 0.01, key)
        }
        XCTAssertEqual(nodes.filter { $0["int8"] as? Bool == true }.count, 12, "7 layers and 5 region ops run INT8 (scheme ort)")
        XCTAssertEqual(report["scheme"] as? String, "ort")
        let conv = try XCTUnwrap(nodes.first { $0["name"] as? String == "/block/conv1/Conv" })
        XCTAssertEqual(conv["macs"] as? Int, 589824 * 16, "inspect's MACs at batch 1, times the batch of 16")
        XCTAssertGreaterThan(try XCTUnwrap(report["ms"] as? Double), 0)
    }
}
