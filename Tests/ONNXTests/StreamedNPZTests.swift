import Foundation
import XCTest
@testable import ONNX

/// `Numpy.writeNPZ(streaming:)` (`--save-outputs`, docs/scale.md) writes, chunk by chunk,
/// the file the whole-array writer writes: the same bytes for the same arrays.
final class StreamedNPZTests: XCTestCase {
    func source(_ name: String, _ t: Tensor) -> NPZEntrySource {
        let data = Numpy.npyData(t)
        let header = Numpy.npyHeader(dtype: t.dtype, shape: t.shape).count
        var reads = 0
        return NPZEntrySource(name: name, dtype: t.dtype, shape: t.shape, dataBytes: data.count - header) { offset, count in
            reads += 1
            return data.subdata(in: header + offset..<header + offset + count)
        }
    }

    func testStreamedFileIsByteIdenticalToTheWholeArrayWriter() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mpq-npz-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        // Big enough for many of the archive's 16 KiB chunks, and a width that splits floats across them.
        let rows = 3000, width = 7
        let values = (0..<rows * width).map { Float($0 % 977) * 0.37 - 11 }
        let arrays = ["logits": Tensor(shape: [rows, width], floats: values),
                      "labels": Tensor(shape: [rows], ints: (0..<rows).map { Int64($0 % 10) }),
                      "empty": Tensor(shape: [0, 4], floats: [])]
        let whole = dir.appendingPathComponent("whole.npz").path, streamed = dir.appendingPathComponent("streamed.npz").path
        try Numpy.writeNPZ(arrays, path: whole)
        try Numpy.writeNPZ(streaming: arrays.map { source($0.key, $0.value) }, path: streamed)
        let a = try Data(contentsOf: URL(fileURLWithPath: whole)), b = try Data(contentsOf: URL(fileURLWithPath: streamed))
        XCTAssertGreaterThan(a.count, rows * width * 4)
        XCTAssertEqual(a, b, "same bytes")
        XCTAssertEqual(try Numpy.readNPZ(path: streamed)["logits"]?.floats, values)
    }

    func testShortReadFailsAndLeavesNoFile() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mpq-npz-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("out.npz").path
        let bad = NPZEntrySource(name: "y", dtype: .float32, shape: [10, 10], dataBytes: 400) { _, count in Data(count: count / 2) }
        XCTAssertThrowsError(try Numpy.writeNPZ(streaming: [bad], path: path)) { e in
            XCTAssertTrue("\(e)".contains("array 'y' gave"), "\(e)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: path), "no partial output")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), [], "no temporary file left")
    }
}
