import Foundation
import XCTest

/// QDQ export of a transformer encoder with every MatMul INT8, including the activation x
/// activation ones (both inputs quantized per tensor): the exported model, run in FP32,
/// must score what mpq's INT8 runtime scores on the map.
final class ExportTransformerCLITests: XCTestCase {
    func testActivationMatMulsExportAndScoreTheSame() throws {
        let f = CLI.fixtures
        let model = "\(f)/text_encoder.onnx"
        let inspect = try CLI.run(["inspect", model, "--input-shape", "input_ids=1,32", "--input-shape", "attention_mask=1,32", "--json"])
        XCTAssertEqual(inspect.status, 0, inspect.stderr)
        let nodes = (try JSONSerialization.jsonObject(with: Data(inspect.stdout.utf8)) as! [String: Any])["nodes"] as! [[String: Any]]
        let layers = nodes.filter { $0["quantizable"] as! Bool }.map { $0["name"] as! String }
        XCTAssertEqual(layers.count, 18, "12 weight MatMul/Gemm + 4 attention MatMuls + pooler + classifier")
        let dir = try CLI.temporaryDirectory()
        let map = dir.appendingPathComponent("map.json").path
        let body = layers.map { "\"\($0)\": \"int8\"" }.joined(separator: ", ")
        try Data("{\"layers\": {\(body)}}".utf8).write(to: URL(fileURLWithPath: map))
        let qdq = dir.appendingPathComponent("te.qdq.onnx").path
        let e = try CLI.run(["export", model, "--precision", map, "--format", "qdq", "--calibration", "\(f)/text_encoder_calib.npz", "--out", qdq])
        XCTAssertEqual(e.status, 0, e.stderr)
        func score(_ args: [String]) throws -> Double {
            let r = try CLI.run(["eval"] + args + ["--data", "\(f)/text_encoder_holdout.npz", "--json"])
            XCTAssertEqual(r.status, 0, r.stderr)
            return (try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any])["score"] as! Double
        }
        let int8 = try score([model, "--precision", map, "--calibration", "\(f)/text_encoder_calib.npz"])
        let exported = try score([qdq])
        XCTAssertEqual(int8, exported, "mpq INT8 vs the exported QDQ model in mpq's FP32 runtime")
    }
}
