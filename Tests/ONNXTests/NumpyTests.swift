import Foundation
import XCTest
@testable import ONNX

final class NumpyTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures").path

    func testEveryDTypeStoredAndDeflated() throws {
        for file in ["dtypes_stored.npz", "dtypes_deflated.npz"] {
            let a = try Numpy.readNPZ(path: "\(Self.fixtures)/errors/\(file)")
            XCTAssertEqual(a["f32"]?.shape, [2, 2]); XCTAssertEqual(a["f32"]?.floats, [1.5, -2.25, 3.0, 0.0])
            XCTAssertEqual(a["f64"]?.dtype, .float64); XCTAssertEqual(a["f64"]!.floats[0], Float(1.0 / 3.0))
            XCTAssertEqual(a["f16"]?.floats, [0.5, -1.25, 65504.0])
            XCTAssertEqual(a["i64"]?.ints, [-(1 << 40), 7])
            XCTAssertEqual(a["i32"]?.ints, [-5, Int64(Int32.max)])
            XCTAssertEqual(a["i8"]?.ints, [-128, 127, 0]); XCTAssertEqual(a["i8"]?.dtype, .int8)
            XCTAssertEqual(a["u8"]?.ints, [0, 255, 17])
            XCTAssertEqual(a["b"]?.ints, [1, 0, 1]); XCTAssertEqual(a["b"]?.dtype, .bool)
            XCTAssertEqual(a["scalar"]?.shape, []); XCTAssertEqual(a["scalar"]?.floats, [4.0])
        }
    }

    func testWriteThenReadRoundTrips() throws {
        let dir = try scratchDirectory("npz")
        let path = dir.appendingPathComponent("x.npz").path
        let arrays: [String: Tensor] = [
            "a": Tensor(shape: [2, 3], floats: [1, 2, 3, 4, 5, 6]),
            "b": Tensor(shape: [3], ints: [-1, 0, 9], dtype: .int64),
            "c": Tensor(shape: [2], ints: [255, 3], dtype: .uint8),
        ]
        try Numpy.writeNPZ(arrays, path: path)
        XCTAssertEqual(try Numpy.readNPZ(path: path), arrays)
        // Same arrays, same bytes.
        let first = try Data(contentsOf: URL(fileURLWithPath: path))
        try Numpy.writeNPZ(arrays, path: path)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path)), first)
    }

    func testCorruptArchiveNamesTheFile() throws {
        let dir = try scratchDirectory("npz")
        let path = dir.appendingPathComponent("bad.npz").path
        try Data("PK not really".utf8).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try Numpy.readNPZ(path: path)) { XCTAssertTrue("\($0)".contains(path), "\($0)") }
    }

    func testTruncatedNpyIsAnError() throws {
        let t = Tensor(shape: [4], floats: [1, 2, 3, 4])
        let data = Numpy.npyData(t)
        XCTAssertEqual(try Numpy.parseNPY(data, path: "x.npy"), t)
        XCTAssertThrowsError(try Numpy.parseNPY(data.prefix(data.count - 3), path: "x.npy")) {
            XCTAssertTrue("\($0)".contains("needs 16 data bytes"), "\($0)")
        }
    }
}

final class SHA256Tests: XCTestCase {
    func testKnownVectors() {
        XCTAssertEqual(SHA256.hex(Data()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(SHA256.hex(Data("abc".utf8)), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(SHA256.hex(Data(String(repeating: "a", count: 1000).utf8)),
                       "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3")
    }
}
