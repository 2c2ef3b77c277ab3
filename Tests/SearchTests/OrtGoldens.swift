import XCTest
import ONNX

/// Helpers for tests that compare mpq with outputs recorded from ONNX Runtime by a fixture
/// generator (tools/fixtures, tools/goldens). One place for the two things every such test
/// does: read what ORT's optimizer made of an export, and count values that differ in bits.
enum OrtGoldens {
    /// The `fused` entry of a golden file: ORT's optimized graph as "OpType:count,..." bytes,
    /// returned as `{op type: count}` (-1 for a count that does not parse).
    static func fusedCounts(_ golden: [String: Tensor], file: StaticString = #filePath, line: UInt = #line) throws -> [String: Int] {
        String(decoding: try XCTUnwrap(golden["fused"], "golden has no 'fused' entry", file: file, line: line).ints.map { UInt8($0) },
               as: UTF8.self)
            .split(separator: ",").reduce(into: [String: Int]()) { d, kv in
                let p = kv.split(separator: ":"); d[String(p[0])] = p.count > 1 ? Int(p[1]) ?? -1 : -1
            }
    }

    /// Asserts that `got` has `want`'s shape and the same float bits everywhere; the message
    /// names `what` and how many of the values differ.
    static func assertBitIdentical(_ got: Tensor, _ want: Tensor, _ what: @autoclosure () -> String,
                                   file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(got.shape, want.shape, what(), file: file, line: line)
        let differing = zip(got.floats, want.floats).filter { $0.bitPattern != $1.bitPattern }.count
        XCTAssertEqual(differing, 0, "\(what()): \(differing) of \(want.count) values differ from ONNX Runtime's",
                       file: file, line: line)
    }
}
