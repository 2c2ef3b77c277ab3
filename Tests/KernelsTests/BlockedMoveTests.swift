import XCTest
import ONNX
@testable import Kernels

/// A YOLO neck inside a chain (s29, `Session.runBlockedMove`): Conv -> Resize -> Concat with an
/// earlier Conv's output -> Conv. The Resize and Concat run blocked where they can (a nearest
/// Resize in any coordinate mode, a Concat of 16-channel multiples), NCHW otherwise (linear
/// Resize, a Concat with 8 channels), and every run gives the bytes of the blocked layout off,
/// at batch 1 (the whole batch blocked) and 3 (image by image, chains forced).
final class BlockedMoveTests: XCTestCase {
    static func neckGraph(resize: [String: Attribute], low: Int = 16, scales: [Float] = [1, 1, 2, 2]) -> Graph {
        var rng = TestRNG(seed: 29)
        func t(_ shape: [Int], _ scale: Float) -> Tensor {
            Tensor(shape: shape, floats: (0..<shape.reduce(1, *)).map { _ in rng.float(-scale...scale) })
        }
        let pad1: [String: Attribute] = ["pads": .ints([1, 1, 1, 1])]
        return Graph(nodes: [
            Node(name: "c1", opType: "Conv", inputs: ["x", "w1", "b1"], outputs: ["a"], attributes: pad1),
            Node(name: "c2", opType: "Conv", inputs: ["a", "w2", "b2"], outputs: ["l"], attributes: pad1),
            Node(name: "down", opType: "Conv", inputs: ["l", "w3", "b3"], outputs: ["d"], attributes: pad1.merging(["strides": .ints([2, 2])]) { a, _ in a }),
            Node(name: "up", opType: "Resize", inputs: ["d", "", "scales"], outputs: ["u"], attributes: resize),
            Node(name: "cat", opType: "Concat", inputs: ["l", "u"], outputs: ["k"], attributes: ["axis": .int(1)]),
            Node(name: "fuse", opType: "Conv", inputs: ["k", "w4", "b4"], outputs: ["f"], attributes: pad1),
            Node(name: "head", opType: "Conv", inputs: ["f", "w5"], outputs: ["y"]),
        ], initializers: [
            "w1": t([16, 3, 3, 3], 0.5), "b1": t([16], 0.3), "w2": t([low, 16, 3, 3], 0.3), "b2": t([low], 0.3),
            "w3": t([32, low, 3, 3], 0.3), "b3": t([32], 0.2), "scales": Tensor(shape: [4], floats: scales),
            "w4": t([16, low + 32, 3, 3], 0.2), "b4": t([16], 0.1), "w5": t([8, 16, 1, 1], 0.4),
        ], inputs: [ValueInfo(name: "x", dtype: .float32, shape: [nil, 3, 12, 12])],
           outputs: [ValueInfo(name: "y", dtype: .float32, shape: nil)], opsets: ["": 17])
    }

    /// Runs `graph` blocked and not at batches 1 and 3; returns the blocked moves per image run.
    func movesRun(_ graph: Graph, file: StaticString = #filePath, line: UInt = #line) throws -> Int {
        let session = try Session(graph: graph)
        XCTAssertEqual(session.imageChains.count, 1, "one chain through the neck", file: file, line: line)
        var rng = TestRNG(seed: 3)
        var counts: [Int] = []
        for n in [1, 3] {
            let x = Tensor(shape: [n, 3, 12, 12], floats: (0..<n * 432).map { _ in rng.float(-1...1) })
            session.fp32ImageChains = n > 1 ? true : nil
            session.runsBlockedConvs = false
            let plain = try session.run(["x": x])["y"]!
            session.runsBlockedConvs = true
            let before = session.blockedMovesRun
            let blocked = try session.run(["x": x])["y"]!
            XCTAssertEqual(blocked.shape, plain.shape, file: file, line: line)
            XCTAssertEqual(blocked.floats.map(\.bitPattern), plain.floats.map(\.bitPattern), "batch \(n)", file: file, line: line)
            counts.append((session.blockedMovesRun - before) / n)
        }
        XCTAssertEqual(counts[0], counts[1], "batch 1 and image by image run the same moves", file: file, line: line)
        return counts[0]
    }

    func testNearestResizeAndConcatRunBlockedInEveryCoordinateMode() throws {
        try XCTSkipUnless(BlockedChainTests.blockedRuns && Session.blockedMovesDefault, "the blocked path is off here")
        for (transform, rounding) in [("asymmetric", "floor"), ("half_pixel", "round_prefer_ceil"), ("align_corners", "round_prefer_floor"),
                                      ("pytorch_half_pixel", "ceil")] {
            let attrs: [String: Attribute] = ["mode": .string("nearest"), "coordinate_transformation_mode": .string(transform),
                                              "nearest_mode": .string(rounding)]
            XCTAssertEqual(try movesRun(Self.neckGraph(resize: attrs)), 2, "\(transform) / \(rounding)")
        }
        // A non-integer scale: still a selection of input pixels.
        let odd: [String: Attribute] = ["mode": .string("nearest"), "coordinate_transformation_mode": .string("half_pixel")]
        let session = try Session(graph: Self.neckGraph(resize: odd, scales: [1, 1, 1.5, 1.5]))
        XCTAssertEqual(session.blockedMoveBindings.count, 2)
    }

    /// A linear Resize computes (no index map: it runs NCHW, and so does the Concat after it,
    /// whose input is then not blocked); a Concat with an 8-channel input runs NCHW (its
    /// channels are not whole blocks) while the nearest Resize before it still runs blocked.
    func testLinearResizeAndPartialBlocksRunNCHW() throws {
        try XCTSkipUnless(BlockedChainTests.blockedRuns && Session.blockedMovesDefault, "the blocked path is off here")
        let linear: [String: Attribute] = ["mode": .string("linear"), "coordinate_transformation_mode": .string("half_pixel")]
        XCTAssertEqual(try movesRun(Self.neckGraph(resize: linear)), 0)
        let nearest: [String: Attribute] = ["mode": .string("nearest")]
        XCTAssertEqual(try movesRun(Self.neckGraph(resize: nearest, low: 8)), 1)
    }

    /// Chains never start at a Resize (resnet_digits' input Resize stays out of its chain, so
    /// the chain is still sized by the 224x224 image it makes).
    func testChainsDoNotStartAtAResize() throws {
        let graph = GraphPasses.optimize(try ModelLoader.load(path: FixturePaths.path("resnet/resnet_digits.onnx")))
        let session = try Session(graph: graph)
        for c in session.imageChains.values { XCTAssertNotEqual(session.plan[c.range.lowerBound].opType, "Resize") }
        XCTAssertTrue(session.plan.contains { $0.opType == "Resize" })
    }
}
