import XCTest
import ONNX
@testable import Kernels

final class ReduceOpsTests: XCTestCase {
    typealias K = OpTestKit

    /// `[2,3,4]` holding `0.5 * k - 3`.
    static let x = K.f([2, 3, 4], (0..<24).map { Float($0) * 0.5 - 3 })

    /// Values from ONNX Runtime.
    func testAxesAsInputFromOpset18() throws {
        let x = Self.x
        // Non-contiguous axes [0, 2] (the transposing path).
        K.assertClose(try K.run("ReduceMean", [x, K.i([2], [0, 2])], opset: 18)[0], [1, 3, 1], [0.75, 2.75, 4.75])
        K.assertClose(try K.run("ReduceSumSquare", [x, K.i([1], [1])], opset: 18, ["keepdims": .int(0)])[0], [2, 4],
                      [11.0, 8.75, 8.0, 8.75, 83.0, 98.75, 116.0, 134.75])
        K.assertClose(try K.run("ReduceL1", [x, K.i([1], [0])], opset: 18, ["keepdims": .int(0)])[0], [3, 4],
                      [6, 6, 6, 6, 6, 6, 6, 7, 8, 9, 10, 11])
        K.assertClose(try K.run("ReduceLogSumExp", [x], opset: 18, ["keepdims": .int(0)])[0], [], [9.4327459335])
        let l2 = try K.run("ReduceL2", [K.f([2, 3], [1, -2, 3, 0.5, 4, -1]), K.i([1], [0])], opset: 18)[0]
        K.assertClose(l2, [1, 3], [1.1180340051, 4.4721360207, 3.1622776985])
    }

    func testAxesAsAttributeBefore18() throws {
        let x = Self.x
        K.assertClose(try K.run("ReduceProd", [x], opset: 13, ["axes": .ints([2]), "keepdims": .int(0)])[0], [2, 3],
                      [22.5, 0, 7.5, 189, 1072.5, 3570])
        K.assertClose(try K.run("ReduceMax", [x], opset: 13, ["axes": .ints([-1])])[0], [2, 3, 1], [-1.5, 0.5, 2.5, 4.5, 6.5, 8.5])
        K.assertClose(try K.run("ReduceMin", [x], opset: 11)[0], [1, 1, 1], [-3])
        // ReduceSum took its axes as an input already at 13.
        K.assertClose(try K.run("ReduceSum", [x, K.i([1], [1])], opset: 13, ["keepdims": .int(0)])[0], [2, 4],
                      [-3, -1.5, 0, 1.5, 15, 16.5, 18, 19.5])
        K.assertClose(try K.run("ReduceSum", [x], opset: 11, ["axes": .ints([0, 1, 2]), "keepdims": .int(0)])[0], [], [66])
    }

    /// Empty axes reduce everything, unless noop_with_empty_axes, which reduces nothing
    /// (but still applies the element part: ReduceSumSquare squares, as ONNX Runtime does).
    func testNoopWithEmptyAxes() throws {
        let x = K.f([2, 2], [-1, 2, 3, -4])
        K.assertClose(try K.run("ReduceSum", [x, K.i([0], [])], opset: 13)[0], [1, 1], [0])
        K.assertClose(try K.run("ReduceSum", [x, K.i([0], [])], opset: 13, ["noop_with_empty_axes": .int(1)])[0], [2, 2], [-1, 2, 3, -4])
        K.assertClose(try K.run("ReduceSumSquare", [x], opset: 18, ["noop_with_empty_axes": .int(1)])[0], [2, 2], [1, 4, 9, 16])
        K.assertClose(try K.run("ReduceMean", [x], opset: 18, ["keepdims": .int(0)])[0], [], [0])
    }

    func testIntegerAndEmptyReductions() throws {
        K.assertInts(try K.run("ReduceProd", [K.i([3], [2, 3, 4])], opset: 13, ["keepdims": .int(0)])[0], [], [24])
        K.assertInts(try K.run("ReduceMax", [K.i([2, 2], [1, 9, -3, 4], .int32), K.i([1], [1])], opset: 18)[0], [2, 1], [9, 4], .int32)
        // Empty sets: sum 0, max -inf (false for bool).
        K.assertClose(try K.run("ReduceSum", [K.f([2, 0], []), K.i([1], [1])], opset: 13)[0], [2, 1], [0, 0])
        K.assertClose(try K.run("ReduceMax", [K.f([0, 2], []), K.i([1], [0])], opset: 18, ["keepdims": .int(0)])[0], [2],
                      [-.infinity, -.infinity])
        K.assertInts(try K.run("ReduceMax", [K.i([0], [], .bool), K.i([1], [0])], opset: 18, ["keepdims": .int(0)])[0], [], [0], .bool)
    }

    func testArgMaxArgMin() throws {
        let x = K.f([2, 3], [1, 5, 5, 7, 0, 7])
        K.assertInts(try K.run("ArgMax", [x], ["axis": .int(1)])[0], [2, 1], [1, 0])
        K.assertInts(try K.run("ArgMax", [x], ["axis": .int(1), "select_last_index": .int(1)])[0], [2, 1], [2, 2])
        K.assertInts(try K.run("ArgMin", [x], ["axis": .int(0), "keepdims": .int(0)])[0], [3], [0, 1, 0])
        K.assertInts(try K.run("ArgMin", [x], ["axis": .int(-1), "keepdims": .int(0)])[0], [2], [0, 1])
    }
}
