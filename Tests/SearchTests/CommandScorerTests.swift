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
}
