import Foundation
import XCTest
@testable import ONNX

/// Streamed data (Dataset+Streaming.swift, docs/scale.md) must feed exactly what the
/// in-memory path feeds: stored and deflated entries, float64 and integer arrays, splits
/// read through indices, and a folder of shards concatenated in name order.
final class DatasetStreamingTests: XCTestCase {
    static let cases: [(model: String, data: String)] = [
        ("digits_cnn.onnx", "digits_search.npz"),                        // deflated float64 images
        ("breast_cancer_raw_mlp.onnx", "breast_cancer_raw_mlp_search.npz"), // stored float32
        ("text_encoder.onnx", "text_encoder_search.npz"),                 // deflated int64 ids and mask
    ]

    func assertSameRows(_ a: Dataset, _ b: Dataset, _ what: String) throws {
        XCTAssertEqual(a.count, b.count, what)
        XCTAssertEqual(a.labels, b.labels, what)
        // Odd batch sizes cross shard and chunk boundaries; a backwards read restarts the inflater.
        for size in [7, 64, a.count] {
            for range in a.batches(size: size) { XCTAssertEqual(try a.readBatch(range), try b.readBatch(range), "\(what) rows \(range)") }
        }
        let back = a.batches(size: 5).reversed().prefix(3)
        for range in back { XCTAssertEqual(try a.readBatch(range), try b.readBatch(range), "\(what) backwards \(range)") }
    }

    func testStreamedFilesFeedWhatTheInMemoryPathFeeds() throws {
        for c in Self.cases {
            let graph = try ModelLoader.load(path: NumpyTests.fixtures + "/" + c.model)
            let path = NumpyTests.fixtures + "/" + c.data
            let memory = try Dataset(path: path, graph: graph, loading: .memory)
            let streamed = try Dataset(path: path, graph: graph, loading: .streaming)
            XCTAssertFalse(memory.isStreamed)
            XCTAssertTrue(streamed.isStreamed)
            try assertSameRows(streamed, memory, c.data)
            // A split: shuffled-then-sorted indices, and a subset of that subset.
            let indices = Array(stride(from: 3, to: memory.count, by: 3)) + [1]
            let sm = memory.subset(indices, path: "m"), ss = streamed.subset(indices, path: "s")
            XCTAssertTrue(ss.isStreamed)
            try assertSameRows(ss, sm, "\(c.data) subset")
            let inner = Array(stride(from: 0, to: sm.count, by: 2))
            try assertSameRows(ss.subset(inner, path: "s2"), sm.subset(inner, path: "m2"), "\(c.data) subset of a subset")
        }
    }

    func testAShardFolderIsItsFilesConcatenatedInNameOrder() throws {
        for c in Self.cases {
            let graph = try ModelLoader.load(path: NumpyTests.fixtures + "/" + c.model)
            let memory = try Dataset(path: NumpyTests.fixtures + "/" + c.data, graph: graph, loading: .memory)
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mpq-shards-\(UUID().uuidString)").path
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: dir) }
            // Uneven shards, named so that name order is not creation order.
            let cuts = [0, 5, memory.count / 2, memory.count]
            let names = ["b-00.npz", "b-01.npz", "b-02.npz"]
            for (k, name) in names.enumerated().reversed() {
                let range = cuts[k]..<cuts[k + 1]
                var arrays = memory.extras.mapValues { $0.slice(range) }
                for (input, t) in memory.batch(range) { arrays[input] = t }
                try Numpy.writeNPZ(arrays, path: dir + "/" + name)
            }
            try Data("not data".utf8).write(to: URL(fileURLWithPath: dir + "/README.txt"))
            let folder = try Dataset(path: dir, graph: graph)
            XCTAssertTrue(folder.isStreamed)
            try assertSameRows(folder, memory, "\(c.data) as shards")
            let indices = Array(stride(from: 1, to: memory.count, by: 4))
            try assertSameRows(folder.subset(indices, path: "f"), memory.subset(indices, path: "m"), "\(c.data) shards subset")
        }
    }

    func testCorruptStreamedDataIsRefusedAtOpen() throws {
        let graph = try ModelLoader.load(path: NumpyTests.fixtures + "/breast_cancer_raw_mlp.onnx")
        var bytes = try Data(contentsOf: URL(fileURLWithPath: NumpyTests.fixtures + "/breast_cancer_raw_mlp_search.npz"))
        // A byte in the middle of the stored features: only the CRC-32 can tell.
        bytes[2000] ^= 0x40
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("mpq-corrupt-\(UUID().uuidString).npz").path
        try bytes.write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        XCTAssertThrowsError(try Dataset(path: path, graph: graph, loading: .streaming)) { error in
            XCTAssertTrue("\(error)".contains("CRC-32"), "\(error)")
        }
    }
}
