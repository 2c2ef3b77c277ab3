import XCTest
import ONNX
@testable import Kernels

/// What the run loop keeps or moves between nodes and runs (s15-small): a bound Conv reuses
/// the geometry and packed weights its last run checked (`ConvRunMemo`), and a value a node
/// reads last moves into its inputs instead of being copied (`Session.takeInputs`). Neither
/// may change a byte: a session reused over batch sizes, data and a weight fed in place of
/// its initializer gives a fresh session's bytes, bad input the same error, and values that
/// other nodes, the outputs or `keep` still need survive the move.
final class RunLoopReuseTests: XCTestCase {
    func feeds(_ n: Int, seed: UInt64, size: Int = 12) -> [String: Tensor] {
        var rng = TestRNG(seed: seed)
        return ["x": Tensor(shape: [n, 3, size, size], floats: (0..<n * 3 * size * size).map { _ in rng.float(-2...2) })]
    }

    func bits(_ t: Tensor?) -> [UInt32] { t?.floats.map(\.bitPattern) ?? [] }

    /// One session over batches 1, 3, 1, 2, 3, 1 (new data each run, two image sizes):
    /// each run's bytes are those of a session made for that run alone, with and without
    /// image chains; a repeated shape reuses its remembered plan (the output's shape is the
    /// plan's one array), a new shape does not.
    func testConvMemoAcrossBatchSizesGivesFreshSessionBytes() throws {
        let graph = ConvResidualTests.resnetGraph()
        for chains in [false, true] {
            let session = try Session(graph: graph)
            session.runsImageChains = chains
            for (k, (n, size)) in [(1, 12), (3, 12), (1, 12), (2, 10), (3, 12), (1, 12), (1, 12)].enumerated() {
                let f = feeds(n, seed: UInt64(100 + k), size: size)
                let got = try session.run(f)["y"]
                let fresh = try Session(graph: graph)
                fresh.runsImageChains = chains
                let want = try fresh.run(f)["y"]
                XCTAssertEqual(got?.shape, want?.shape, "run \(k) chains \(chains)")
                XCTAssertEqual(bits(got), bits(want), "run \(k) (batch \(n), \(size)x\(size)) chains \(chains)")
            }
        }
        // The last Conv's output is a graph output here: a second run of the same shape hands
        // out the remembered plan's shape array, a run of another shape a new one.
        let conv = Graph(nodes: [Node(name: "c", opType: "Conv", inputs: ["x", "w", "b"], outputs: ["y"],
                                      attributes: ["pads": .ints([1, 1, 1, 1])])],
                         initializers: ["w": Tensor(shape: [4, 3, 3, 3], floats: (0..<108).map { Float($0 % 7) - 3 }),
                                        "b": Tensor(shape: [4], floats: [0.5, -1, 0, 2])],
                         inputs: [ValueInfo(name: "x", dtype: .float32, shape: [nil, 3, nil, nil])],
                         outputs: [ValueInfo(name: "y", dtype: .float32, shape: nil)], opsets: ["": 17])
        let session = try Session(graph: conv)
        session.runsImageChains = false
        let a = try session.run(feeds(1, seed: 1))["y"]!, b = try session.run(feeds(1, seed: 2))["y"]!
        let c = try session.run(feeds(2, seed: 3))["y"]!
        func base(_ t: Tensor) -> UnsafePointer<Int>? { t.shape.withUnsafeBufferPointer { $0.baseAddress } }
        XCTAssertEqual(base(a), base(b), "the second run of one shape reuses the first run's plan")
        XCTAssertNotEqual(base(b), base(c), "a new batch size is checked anew")
        XCTAssertEqual(c.shape, [2, 4, 12, 12])
        XCTAssertNotEqual(bits(a), bits(b))
    }

    /// After runs that filled the memo, bad input gets the error a fresh session gives:
    /// another channel count, integer data, a wrong rank.
    func testBadInputAfterMemoGivesSameErrors() throws {
        let graph = ConvResidualTests.resnetGraph()
        let session = try Session(graph: graph)
        _ = try session.run(feeds(1, seed: 5))
        _ = try session.run(feeds(1, seed: 6))
        let bad: [[String: Tensor]] = [
            ["x": Tensor(shape: [1, 4, 12, 12], floats: [Float](repeating: 1, count: 576))],
            ["x": Tensor(shape: [1, 3, 12, 12], ints: [Int64](repeating: 1, count: 432))],
            ["x": Tensor(shape: [3, 12, 12], floats: [Float](repeating: 1, count: 432))],
        ]
        for f in bad {
            var want: String?, got: String?
            do { _ = try Session(graph: graph).run(f) } catch { want = "\(error)" }
            do { _ = try session.run(f) } catch { got = "\(error)" }
            XCTAssertNotNil(want)
            XCTAssertEqual(got, want)
        }
        // And the session still runs good input with a fresh session's bytes.
        let f = feeds(1, seed: 7)
        XCTAssertEqual(bits(try session.run(f)["y"]), bits(try Session(graph: graph).run(f)["y"]))
    }

    /// A weight that is also a graph input: its initializer's packed form is used when it
    /// is not fed, the feed's values when it is, in any order of runs.
    func testFedWeightIsNotTheRememberedOne() throws {
        let w = Tensor(shape: [4, 3, 3, 3], floats: (0..<108).map { Float($0 % 5) - 2 })
        let w2 = Tensor(shape: [4, 3, 3, 3], floats: (0..<108).map { Float($0 % 3) - 1 })
        let graph = Graph(nodes: [Node(name: "c", opType: "Conv", inputs: ["x", "w"], outputs: ["y"])],
                          initializers: ["w": w],
                          inputs: [ValueInfo(name: "x", dtype: .float32, shape: [nil, 3, nil, nil]),
                                   ValueInfo(name: "w", dtype: .float32, shape: [4, 3, 3, 3])],
                          outputs: [ValueInfo(name: "y", dtype: .float32, shape: nil)], opsets: ["": 17])
        let session = try Session(graph: graph)
        let x = feeds(1, seed: 9)
        var withW2 = x
        withW2["w"] = w2
        let plain = try Session(graph: graph).run(x)["y"], fed = try Session(graph: graph).run(withW2)["y"]
        XCTAssertNotEqual(bits(plain), bits(fed))
        for f in [x, x, withW2, withW2, x, withW2] {
            XCTAssertEqual(bits(try session.run(f)["y"]), bits(f["w"] == nil ? plain : fed))
        }
    }

    /// Values read by several nodes, twice by one node, kept, or graph outputs read again
    /// later: moving each node's last-read inputs leaves every other reader its value.
    func testMovedInputsLeaveOtherReadersTheirValues() throws {
        let graph = Graph(nodes: [
            Node(name: "r", opType: "Relu", inputs: ["x"], outputs: ["a"]),
            Node(name: "sq", opType: "Mul", inputs: ["a", "a"], outputs: ["b"]),
            Node(name: "sum", opType: "Add", inputs: ["b", "a"], outputs: ["c"]),
            Node(name: "neg", opType: "Neg", inputs: ["c"], outputs: ["d"]),
            Node(name: "again", opType: "Add", inputs: ["d", "x"], outputs: ["e"]),
        ], initializers: [:], inputs: [ValueInfo(name: "x", dtype: .float32, shape: [nil, 4])],
           outputs: [ValueInfo(name: "c", dtype: .float32, shape: nil), ValueInfo(name: "e", dtype: .float32, shape: nil)],
           opsets: ["": 17])
        let session = try Session(graph: graph)
        let xs: [Float] = [-1.5, 0, 2, 3.25, -0.5, 1, -4, 0.75]
        let x = Tensor(shape: [2, 4], floats: xs)
        let a = xs.map { max($0, 0) }
        let c = a.map { $0 * $0 + $0 }
        let e = zip(c, xs).map { -$0 + $1 }
        for _ in 0..<2 {
            let out = try session.run(["x": x])
            XCTAssertEqual(out["c"]?.floats, c)
            XCTAssertEqual(out["e"]?.floats, e)
            let kept = try session.run(["x": x], keep: ["a", "b"])
            XCTAssertEqual(kept["a"]?.floats, a)
            XCTAssertEqual(kept["b"]?.floats, a.map { $0 * $0 })
            XCTAssertEqual(kept["e"]?.floats, e)
            var seen: [String: [Float]] = [:]
            let observed = try session.run(["x": x], observer: { node, ins, _ in seen[node.name] = ins.first??.floats })
            XCTAssertEqual(observed["e"]?.floats, e)
            XCTAssertEqual(seen["sum"], a.map { $0 * $0 })
        }
    }
}
