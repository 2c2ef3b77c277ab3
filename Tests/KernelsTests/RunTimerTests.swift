import XCTest
import ONNX
@testable import Kernels

/// `Session.profile` times the run as it runs (`RunTimer`, s29): image chains and blocked
/// chains on, each node's time inside its chain, fused nodes at 0 ms. Before, the profiler
/// observed every node, which turned the chains off: its nodes were never the run's.
final class RunTimerTests: XCTestCase {
    func detector() throws -> (Session, Dataset) {
        let graph = GraphPasses.optimize(try ModelLoader.load(path: FixturePaths.path("detection/shapes_det.onnx")))
        return (try Session(graph: graph), try Dataset(path: FixturePaths.path("detection/shapes_det_calib.npz"), graph: graph))
    }

    /// The detector at batch 1 (its Convs as a blocked chain where the CPU has the path) and at
    /// batch 4 with image chains forced: the chains run in the timed runs, every Conv is timed,
    /// and a fused SiLU's Sigmoid and Mul show 0 (their time is the Conv's).
    func testProfileTimesTheChainsAsTheyRun() throws {
        let (session, data) = try detector()
        for (batch, forced) in [(1, nil), (4, true)] as [(Int, Bool?)] {
            session.fp32ImageChains = forced
            let chainsBefore = session.imageChainsRun + session.blockedChainsRun
            let profile = try session.profile(data.batch(0..<batch), runs: 2)
            if forced == true || BlockedChainTests.blockedRuns {
                // One observed run for the MACs, a warm-up and 2 timed runs: the last three chain.
                XCTAssertGreaterThanOrEqual(session.imageChainsRun + session.blockedChainsRun - chainsBefore, 3, "batch \(batch)")
            }
            XCTAssertEqual(profile.map(\.name), session.plan.map(\.name))
            for p in profile where p.opType == "Conv" {
                XCTAssertGreaterThan(p.seconds, 0, "batch \(batch): \(p.name)")
                XCTAssertGreaterThan(p.macs, 0, "batch \(batch): \(p.name)")
            }
            let silu = profile.filter { $0.name.contains(".2/") && ["Sigmoid", "Mul"].contains($0.opType) }
            XCTAssertEqual(silu.count, 18, "nine Convs' SiLUs")
            XCTAssertEqual(silu.filter { $0.seconds != 0 }.map(\.name), [], "batch \(batch)")
        }
        XCTAssertNil(session.runTimer, "plain runs after the profile are untimed")
    }

    /// The two ways to summarise runs: the median (odd and even counts) and the minimum.
    func testRunStatistics() {
        XCTAssertEqual(RunStatistic.median.of([5, 1, 3]), 3)
        XCTAssertEqual(RunStatistic.median.of([4, 1, 3, 2]), 2.5)
        XCTAssertEqual(RunStatistic.min.of([5, 1, 3]), 1)
        XCTAssertEqual(RunStatistic.min.of([]), 0)
        XCTAssertEqual(RunStatistic(rawValue: "min"), .min)
    }

    /// The timer's arithmetic: laps go to the node named, a chain's wall time is split over its
    /// nodes by their time inside it (here 1:3), and reset clears both.
    func testChainTimeIsSplitInProportion() {
        let t = RunTimer(nodes: 4)
        t.addInChain(1, 100)
        t.addInChain(2, 300)
        var mark = DispatchTime.now().uptimeNanoseconds - 4_000_000
        t.closeChain(1..<3, &mark)
        XCTAssertEqual(t.nanos[0], 0)
        XCTAssertEqual(t.nanos[3], 0)
        let (a, b) = (Double(t.nanos[1]), Double(t.nanos[2]))
        XCTAssertEqual(b / a, 3, accuracy: 0.01)
        XCTAssertGreaterThanOrEqual(t.nanos[1] + t.nanos[2], 4_000_000 - 2)
        var m2 = DispatchTime.now().uptimeNanoseconds - 1000
        t.lap(3, &m2)
        XCTAssertGreaterThanOrEqual(t.nanos[3], 1000)
        t.reset()
        XCTAssertEqual(t.nanos, [0, 0, 0, 0])
        // A chain with nothing measured inside puts its time on its first node.
        var m3 = DispatchTime.now().uptimeNanoseconds - 500
        t.closeChain(0..<2, &m3)
        XCTAssertGreaterThanOrEqual(t.nanos[0], 500)
        XCTAssertEqual(t.nanos[1], 0)
    }
}
