import Foundation
import XCTest
@testable import ONNX

/// `--data X.npy` (docs/scale.md): a plain `.npy` feeds a single-input model, read by rows
/// like a stored `.npz` entry, never whole; errors name the file.
final class NPYStreamingTests: XCTestCase {
    func temporary() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mpq-npy-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir
    }

    func testNPYFeedsWhatTheNPZFeeds() throws {
        let graph = try ModelLoader.load(path: NumpyTests.fixtures + "/breast_cancer_raw_mlp.onnx")
        let npz = NumpyTests.fixtures + "/breast_cancer_raw_mlp_search.npz"
        let memory = try Dataset(path: npz, graph: graph, loading: .memory)
        let input = try XCTUnwrap(Numpy.readNPZ(path: npz)[graph.inputs[0].name] ?? Numpy.readNPZ(path: npz)["input"])
        let npy = try temporary().appendingPathComponent("x.npy").path
        try Numpy.npyData(input).write(to: URL(fileURLWithPath: npy))
        let streamed = try Dataset(path: npy, graph: graph)
        XCTAssertTrue(streamed.isStreamed)
        XCTAssertEqual(streamed.count, memory.count)
        XCTAssertNil(streamed.labels)
        for range in memory.batches(size: 7) { XCTAssertEqual(try streamed.readBatch(range), try memory.readBatch(range)) }
        XCTAssertEqual(try streamed.readBatch(3..<5), try memory.readBatch(3..<5), "a backward read")
    }

    func testBadNPYNamesTheFile() throws {
        let graph = try ModelLoader.load(path: NumpyTests.fixtures + "/breast_cancer_raw_mlp.onnx")
        let width = (graph.inputs[0].shape?.last ?? nil) ?? 30
        let dir = try temporary()
        let good = Numpy.npyData(Tensor(shape: [4, width], floats: [Float](repeating: 0.5, count: 4 * width)))
        let cases: [(String, Data, String)] = [
            ("short.npy", good.prefix(good.count - 3), "needs \(4 * width * 4) data bytes, the file has"),
            ("header.npy", good.prefix(9), "header"),
            ("long.npy", good + Data([1, 2, 3, 4]), "the file has"),
        ]
        for (name, bytes, want) in cases {
            let path = dir.appendingPathComponent(name).path
            try bytes.write(to: URL(fileURLWithPath: path))
            XCTAssertThrowsError(try Dataset(path: path, graph: graph), name) { e in
                XCTAssertTrue("\(e)".contains(path), "\(name): \(e)")
                XCTAssertTrue("\(e)".contains(want), "\(name): \(e)")
            }
        }
        // Two inputs cannot come from one array.
        let two = try ModelLoader.load(path: NumpyTests.fixtures + "/text_encoder.onnx")
        XCTAssertGreaterThan(two.inputs.count, 1)
        let path = dir.appendingPathComponent("one.npy").path
        try good.write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try Dataset(path: path, graph: two)) { e in
            XCTAssertTrue("\(e)".contains("single-input model") && "\(e)".contains(path), "\(e)")
        }
    }
}
