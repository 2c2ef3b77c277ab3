import Foundation
import XCTest
import ONNX

/// `--detection-format` against the shapes_det layout fixtures (docs/detection.md).
final class DetectionLayoutCLITests: XCTestCase {
    let dir = CLI.fixtures + "/detection"

    func testYoloOnYolov8OutputIsExit2NamingOutputShapeAndClasses() throws {
        let r = try CLI.run(["eval", dir + "/shapes_det_v8.onnx", "--data", dir + "/shapes_det_calib.npz", "--metric", "map50",
                             "--detection-format", "yolo"])
        XCTAssertEqual(r.status, 2, r.stderr)
        for s in ["'output0' [1,7,128]", "class ids 0..2", "cannot produce 2", "yolov8"] { XCTAssertTrue(r.stderr.contains(s), r.stderr) }
        XCTAssertEqual(r.stdout, "")
    }

    func testAutoSaysWhatItChose() throws {
        // The first 8 calibration images (a short run).
        let tmp = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: tmp) }
        let small = tmp.appendingPathComponent("small.npz").path
        try Numpy.writeNPZ(try Numpy.readNPZ(path: dir + "/shapes_det_calib.npz").mapValues { $0.gather(Array(0..<8)) }, path: small)
        let r = try CLI.run(["eval", dir + "/shapes_det_2out.onnx", "--data", small, "--metric", "map50", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("detection layout (auto): boxes-scores"), r.stderr)
        XCTAssertTrue(r.stderr.contains("'boxes' + 'scores'"), r.stderr)
    }
}
