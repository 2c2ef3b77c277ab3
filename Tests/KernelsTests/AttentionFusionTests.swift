import CKernels
import XCTest
@testable import Kernels
import ONNX

/// `AttentionFusion`: Q·Kᵀ -> scale -> mask -> Softmax -> ·V [-> head merge] run per matrix
/// with the scores in a scratch. Found where the span is, bit for bit the unfused run (both
/// kernel paths, B in place and packed), off where an intermediate is kept or a product would
/// run on OpenBLAS (the softmax chain then fuses alone).
final class AttentionFusionTests: XCTestCase {
    /// Heads already split ([n, h, l, d] inputs), K given transposed; `merge` adds the
    /// Transpose(0, 2, 1, 3) that joins the heads again.
    func attentionGraph(d: Int, dv: Int, merge: Bool, divide: Bool) -> Graph {
        var nodes = [
            Node(name: "scores", opType: "MatMul", inputs: ["q", "kt"], outputs: ["s"]),
            Node(name: "scale", opType: divide ? "Div" : "Mul", inputs: ["s", "c"], outputs: ["ss"]),
            Node(name: "masked", opType: "Add", inputs: ["ss", "mask"], outputs: ["sm"]),
            Node(name: "softmax", opType: "Softmax", inputs: ["sm"], outputs: ["p"], attributes: ["axis": .int(-1)]),
            Node(name: "context", opType: "MatMul", inputs: ["p", "v"], outputs: [merge ? "ctx" : "y"]),
        ]
        if merge {
            nodes.append(Node(name: "merge", opType: "Transpose", inputs: ["ctx"], outputs: ["y"], attributes: ["perm": .ints([0, 2, 1, 3])]))
        }
        let c = divide ? Float(d).squareRoot() : 1 / Float(d).squareRoot()
        return Graph(nodes: nodes, initializers: ["c": Tensor(shape: [], floats: [c])],
                     inputs: ["q", "kt", "v", "mask"].map { ValueInfo(name: $0, dtype: .float32, shape: nil) },
                     outputs: [ValueInfo(name: "y", dtype: .float32, shape: nil)], opsets: ["": 17])
    }

    func feeds(n: Int, h: Int, l: Int, d: Int, dv: Int, seed: UInt64) -> [String: Tensor] {
        var rng = TestRNG(seed: seed)
        func t(_ shape: [Int]) -> Tensor { Tensor(shape: shape, floats: (0..<shape.reduce(1, *)).map { _ in rng.float(-2...2) }) }
        // The PyTorch export's additive mask, [n, 1, 1, l]: finfo(float32).min on each item's padding.
        let mask = Tensor(shape: [n, 1, 1, l], floats: (0..<n * l).map { i in i % l < l - (i / l) % 5 ? 0 : -Float.greatestFiniteMagnitude })
        return ["q": t([n, h, l, d]), "kt": t([n, h, d, l]), "v": t([n, h, l, dv]), "mask": mask]
    }

    func testSpanIsTheUnfusedRunBitForBit() throws {
        // (n, h, l, d, dv): whole vectors (B read in place), then widths that pack both B's.
        for (n, h, l, d, dv) in [(2, 8, 64, 32, 32), (4, 4, 72, 24, 40)] {
            for (merge, divide) in [(true, true), (false, false)] {
                let session = try Session(graph: attentionGraph(d: d, dv: dv, merge: merge, divide: divide))
                XCTAssertEqual(session.attentionFusions.count, 1)
                XCTAssertEqual(session.attentionFusions.values.first?.mergeHeads, merge)
                let x = feeds(n: n, h: h, l: l, d: d, dv: dv, seed: UInt64(l + d))
                for path in [MPQ_PATH_REFERENCE, MPQ_PATH_AUTO] {
                    XCTAssertEqual(mpq_set_kernel_path(path), 0)
                    defer { mpq_set_kernel_path(MPQ_PATH_AUTO) }
                    let spans = session.attentionSpansRun
                    let fused = try session.run(x)["y"]!
                    XCTAssertEqual(session.attentionSpansRun - spans, 1, "l \(l) merge \(merge)")
                    let plain = try session.run(x, keep: [], fusing: false, observer: nil)["y"]!
                    XCTAssertEqual(fused.shape, merge ? [n, l, h, dv] : [n, h, l, dv])
                    XCTAssertEqual(fused.shape, plain.shape)
                    XCTAssertEqual(fused.floats.map(\.bitPattern), plain.floats.map(\.bitPattern),
                                   "l \(l) d \(d) dv \(dv) merge \(merge) path \(path.rawValue)")
                    XCTAssertFalse(fused.floats.contains { !$0.isFinite })
                    // Keeping the probabilities turns the span off; the softmax chain still fuses.
                    let chains = session.fusedChainsRun
                    let kept = try session.run(x, keep: ["p"])
                    XCTAssertEqual(session.attentionSpansRun - spans, 1)
                    XCTAssertEqual(session.fusedChainsRun - chains, 1)
                    XCTAssertEqual(kept["y"]!.floats.map(\.bitPattern), plain.floats.map(\.bitPattern))
                }
            }
        }
    }

    /// Products too small for mpq's batched GEMM run unfused on OpenBLAS (other bits), so the
    /// span does not run there; the softmax chain does.
    func testSmallProductsLeaveTheSpanToOpenBLAS() throws {
        let session = try Session(graph: attentionGraph(d: 8, dv: 8, merge: true, divide: true))
        let x = feeds(n: 1, h: 2, l: 6, d: 8, dv: 8, seed: 3)
        let (spans, chains) = (session.attentionSpansRun, session.fusedChainsRun)
        let fused = try session.run(x)["y"]!
        XCTAssertEqual(session.attentionSpansRun - spans, 0)
        XCTAssertEqual(session.fusedChainsRun - chains, 1, "the softmax chain")
        let plain = try session.run(x, keep: [], fusing: false, observer: nil)["y"]!
        XCTAssertEqual(fused.floats.map(\.bitPattern), plain.floats.map(\.bitPattern))
    }

    /// The profiler puts the span's time on the Softmax, the MatMuls and the merge show none.
    func testProfileTimesTheSpanOnTheSoftmax() throws {
        let session = try Session(graph: attentionGraph(d: 32, dv: 32, merge: true, divide: true))
        let profile = try session.profile(feeds(n: 2, h: 8, l: 64, d: 32, dv: 32, seed: 9), runs: 1)
        let timed = Set(profile.filter { $0.seconds > 0 }.map(\.name))
        XCTAssertTrue(timed.contains("softmax"), "\(timed)")
        XCTAssertTrue(timed.isDisjoint(with: ["scores", "scale", "masked", "context", "merge"]), "\(timed)")
    }

    /// A PyTorch-style head split: Q, K and V given as [n, l, h, d] and split by Transposes
    /// (0, 2, 1, 3) and (0, 2, 3, 1) that the span reads through (`splits`).
    func splitGraph(d: Int, dv: Int) -> Graph {
        var g = attentionGraph(d: d, dv: dv, merge: true, divide: true)
        g.nodes.insert(contentsOf: [
            Node(name: "split_q", opType: "Transpose", inputs: ["qr"], outputs: ["q"], attributes: ["perm": .ints([0, 2, 1, 3])]),
            Node(name: "split_k", opType: "Transpose", inputs: ["kr"], outputs: ["kt"], attributes: ["perm": .ints([0, 2, 3, 1])]),
            Node(name: "split_v", opType: "Transpose", inputs: ["vr"], outputs: ["v"], attributes: ["perm": .ints([0, 2, 1, 3])]),
        ], at: 0)
        g.inputs = ["qr", "kr", "vr", "mask"].map { ValueInfo(name: $0, dtype: .float32, shape: nil) }
        return g
    }

    func splitFeeds(n: Int, h: Int, l: Int, d: Int, dv: Int, seed: UInt64) -> [String: Tensor] {
        let x = feeds(n: n, h: h, l: l, d: d, dv: dv, seed: seed)
        var rng = TestRNG(seed: seed + 1)
        func t(_ shape: [Int]) -> Tensor { Tensor(shape: shape, floats: (0..<shape.reduce(1, *)).map { _ in rng.float(-2...2) }) }
        return ["qr": t([n, l, h, d]), "kr": t([n, l, h, d]), "vr": t([n, l, h, dv]), "mask": x["mask"]!]
    }

    /// The span reads Q, Kᵀ and V through their Transposes, bit for bit the unfused run; with
    /// V's rows no whole vectors it cannot, and the run transposes them after all (same bits,
    /// no span); keeping a split operand turns the span off.
    func testSpanReadsThroughTheHeadSplit() throws {
        for (n, h, l, d, dv, fuses) in [(2, 8, 64, 32, 32, true), (4, 4, 72, 24, 40, false)] {
            let session = try Session(graph: splitGraph(d: d, dv: dv))
            XCTAssertEqual(session.attentionFusions.values.first?.splits.count, 3)
            XCTAssertEqual(session.spanSplits.count, 3)
            XCTAssertEqual(Set(session.attentionFusions.values.first?.names ?? []).intersection(["split_q", "split_k", "split_v"]).count, 3,
                           "an override on a split Transpose turns the span off")
            let x = splitFeeds(n: n, h: h, l: l, d: d, dv: dv, seed: UInt64(l))
            for path in [MPQ_PATH_REFERENCE, MPQ_PATH_AUTO] {
                XCTAssertEqual(mpq_set_kernel_path(path), 0)
                defer { mpq_set_kernel_path(MPQ_PATH_AUTO) }
                let spans = session.attentionSpansRun
                let fused = try session.run(x)["y"]!
                XCTAssertEqual(session.attentionSpansRun - spans, fuses ? 1 : 0, "l \(l) dv \(dv)")
                let plain = try session.run(x, keep: [], fusing: false, observer: nil)["y"]!
                XCTAssertEqual(fused.shape, [n, l, h, dv])
                XCTAssertEqual(fused.floats.map(\.bitPattern), plain.floats.map(\.bitPattern), "l \(l) path \(path.rawValue)")
                let kept = try session.run(x, keep: ["kt"])
                XCTAssertEqual(session.attentionSpansRun - spans, fuses ? 1 : 0)
                XCTAssertEqual(kept["y"]!.floats.map(\.bitPattern), plain.floats.map(\.bitPattern))
            }
        }
    }
}
