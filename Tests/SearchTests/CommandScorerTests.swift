import Foundation
import XCTest
import Kernels
import ONNX
@testable import Search

/// What `--metric-command` hands the command: OUTPUTS.npz with every graph output, DATA.npz
/// with the split's arrays, REFERENCE.npz with the FP32 outputs (docs/metrics.md).
final class CommandScorerTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/sequence").path

    func testCommandSeesOutputsDataAndReference() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mpq-cmd-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let session = try Session(graph: GraphPasses.optimize(ModelLoader.load(path: "\(Self.fixtures)/ctc_digits.onnx")))
        let data = try Dataset(path: "\(Self.fixtures)/ctc_digits_search.npz", graph: session.graph)
        // Copies the three files aside, then prints a split-level score.
        let scorer = CommandScorer(command: "f() { cp \"$1\" '\(dir)/o.npz'; cp \"$2\" '\(dir)/d.npz'; cp \"$3\" '\(dir)/r.npz'; echo '{\"score\": 12.5}'; }; f")
        let outputs = try Evaluator(session: session, dataset: data, batchSize: 128, scorer: scorer).run()
        XCTAssertEqual(outputs.width, 20 * 11)
        var reference = outputs
        reference.values = reference.values.map { $0 + 1 }
        XCTAssertEqual(try scorer.score(outputs, reference: reference, data: data, range: 0..<data.count), .split(12.5))
        let o = try Numpy.readNPZ(path: "\(dir)/o.npz"), d = try Numpy.readNPZ(path: "\(dir)/d.npz"), r = try Numpy.readNPZ(path: "\(dir)/r.npz")
        XCTAssertEqual(o["logits"]?.shape, [400, 20, 11])
        XCTAssertEqual(o["logits"]?.floats, outputs.values)
        XCTAssertEqual(r["logits"]?.floats, reference.values)
        XCTAssertEqual(Set(d.keys), ["input", "labels"])
        XCTAssertEqual(d["labels"]?.shape, [400, 5])
        XCTAssertEqual(d["labels"]?.ints, data.labels)
        XCTAssertEqual(d["input"]?.floats, data.arrays["input"]?.floats)
        XCTAssertFalse(scorer.scoresBatchwise)
    }

    func testPerSampleScoresAndErrors() throws {
        let session = try Session(graph: GraphPasses.optimize(ModelLoader.load(path: "\(Self.fixtures)/ctc_digits.onnx")))
        let data = try Dataset(path: "\(Self.fixtures)/ctc_digits_calib.npz", graph: session.graph)
        let scores = (0..<data.count).map { String($0 % 2 * 100) }.joined(separator: ",")
        let scorer = CommandScorer(command: "echo '[\(scores)]' #")
        let outputs = try Evaluator(session: session, dataset: data, batchSize: 200, scorer: scorer).run()
        XCTAssertEqual(try scorer.score(outputs, reference: nil, data: data, range: 0..<data.count).score, 50)
        let bad = CommandScorer(command: "echo 'to stderr' >&2; false #")
        XCTAssertThrowsError(try bad.score(outputs, reference: nil, data: data, range: 0..<data.count)) {
            guard case .commandFailed(let c, let reason, let stderr)? = $0 as? MetricError else { return XCTFail("\($0)") }
            XCTAssertEqual(c, "echo 'to stderr' >&2; false #")
            XCTAssertTrue(reason.contains("status 1"), reason)
            XCTAssertEqual(stderr, "to stderr")
        }
    }

    /// Scored from spooled rows (a large split), the command gets the same OUTPUTS.npz and
    /// REFERENCE.npz bytes as from rows in memory; two graph outputs, so each entry is
    /// gathered from its columns of the spool across the writer's 16 KiB chunks.
    func testSpooledRowsWriteTheSameFiles() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mpq-cmd-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let data = try EarlyRejectionTests.sortedSplit()
        let n = data.count
        let a = Tensor(shape: [n, 3, 5], floats: (0..<n * 15).map { Float($0 % 101) * 0.5 })
        let b = Tensor(shape: [n, 7], floats: (0..<n * 7).map { Float($0 % 13) - 6 })
        var files: [[Data]] = []
        for spooled in [false, true] {
            let tag = spooled ? "s" : "m"
            let scorer = CommandScorer(command: "f() { cp \"$1\" '\(dir)/o\(tag).npz'; cp \"$3\" '\(dir)/r\(tag).npz'; echo '{\"score\": 3}'; }; f")
            let rows = try scorer.rows(["b": b, "a": a], output: "a", transform: .identity, data: data, range: 0..<n)
            let o = Outputs(values: rows.floats, rows: n, width: 22)
            let r = Outputs(values: rows.floats.map { $0 * 2 }, rows: n, width: 22)
            if spooled {
                let os = try RowSpool(width: 22, sampleShape: [22]), rs = try RowSpool(width: 22, sampleShape: [22])
                for range in data.batches(size: 64) {
                    try os.append(Array(o.values[range.lowerBound * 22..<range.upperBound * 22]))
                    try rs.append(Array(r.values[range.lowerBound * 22..<range.upperBound * 22]))
                }
                XCTAssertEqual(try scorer.score(spooled: os, reference: rs, data: data, range: 0..<n), .split(3))
            } else {
                XCTAssertEqual(try scorer.score(o, reference: r, data: data, range: 0..<n), .split(3))
            }
            files.append(try ["o", "r"].map { try Data(contentsOf: URL(fileURLWithPath: "\(dir)/\($0)\(tag).npz")) })
        }
        XCTAssertEqual(files[0], files[1], "same bytes")
        XCTAssertEqual(try Numpy.readNPZ(path: "\(dir)/os.npz")["a"], a)
        XCTAssertTrue(CommandScorer(command: "true").scoresFromDisk)
    }
}
