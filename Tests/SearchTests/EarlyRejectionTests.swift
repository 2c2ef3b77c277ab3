import Foundation
import XCTest
import Kernels
import ONNX
@testable import Search

/// Early rejection on a class-sorted split (docs/search.md, "Early rejection"): logits = x
/// through one INT8 MatMul (identity weight), calibrated on |x| <= 1. Class-1 samples with
/// x = (1.1, 1.3) clip to a tie in INT8 and flip to class 0; every other sample has a clear
/// margin inside the range. 30 such samples out of 1000: the all-INT8 drop is exactly 3 points.
final class EarlyRejectionTests: XCTestCase {
    static let graph = Graph(nodes: [Node(name: "head", opType: "MatMul", inputs: ["x", "w"], outputs: ["y"])],
                             initializers: ["w": Tensor(shape: [2, 2], floats: [1, 0, 0, 1])],
                             inputs: [ValueInfo(name: "x", dtype: .float32, shape: [nil, 2])],
                             outputs: [ValueInfo(name: "y", dtype: .float32, shape: [nil, 2])], opsets: ["": 17])

    /// Sorted by class, class 1 first, its 30 hard samples at the top.
    static func sortedSplit() throws -> Dataset {
        var x: [Float] = [], labels: [Int64] = []
        let rng = SeededRandom(seed: 5)
        for i in 0..<1000 {
            let c = i < 500 ? 1 : 0
            if i < 30 { x += [1.1, 1.3] } else {
                let lo = Float(rng.uniform()) * 0.4 - 0.9, hi = lo + 0.3 + Float(rng.uniform()) * 0.5
                x += c == 1 ? [lo, hi] : [hi, lo]
            }
            labels.append(Int64(c))
        }
        return try Dataset(arrays: ["x": Tensor(shape: [1000, 2], floats: x), "labels": Tensor(shape: [1000], ints: labels)],
                           path: "sorted.npz", graph: graph)
    }

    func evaluator(visitSeed: UInt64?) throws -> (CandidateEvaluator, MixedPrecisionRuntime) {
        let session = try Session(graph: Self.graph)
        let calib = try Dataset(arrays: ["x": Tensor(shape: [2, 2], floats: [-1, 1, 1, -1])], path: "calib.npz", graph: Self.graph)
        let table = try Calibrator(session: session).calibrate(dataset: calib, options: CalibrationOptions(method: .minmax), modelDigest: "t")
        let runtime = try MixedPrecisionRuntime(session: session, calibration: table)
        return (try CandidateEvaluator(runtime: runtime, data: Self.sortedSplit(), metric: .top1, batchSize: 50, visitSeed: visitSeed), runtime)
    }

    func testClassSortedSplitDoesNotRejectAMapWithinBudget() throws {
        let (e, runtime) = try evaluator(visitSeed: 0)
        XCTAssertEqual(e.rejectionLooks, 18)           // after 100, 150, ..., 950 samples
        XCTAssertEqual(e.rejectionZ, Statistics.normalQuantile(1 - 0.00135 / 18), accuracy: 1e-12)
        let (eval, _) = try e.evaluate(runtime.allInt8, rejectAbove: 5)
        XCTAssertTrue(eval.complete, "drop \(eval.drop) after \(eval.samples) samples")
        XCTAssertEqual(eval.drop, 3, accuracy: 1e-9)
        // Visited in the file's order, the same map is rejected at the first look (30 of the
        // first 100 samples flipped): what the shuffle prevents.
        let (asGiven, rt) = try evaluator(visitSeed: nil)
        let (bad, _) = try asGiven.evaluate(rt.allInt8, rejectAbove: 5)
        XCTAssertFalse(bad.complete)
        XCTAssertEqual(bad.samples, 100)
        // Same seed, same numbers.
        let (again, rt2) = try evaluator(visitSeed: 0)
        XCTAssertEqual(try again.evaluate(rt2.allInt8, rejectAbove: 5).0, eval)
    }

    /// A rejection at one budget is reused at another only below the bound that rejected it.
    func testMemoKeepsTheMarginAcrossBudgets() throws {
        let (e, runtime) = try evaluator(visitSeed: nil)
        let (first, _) = try e.evaluate(runtime.allInt8, rejectAbove: 5)
        let bound = try XCTUnwrap(first.rejectionBound)
        XCTAssertGreaterThan(bound, 5)
        XCTAssertLessThan(bound, first.drop)            // 30-point partial drop, bound ~12
        XCTAssertEqual(try e.evaluate(runtime.allInt8, rejectAbove: bound - 1).0, first, "still rejected: memo")
        XCTAssertEqual(e.evaluations, 1)
        // Between the bound and the partial drop the old rule reused the rejection; the map
        // meets a budget of 20 in full.
        let (second, _) = try e.evaluate(runtime.allInt8, rejectAbove: 20)
        XCTAssertEqual(e.evaluations, 2)
        XCTAssertTrue(second.complete)
        XCTAssertEqual(second.drop, 3, accuracy: 1e-9)
    }

    func testNormalQuantile() {
        XCTAssertEqual(Statistics.normalQuantile(1 - 0.00135), 3.0, accuracy: 1e-3)
        XCTAssertEqual(Statistics.normalQuantile(0.975), 1.959964, accuracy: 1e-6)
        XCTAssertEqual(Statistics.normalQuantile(0.5), 0, accuracy: 1e-12)
    }
}
