import CKernels
import XCTest
import ONNX
@testable import Kernels

/// MaxPool / AveragePool on channel-blocked images (`mpq_pool2d_f32_blocked`, pool_blocked.c)
/// against the NCHW separable path bit for bit, and inside FP32 chains between blocked Convs
/// (`Session.runBlockedPool`): the chain's bytes with the blocked layout on are those with it
/// off, and the pools do run blocked.
final class FP32BlockedPoolTests: XCTestCase {
    static func blocked(_ x: Tensor) -> [Float] {
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        var y = [Float](repeating: .nan, count: n * mpq_blocked_image_floats(Int32(c), Int32(h), Int32(w)))
        XCTAssertEqual(mpq_reorder_to_blocked_f32(MPQ_PATH_REFERENCE, x.floats, Int32(n), Int32(c), Int32(h), Int32(w), &y), 0)
        return y
    }

    /// Every 2-D case of PoolKernelTests (strides 1-3, dilation, asymmetric and negative pads,
    /// ceil_mode, NaN / -0 / infinities), channel counts around the 16-lane block, max and both
    /// averages, each path, 1-3 threads: every lane is the NCHW result's, padding lanes +0.
    func testBlockedPoolEqualsNCHWBitForBit() throws {
        var checked = 0
        for (i, t) in PoolKernelTests.cases.enumerated() where t.x.count == 4 {
            for channels in [1, 5, 16, 17, 35] {
                let shape = [t.x[0], channels, t.x[2], t.x[3]]
                let x = PoolKernelTests.data(shape, seed: UInt64(300 + 7 * i + channels))
                let (nc, g) = try PoolOps.poolGeometry(x, "test", t.autoPad, t.ceil, t.d, t.k, t.pads, t.s)
                let bx = Self.blocked(x)
                for kind in [PoolKind.max, .average(includePad: false), .average(includePad: true)] {
                    let want = PoolOps.poolSeparable(x, nc, g, kind)
                    let wantBlocked = Self.blocked(want)
                    for path in KernelPath.available {
                        for threads: Int32 in [1, 2, 3] {
                            var y = [Float](repeating: .nan, count: wantBlocked.count)
                            let rc: Int32? = PoolOps.withPool2D([nc[0], (channels + 15) / 16], g, kind) { p in
                                let isMax: Int32 = if case .max = kind { 1 } else { 0 }
                                return mpq_pool2d_f32_blocked(path.c, isMax, p, Int32(channels), bx, &y, threads)
                            }
                            XCTAssertEqual(rc, 0, "case \(i) C \(channels)")
                            let bad = zip(y, wantBlocked).filter { PoolKernelTests.differ($0, $1, kind) }.count
                            XCTAssertEqual(bad, 0, "case \(i) C \(channels) \(kind) \(path) threads \(threads): \(bad) lanes differ")
                            checked += 1
                        }
                    }
                }
                let viaSwift = try XCTUnwrap(PoolOps.poolBlocked(bx, n: nc[0], channels: channels, g, .max), "case \(i) C \(channels)")
                XCTAssertTrue(viaSwift.map(\.bitPattern) == Self.blocked(PoolOps.poolSeparable(x, nc, g, .max)).map(\.bitPattern),
                              "case \(i) C \(channels): PoolOps.poolBlocked differs from the NCHW MaxPool")
            }
        }
        XCTAssertGreaterThan(checked, 500)
    }

    /// Planes that are not whole images of `channels` are refused.
    func testRejectsPlanesThatAreNotWholeImages() throws {
        let x = PoolKernelTests.data([1, 20, 6, 6], seed: 1)
        let (_, g) = try PoolOps.poolGeometry(x, "test", "NOTSET", false, nil, [2, 2], nil, [2, 2])
        var y = [Float](repeating: 0, count: 3 * 16 * 9)
        let rc: Int32? = PoolOps.withPool2D([1, 3], g, .max) { p in mpq_pool2d_f32_blocked(MPQ_PATH_AUTO, 1, p, 20, Self.blocked(x), &y, 1) }
        XCTAssertEqual(rc, -1, "3 blocks are not whole images of 20 channels (2 blocks)")
    }

    /// Conv -> MaxPool -> Conv (+ the pool's output as residual shortcut) and Conv ->
    /// AveragePool (ceil_mode, count_include_pad) -> Conv, 20 channels (a partial last block).
    static func poolGraph() -> Graph {
        var rng = TestRNG(seed: 23)
        func t(_ shape: [Int], _ scale: Float) -> Tensor {
            Tensor(shape: shape, floats: (0..<shape.reduce(1, *)).map { _ in rng.float(-scale...scale) })
        }
        let c = 20
        let pad1: [String: Attribute] = ["pads": .ints([1, 1, 1, 1])]
        return Graph(nodes: [
            Node(name: "stem", opType: "Conv", inputs: ["x", "w0", "b0"], outputs: ["s"], attributes: pad1.merging(["strides": .ints([2, 2])]) { a, _ in a }),
            Node(name: "relu", opType: "Relu", inputs: ["s"], outputs: ["sr"]),
            Node(name: "pool", opType: "MaxPool", inputs: ["sr"], outputs: ["p"],
                 attributes: ["kernel_shape": .ints([3, 3]), "strides": .ints([2, 2]), "pads": .ints([1, 1, 1, 1])]),
            Node(name: "c1", opType: "Conv", inputs: ["p", "w1", "b1"], outputs: ["c1"], attributes: pad1),
            Node(name: "add", opType: "Add", inputs: ["c1", "p"], outputs: ["r"]),
            Node(name: "avg", opType: "AveragePool", inputs: ["r"], outputs: ["a"],
                 attributes: ["kernel_shape": .ints([3, 3]), "strides": .ints([2, 2]), "pads": .ints([0, 0, 1, 1]),
                              "ceil_mode": .int(1), "count_include_pad": .int(1)]),
            Node(name: "c2", opType: "Conv", inputs: ["a", "w2"], outputs: ["y"], attributes: pad1),
        ], initializers: [
            "w0": t([c, 3, 3, 3], 0.5), "b0": t([c], 0.5), "w1": t([c, c, 3, 3], 0.2), "b1": t([c], 0.2), "w2": t([7, c, 3, 3], 0.2),
        ], inputs: [ValueInfo(name: "x", dtype: .float32, shape: [nil, 3, nil, nil])],
           outputs: [ValueInfo(name: "y", dtype: .float32, shape: nil)], opsets: ["": 17])
    }

    func testPoolsBetweenBlockedConvsRunBlockedWithTheSameBytes() throws {
        let graph = GraphPasses.optimize(Self.poolGraph())
        let session = try Session(graph: graph)
        XCTAssertEqual(Set(session.blockedPools.map { session.plan[$0].name }), ["pool", "avg"])
        XCTAssertEqual(session.blockedConvs.count, 3, "stem, c1, c2: joined through the pools")
        var rng = TestRNG(seed: 9)
        for (n, side) in [(1, 29), (3, 30), (2, 17)] {
            let x = Tensor(shape: [n, 3, side, side], floats: (0..<n * 3 * side * side).map { _ in rng.next(20) == 0 ? -0.0 : rng.float(-2...2) })
            for imageChains: Bool? in [true, false] {
                session.fp32ImageChains = imageChains
                session.runsBlockedConvs = false
                let plain = try session.run(["x": x])["y"]!
                session.runsBlockedConvs = true
                let before = session.blockedPoolsRun
                let blocked = try session.run(["x": x])["y"]!
                XCTAssertEqual(blocked.shape, plain.shape)
                XCTAssertEqual(blocked.floats.map(\.bitPattern), plain.floats.map(\.bitPattern), "batch \(n) side \(side) image chains \(String(describing: imageChains))")
                if BlockedChainTests.blockedRuns {
                    XCTAssertGreaterThanOrEqual(session.blockedPoolsRun - before, 2, "both pools ran blocked")
                }
            }
        }
    }

    /// resnet_digits' stem MaxPool joins its stem Conv to layer1 in the blocked run.
    func testResnetDigitsStemPoolRunsBlocked() throws {
        let graph = GraphPasses.optimize(try ModelLoader.load(path: FixturePaths.path("resnet/resnet_digits.onnx")))
        let session = try Session(graph: graph)
        XCTAssertEqual(session.blockedPools.map { session.plan[$0].opType }, ["MaxPool"])
        let data = try Dataset(path: FixturePaths.path("resnet/resnet_digits_calib.npz"), graph: graph)
        let before = session.blockedPoolsRun
        _ = try session.run(data.batch(0..<1))
        if BlockedChainTests.blockedRuns { XCTAssertEqual(session.blockedPoolsRun - before, 1) }
    }
}
