import Foundation
import XCTest
@testable import Kernels
import ONNX

/// mpq's FP32 runtime on a BERT-style encoder (`text_encoder`, written by
/// tools/fixtures/generate_transformer.py) against ONNX Runtime's outputs: eager attention with
/// the additive finfo.min mask, decomposed LayerNorm, erf GELU, Gather embeddings, Shape/Gather/
/// Concat/Reshape head splits, dynamic batch and sequence length.
final class TransformerParityTests: XCTestCase {
    static let relativeToMax: Float = 1e-4

    struct Meta: Decodable {
        let model: String
        let data: [String: String]
        let expected: String
        let ort_fp32_top1: [String: Double]
        let ort_fp32_correct: [String: Int]
        let max_length: Int
        let max_positions: Int
    }

    func meta() throws -> Meta {
        try JSONDecoder().decode(Meta.self, from: Data(contentsOf: URL(fileURLWithPath: FixturePaths.path("text_encoder.json"))))
    }

    static func relativeError(_ got: [Float], _ want: [Float]) -> Float {
        precondition(got.count == want.count)
        let scale = max(want.map(abs).max() ?? 0, 1e-12)
        return zip(got, want).map { abs($0 - $1) }.max().map { $0 / scale } ?? 0
    }

    static func argmaxRows(_ v: [Float], width: Int) -> [Int] {
        stride(from: 0, to: v.count, by: width).map { s in
            let row = v[s..<s + width]
            return row.firstIndex(of: row.max()!)! - s
        }
    }

    /// Rows `rows`, columns `0..<newLength` of an [N, L] int tensor; columns past L are padding (0).
    static func resize(_ t: Tensor, rows: [Int], newLength: Int) -> Tensor {
        let l = t.shape[1]
        var out = [Int64](repeating: 0, count: rows.count * newLength)
        for (i, r) in rows.enumerated() {
            for j in 0..<min(l, newLength) { out[i * newLength + j] = t.ints[r * l + j] }
        }
        return Tensor(shape: [rows.count, newLength], ints: out, dtype: t.dtype)
    }

    /// Runs `feeds` (all rows) in batches of `batch`, concatenating the logits.
    static func run(_ session: Session, _ feeds: [String: Tensor], batch: Int) throws -> [Float] {
        let n = feeds.values.first!.shape[0]
        var logits: [Float] = []
        for s in stride(from: 0, to: n, by: batch) {
            let r = s..<min(s + batch, n)
            let y = try session.run(feeds.mapValues { $0.slice(r) })
            let out = try XCTUnwrap(y["logits"])
            XCTAssertEqual(out.shape, [r.count, 4])
            logits += out.floats
        }
        return logits
    }

    func testLoadsWithDynamicAxes() throws {
        let graph = try ModelLoader.load(path: FixturePaths.path(try meta().model))
        XCTAssertEqual(graph.inputs.map(\.name).sorted(), ["attention_mask", "input_ids"])
        for input in graph.inputs {
            XCTAssertEqual(input.dtype, .int64, input.name)
            XCTAssertEqual(input.shape?.count, 2, input.name)
            XCTAssertEqual(input.shape?[0], nil, "\(input.name): batch must be dynamic")
            XCTAssertEqual(input.shape?[1], nil, "\(input.name): sequence length must be dynamic")
        }
    }

    func testHoldoutMatchesOnnxRuntime() throws {
        let m = try meta()
        let graph = try ModelLoader.load(path: FixturePaths.path(m.model))
        let data = try Dataset(path: FixturePaths.path(m.data["holdout"]!), graph: graph)
        let want = try XCTUnwrap(try Numpy.readNPZ(path: FixturePaths.path(m.expected))["logits"])
        XCTAssertEqual(want.shape, [data.count, 4])
        XCTAssertEqual(data.arrays["input_ids"]?.shape, [data.count, m.max_length])
        for (optimize, batch) in [(false, 50), (true, 50), (true, 7), (true, data.count)] {
            let session = try Session(graph: optimize ? GraphPasses.optimize(graph) : graph)
            let got = try Self.run(session, data.arrays, batch: batch)
            let err = Self.relativeError(got, want.floats)
            print("text_encoder holdout (optimized: \(optimize), batch \(batch)): max abs diff / max |out| = \(err)")
            XCTAssertLessThanOrEqual(err, Self.relativeToMax, "optimized \(optimize), batch \(batch)")
            let pred = Self.argmaxRows(got, width: 4)
            XCTAssertEqual(pred, Self.argmaxRows(want.floats, width: 4), "top-1 differs from ONNX Runtime")
            let correct = zip(pred, data.labels!).filter { Int64($0) == $1 }.count
            XCTAssertEqual(correct, m.ort_fp32_correct["holdout"], "holdout top-1 count vs ORT")
        }
    }

    /// The same rows padded to a longer sequence (40 > 32) and cut to a shorter one (rows whose
    /// real tokens fit in 16): the logits must not change, so no length is baked in.
    func testOtherSequenceLengths() throws {
        let m = try meta()
        let graph = GraphPasses.optimize(try ModelLoader.load(path: FixturePaths.path(m.model)))
        let session = try Session(graph: graph)
        let data = try Dataset(path: FixturePaths.path(m.data["holdout"]!), graph: try ModelLoader.load(path: FixturePaths.path(m.model)))
        let want = try XCTUnwrap(try Numpy.readNPZ(path: FixturePaths.path(m.expected))["logits"])
        let ids = data.arrays["input_ids"]!, mask = data.arrays["attention_mask"]!
        let l = ids.shape[1]
        let lengths = (0..<data.count).map { r in mask.ints[r * l..<(r + 1) * l].reduce(0, +) }

        let longer = 40
        XCTAssertLessThanOrEqual(longer, m.max_positions)
        let all = Array(0..<data.count)
        let padded = ["input_ids": Self.resize(ids, rows: all, newLength: longer),
                      "attention_mask": Self.resize(mask, rows: all, newLength: longer)]
        let gotLong = try Self.run(session, padded, batch: 64)
        let errLong = Self.relativeError(gotLong, want.floats)
        print("text_encoder holdout padded to L=\(longer): max abs diff / max |out| = \(errLong)")
        XCTAssertLessThanOrEqual(errLong, Self.relativeToMax)
        XCTAssertEqual(Self.argmaxRows(gotLong, width: 4), Self.argmaxRows(want.floats, width: 4))

        let shorter = 16
        let rows = all.filter { lengths[$0] <= Int64(shorter) }
        XCTAssertGreaterThan(rows.count, 20, "enough short holdout rows to test L=\(shorter)")
        let cut = ["input_ids": Self.resize(ids, rows: rows, newLength: shorter),
                   "attention_mask": Self.resize(mask, rows: rows, newLength: shorter)]
        let gotShort = try Self.run(session, cut, batch: 13)
        let wantShort = rows.flatMap { want.floats[$0 * 4..<($0 + 1) * 4] }
        let errShort = Self.relativeError(gotShort, wantShort)
        print("text_encoder \(rows.count) holdout rows cut to L=\(shorter): max abs diff / max |out| = \(errShort)")
        XCTAssertLessThanOrEqual(errShort, Self.relativeToMax)
        XCTAssertEqual(Self.argmaxRows(gotShort, width: 4), Self.argmaxRows(wantShort, width: 4))

        // One row alone, unpadded (L = its own length, no masked position at all).
        let r = rows[0]
        let single = ["input_ids": Self.resize(ids, rows: [r], newLength: Int(lengths[r])),
                      "attention_mask": Self.resize(mask, rows: [r], newLength: Int(lengths[r]))]
        let gotOne = try Self.run(session, single, batch: 1)
        XCTAssertLessThanOrEqual(Self.relativeError(gotOne, Array(want.floats[r * 4..<(r + 1) * 4])), Self.relativeToMax)
    }

    /// Opt-in (skipped unless MPQ_MINILM_DIR is set): mpq FP32 on all-MiniLM-L6-v2 from
    /// benchmarks/models/minilm.py against ONNX Runtime's `holdout_ort.npz`, on the first
    /// MPQ_MINILM_ROWS holdout sentences (default 200). Writes mpq's outputs to
    /// `holdout_mpq.npz` in that folder for benchmarks/models/compare_outputs.py.
    ///     MPQ_MINILM_DIR=$PWD/out/minilm swift test --filter TransformerParityTests/testMiniLMMatchesOnnxRuntime
    func testMiniLMMatchesOnnxRuntime() throws {
        let env = ProcessInfo.processInfo.environment
        guard let dir = env["MPQ_MINILM_DIR"] else { throw XCTSkip("set MPQ_MINILM_DIR to out/minilm (benchmarks/models/minilm.py)") }
        let rows = Int(env["MPQ_MINILM_ROWS"] ?? "") ?? 200
        let graph = try ModelLoader.load(path: "\(dir)/minilm.onnx")
        let session = try Session(graph: GraphPasses.optimize(graph))
        let data = try Dataset(path: "\(dir)/holdout.npz", graph: graph)
        let want = try XCTUnwrap(try Numpy.readNPZ(path: "\(dir)/holdout_ort.npz")["sentence_embedding"])
        let n = min(rows, data.count), width = want.shape[1]
        var got: [Float] = []
        let start = Date()
        for r in data.batches(size: 32) where r.lowerBound < n {
            let y = try session.run(data.batch(r.lowerBound..<min(r.upperBound, n)))
            got += try XCTUnwrap(y["sentence_embedding"]).floats
        }
        let seconds = Date().timeIntervalSince(start)
        let ref = Array(want.floats[0..<n * width])
        let err = Self.relativeError(got, ref)
        var minCos = 1.0
        for i in 0..<n {
            let a = got[i * width..<(i + 1) * width], b = ref[i * width..<(i + 1) * width]
            let dot = zip(a, b).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
            let na = a.reduce(0.0) { $0 + Double($1) * Double($1) }, nb = b.reduce(0.0) { $0 + Double($1) * Double($1) }
            minCos = min(minCos, dot / max((na * nb).squareRoot(), 1e-30))
        }
        print("minilm \(n) holdout rows (L=\(data.arrays["input_ids"]!.shape[1])): max abs diff / max |out| = \(err), " +
              "min cosine to ORT = \(minCos), \(String(format: "%.1f", seconds)) s")
        try Numpy.writeNPZ(["sentence_embedding": Tensor(shape: [n, width], floats: got)], path: "\(dir)/holdout_mpq.npz")
        XCTAssertLessThanOrEqual(err, Self.relativeToMax)
    }
}
