import Foundation
import XCTest
@testable import Kernels
import ONNX

/// mpq's FP32 runtime against ONNX Runtime outputs recorded by tools/fixtures/generate.py.
final class FixtureParityTests: XCTestCase {
    /// The acceptance tolerance: max |mpq - ORT| <= 1e-4 x max |ORT output|, per output.
    static let relativeToMax: Float = 1e-4

    struct Fixture: Decodable {
        let name: String
        let model: String
        let expected: String
        let expected_split: String
        let data: [String: String]
        let ort_fp32_top1: [String: Double]
        let outputs: [Output]
        struct Output: Decodable { let name: String }
    }

    func fixtures() throws -> [Fixture] {
        let names = try FileManager.default.contentsOfDirectory(atPath: FixturePaths.root).filter { $0.hasSuffix(".json") }.sorted()
        return try names.map { try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: URL(fileURLWithPath: FixturePaths.path($0)))) }
    }

    /// Max abs difference over max |reference|, the quantity the tolerance bounds.
    static func relativeError(_ got: Tensor, _ want: Tensor) -> Float {
        let scale = max(want.floats.map(abs).max() ?? 0, 1e-12)
        return zip(got.floats, want.floats).map { abs($0 - $1) }.max().map { $0 / scale } ?? 0
    }

    func testTrainedFixturesMatchOnnxRuntime() throws {
        let all = try fixtures()
        XCTAssertGreaterThanOrEqual(all.count, 3, "expected the digits CNN, the MLP and its variants")
        for f in all {
            for optimize in [false, true] {
                let graph = try ModelLoader.load(path: FixturePaths.path(f.model))
                let session = try Session(graph: optimize ? GraphPasses.optimize(graph) : graph)
                let split = f.data[f.expected_split]!
                let data = try Dataset(path: FixturePaths.path(split), graph: graph)
                let expected = try Numpy.readNPZ(path: FixturePaths.path(f.expected))
                var outs: [String: [Float]] = [:]
                for r in data.batches(size: 50) {
                    let y = try session.run(data.batch(r))
                    for o in f.outputs { outs[o.name, default: []] += y[o.name]!.floats }
                }
                var correct = 0
                for o in f.outputs {
                    let want = expected[o.name]!
                    let got = Tensor(shape: want.shape, floats: outs[o.name]!)
                    let err = Self.relativeError(got, want)
                    print("fixture \(f.name) output \(o.name) (fused: \(optimize)): max abs diff / max |out| = \(err)")
                    XCTAssertLessThanOrEqual(err, Self.relativeToMax, "\(f.name) output \(o.name), fused: \(optimize)")
                }
                // Top-1 must equal ONNX Runtime's exactly.
                let logits = Tensor(shape: expected[f.outputs[0].name]!.shape, floats: outs[f.outputs[0].name]!)
                let width = logits.shape[1]
                for i in 0..<data.count {
                    let row = logits.floats[i * width..<(i + 1) * width]
                    if row.firstIndex(of: row.max()!)! - i * width == Int(data.labels![i]) { correct += 1 }
                }
                let top1 = (10000 * Double(correct) / Double(data.count)).rounded() / 100
                XCTAssertEqual(top1, f.ort_fp32_top1[f.expected_split]!, "\(f.name) top-1 vs ONNX Runtime")
            }
        }
    }

    struct OpCase: Decodable { let model: String; let inputs: String; let expected: String }

    func testSingleOpFixturesMatchOnnxRuntime() throws {
        let manifest = try JSONDecoder().decode([String: OpCase].self,
            from: Data(contentsOf: URL(fileURLWithPath: FixturePaths.path("ops/manifest.json"))))
        XCTAssertGreaterThan(manifest.count, 10)
        for (name, c) in manifest.sorted(by: { $0.key < $1.key }) {
            let graph = try ModelLoader.load(path: FixturePaths.path("ops/\(c.model)"))
            let session = try Session(graph: graph)
            let feeds = try Numpy.readNPZ(path: FixturePaths.path("ops/\(c.inputs)"))
            let expected = try Numpy.readNPZ(path: FixturePaths.path("ops/\(c.expected)"))
            let outs = try session.run(feeds)
            for (key, want) in expected {
                let got = try XCTUnwrap(outs[key], "\(name): output \(key) missing")
                XCTAssertEqual(got.shape, want.shape, "\(name) output \(key) shape")
                guard got.shape == want.shape else { continue }
                if want.dtype.isFloating {
                    let err = Self.relativeError(got, want)
                    XCTAssertLessThanOrEqual(err, Self.relativeToMax, "\(name) output \(key): \(err)")
                } else {
                    XCTAssertEqual(got.asInts, want.ints, "\(name) output \(key)")
                }
            }
        }
    }
}
