import Foundation
import XCTest
@testable import ONNX

/// Data validation when a file is bound to a model (docs/data-validation.md): labels,
/// NaN/Inf, zero rows, integer ranges. Each error names the file and array.
final class DatasetValidationTests: XCTestCase {
    static let digits = try! ModelLoader.load(path: NumpyTests.fixtures + "/digits_cnn.onnx")
    static let text = try! ModelLoader.load(path: NumpyTests.fixtures + "/text_encoder.onnx")

    func images(_ n: Int, fill: Float = 0.5) -> Tensor {
        Tensor(shape: [n, 1, 16, 16], floats: [Float](repeating: fill, count: n * 256))
    }

    func bind(_ arrays: [String: Tensor], graph: Graph = digits, allowNonfinite: Bool = false) throws -> Dataset {
        try Dataset(arrays: arrays, path: "d.npz", graph: graph, allowNonfinite: allowNonfinite)
    }

    func assertError(_ arrays: [String: Tensor], graph: Graph = digits, contains parts: [String],
                     file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try bind(arrays, graph: graph), file: file, line: line) { e in
            for p in ["d.npz"] + parts { XCTAssertTrue("\(e)".contains(p), "missing '\(p)' in: \(e)", file: file, line: line) }
        }
    }

    func testLabelsMustBeIntegerClassIndicesOfShapeN() throws {
        let x = images(3)
        XCTAssertEqual(try bind(["input": x, "labels": Tensor(shape: [3], ints: [0, 9, 4])]).labels, [0, 9, 4])
        assertError(["input": x, "labels": Tensor(shape: [3], floats: [0, 1, 2])], contains: ["'labels'", "integer", "float32"])
        assertError(["input": x, "labels": Tensor(shape: [3], floats: [0, .infinity, 2])], contains: ["'labels'", "integer"])
        assertError(["input": x, "labels": Tensor(shape: [3], ints: [1, 0, 1], dtype: .bool)], contains: ["'labels'", "bool"])
        assertError(["input": x, "labels": Tensor(shape: [3, 1], ints: [0, 1, 2])], contains: ["'labels'", "[3]", "[3,1]"])
        assertError(["input": x, "labels": Tensor(shape: [2], ints: [0, 1])], contains: ["'labels'", "[3]", "[2]"])
        assertError(["input": x, "labels": Tensor(shape: [3], ints: [0, -1, 2])], contains: ["'labels'", "row 1", "-1", "negative"])
        // uint64 2^64-1 is stored as the bit pattern -1: reported as the value it is.
        assertError(["input": x, "labels": Tensor(shape: [3], ints: [0, 1, -1], dtype: .uint64)],
                    contains: ["row 2", "18446744073709551615"])
    }

    func testNonFiniteInputIsAnErrorUnlessAllowed() throws {
        var x = images(4)
        x.floats[2 * 256 + 7] = .nan
        x.floats[3 * 256] = -.infinity
        assertError(["input": x], contains: ["'input'", "2 NaN or infinite values", "row 2", "--allow-nonfinite"])
        XCTAssertEqual(try bind(["input": x], allowNonfinite: true).count, 4)
        assertError(["input": images(2, fill: .nan)], contains: ["'input'", "512 NaN", "row 0"])
        // Arrays metrics read besides the inputs (detection boxes) too.
        let boxes = Tensor(shape: [2, 1, 4], floats: [0, 0, 1, 1, 0, .nan, 1, 1])
        assertError(["input": images(2), "gt_boxes": boxes], contains: ["'gt_boxes'", "1 NaN or infinite value,", "row 1"])
        XCTAssertNoThrow(try bind(["input": images(2), "gt_boxes": boxes], allowNonfinite: true))
    }

    func testZeroRowsIsAnError() throws {
        assertError(["input": images(0), "labels": Tensor(shape: [0], ints: [])], contains: ["no samples", "[0,1,16,16]"])
    }

    func testIntegerInputsAreRangeCheckedBeforeTheCast() throws {
        let mask = Tensor(shape: [2, 32], ints: [Int64](repeating: 1, count: 64))
        var ids = Tensor(shape: [2, 32], ints: [Int64](repeating: 5, count: 64), dtype: .uint64)
        XCTAssertEqual(try bind(["input_ids": ids, "attention_mask": mask], graph: Self.text).arrays["input_ids"]?.dtype, .int64)
        // 2^64-1 used to wrap to -1.
        ids.ints[32 + 3] = -1
        assertError(["input_ids": ids, "attention_mask": mask], graph: Self.text,
                    contains: ["'input_ids'", "row 1", "18446744073709551615", "int64"])
        // Narrow targets.
        let t = Tensor(shape: [2, 2], ints: [0, 1, 300, 2], dtype: .int64)
        XCTAssertEqual(Dataset.firstOutOfRange(t, for: .uint8)?.0, 1)
        XCTAssertEqual(Dataset.firstOutOfRange(t, for: .uint8)?.1, "300")
        XCTAssertNil(Dataset.firstOutOfRange(t, for: .int16))
        XCTAssertEqual(Dataset.firstOutOfRange(Tensor(shape: [1], ints: [-1]), for: .uint32)?.1, "-1")
        XCTAssertEqual(Dataset.firstOutOfRange(Tensor(shape: [1], ints: [Int64(Int32.max) + 1]), for: .int32)?.1, "2147483648")
        XCTAssertEqual(Dataset.firstOutOfRange(Tensor(shape: [1], ints: [2]), for: .bool)?.1, "2")
        XCTAssertNil(Dataset.firstOutOfRange(Tensor(shape: [1], ints: [-1], dtype: .uint64), for: .uint64))
    }
}
