import Foundation
import XCTest

/// `mpq inspect --data`: symbolic input dims take the data's sizes (text_encoder: [N, L]).
final class InspectDataCLITests: XCTestCase {
    let model = "\(CLI.fixtures)/text_encoder.onnx", data = "\(CLI.fixtures)/text_encoder_calib.npz"

    func testSymbolicDimsNeedDataOrShape() throws {
        let r = try CLI.run(["inspect", model])
        XCTAssertEqual(r.status, 2)
        XCTAssertTrue(r.stderr.contains("symbolic dimension 1") && r.stderr.contains("--data"), r.stderr)
    }

    func testDataFixesTheShapes() throws {
        let r = try CLI.run(["inspect", model, "--data", data, "--batch", "3", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(json["inputs"] as? [String: [Int]], ["input_ids": [3, 32], "attention_mask": [3, 32]])
        // Same report as with the shapes given by hand.
        let byHand = try CLI.run(["inspect", model, "--batch", "3", "--json", "--input-shape", "input_ids=3,32", "--input-shape", "attention_mask=3,32"])
        XCTAssertEqual(byHand.status, 0, byHand.stderr)
        let other = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(byHand.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(json["total_macs"] as? Int ?? json["totalMacs"] as? Int, other["total_macs"] as? Int ?? other["totalMacs"] as? Int)
        XCTAssertGreaterThan(json["totalMacs"] as? Int ?? json["total_macs"] as? Int ?? 0, 0)
        let both = try CLI.run(["inspect", model, "--data", data, "--input-shape", "input_ids=3,32"])
        XCTAssertEqual(both.status, 2, both.stderr)
    }
}
