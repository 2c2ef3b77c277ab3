import Foundation
import XCTest
import Kernels
import ONNX
@testable import Search

/// Splits are disjoint by content, not only by path (docs/search.md, "Splits").
final class DataSplitsTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures").path

    static let graph = Graph(nodes: [Node(name: "id", opType: "Identity", inputs: ["x"], outputs: ["y"])], initializers: [:],
                             inputs: [ValueInfo(name: "x", dtype: .float32, shape: [nil, 3])],
                             outputs: [ValueInfo(name: "y", dtype: .float32, shape: [nil, 3])], opsets: ["": 17])

    func data(_ rows: [[Float]], _ path: String, labels: [Int64]? = nil) throws -> Dataset {
        var arrays = ["x": Tensor(shape: [rows.count, 3], floats: rows.flatMap { $0 })]
        if let labels { arrays["labels"] = Tensor(shape: [labels.count], ints: labels) }
        return try Dataset(arrays: arrays, path: path, graph: Self.graph)
    }

    func testSharedRowsAreCountedPerLaterSplit() throws {
        let cal = try data([[1, 2, 3], [4, 5, 6]], "cal.npz")
        // Row [4, 5, 6] again (under another label: the input is what counts), and -0 != 0 bitwise.
        let search = try data([[4, 5, 6], [7, 8, 9], [0, 0, 0]], "search.npz", labels: [1, 0, 0])
        let holdout = try data([[7, 8, 9], [7, 8, 9], [-0.0, 0, 0]], "holdout.npz")
        let o = DataSplits(calibration: cal, search: search, holdout: holdout, description: "").overlaps
        XCTAssertEqual(o.map(\.rows), [1, 2])
        XCTAssertEqual(o.map(\.later), ["search (search.npz)", "holdout (holdout.npz)"])
        XCTAssertThrowsError(try DataSplits(calibration: cal, search: search, holdout: holdout, description: "").checkDisjoint(allowOverlap: false)) {
            XCTAssertTrue("\($0)".contains("1 row of search (search.npz) also in calibration (cal.npz); 2 rows of holdout (holdout.npz) also in search (search.npz)"), "\($0)")
            XCTAssertTrue("\($0)".contains("--allow-overlap"), "\($0)")
        }
        XCTAssertEqual(try DataSplits(calibration: cal, search: search, holdout: holdout, description: "").checkDisjoint(allowOverlap: true).count, 2)
    }

    func testCommittedFixtureSplitsAreDisjoint() throws {
        for (model, prefix) in [("text_encoder.onnx", "text_encoder"), ("digits_cnn.onnx", "digits"),
                                ("tabular_mlp.onnx", "breast_cancer")] {
            let graph = try ModelLoader.load(path: "\(Self.fixtures)/\(model)")
            let splits = try DataSplits.load(calibration: "\(Self.fixtures)/\(prefix)_calib.npz", search: "\(Self.fixtures)/\(prefix)_search.npz",
                                             holdout: "\(Self.fixtures)/\(prefix)_holdout.npz", graph: graph)
            XCTAssertEqual(splits.overlaps, [], prefix)
        }
    }

    func testCalibrationTableRecordsTheDataDigest() throws {
        let cal = try data([[1, 2, 3], [4, 5, 6]], "cal.npz")
        let table = try Calibrator(session: Kernels.Session(graph: Self.graph)).calibrate(dataset: cal, options: CalibrationOptions(method: .minmax), modelDigest: "m")
        XCTAssertEqual(table.dataDigest, cal.contentDigest())
        XCTAssertNotEqual(table.dataDigest, try data([[1, 2, 3], [4, 5, 7]], "other.npz").contentDigest())
        let path = NSTemporaryDirectory() + "/t-\(UUID()).json"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try table.save(to: path)
        XCTAssertEqual(try CalibrationTable.load(path: path).dataDigest, table.dataDigest)
    }
}
