import XCTest
import ONNX
@testable import Kernels

final class ShapeOpsTests: XCTestCase {
    typealias K = OpTestKit

    static func iota(_ shape: [Int]) -> Tensor { K.f(shape, (0..<shape.reduce(1, *)).map(Float.init)) }

    func testReshapeZeroAndInferred() throws {
        let x = Self.iota([2, 3, 4])
        XCTAssertEqual(try K.run("Reshape", [x, K.i([3], [0, -1, 2])])[0].shape, [2, 6, 2])
        XCTAssertEqual(try K.run("Reshape", [x, K.i([2], [-1, 4])])[0].shape, [6, 4])
        // allowzero=1: 0 is a real zero dim, so only an empty input fits.
        XCTAssertThrowsError(try K.run("Reshape", [x, K.i([2], [0, -1])], opset: 14, ["allowzero": .int(1)]))
        XCTAssertEqual(try K.run("Reshape", [K.f([0, 3], []), K.i([2], [3, 0])], opset: 14, ["allowzero": .int(1)])[0].shape, [3, 0])
        XCTAssertThrowsError(try K.run("Reshape", [x, K.i([2], [-1, -1])]))
        XCTAssertThrowsError(try K.run("Reshape", [x, K.i([2], [5, -1])]))
        // Opset 1: shape is an attribute.
        XCTAssertEqual(try K.run("Reshape", [x], opset: 1, ["shape": .ints([4, 6])])[0].shape, [4, 6])
    }

    func testFlattenSqueezeUnsqueeze() throws {
        let x = Self.iota([2, 1, 3, 1])
        XCTAssertEqual(try K.run("Flatten", [x])[0].shape, [2, 3])
        XCTAssertEqual(try K.run("Flatten", [x], ["axis": .int(0)])[0].shape, [1, 6])
        XCTAssertEqual(try K.run("Flatten", [x], ["axis": .int(-1)])[0].shape, [6, 1])
        XCTAssertEqual(try K.run("Squeeze", [x], opset: 13)[0].shape, [2, 3])
        XCTAssertEqual(try K.run("Squeeze", [x, K.i([1], [-1])], opset: 13)[0].shape, [2, 1, 3])
        XCTAssertEqual(try K.run("Squeeze", [x], opset: 11, ["axes": .ints([1])])[0].shape, [2, 3, 1])
        XCTAssertThrowsError(try K.run("Squeeze", [x, K.i([1], [0])], opset: 13))
        XCTAssertEqual(try K.run("Unsqueeze", [Self.iota([2, 3]), K.i([2], [0, -1])], opset: 13)[0].shape, [1, 2, 3, 1])
        XCTAssertEqual(try K.run("Unsqueeze", [Self.iota([2, 3])], opset: 11, ["axes": .ints([1])])[0].shape, [2, 1, 3])
    }

    func testTranspose() throws {
        let x = Self.iota([2, 3])
        K.assertClose(try K.run("Transpose", [x])[0], [3, 2], [0, 3, 1, 4, 2, 5])
        let y = try K.run("Transpose", [Self.iota([2, 3, 4])], ["perm": .ints([1, 2, 0])])[0]
        XCTAssertEqual(y.shape, [3, 4, 2])
        // y[j][k][i] = x[i][j][k] = 12i + 4j + k
        for j in 0..<3 { for k in 0..<4 { for i in 0..<2 {
            XCTAssertEqual(y.floats[(j * 4 + k) * 2 + i], Float(12 * i + 4 * j + k))
        } } }
    }

    func testConcatAndSplit() throws {
        let a = Self.iota([2, 2]), b = K.f([2, 1], [9, 8])
        K.assertClose(try K.run("Concat", [a, b], ["axis": .int(-1)])[0], [2, 3], [0, 1, 9, 2, 3, 8])
        K.assertInts(try K.run("Concat", [K.i([1], [1]), K.i([0], []), K.i([2], [2, 3])], ["axis": .int(0)])[0], [3], [1, 2, 3])
        let x = Self.iota([2, 5])
        let parts = try K.run("Split", [x, K.i([2], [2, 3])], opset: 13, outputs: 2, ["axis": .int(1)])
        K.assertClose(parts[0], [2, 2], [0, 1, 5, 6])
        K.assertClose(parts[1], [2, 3], [2, 3, 4, 7, 8, 9])
        // Opset 18 num_outputs: equal parts, the last smaller.
        let eq = try K.run("Split", [x], opset: 18, outputs: 2, ["axis": .int(1), "num_outputs": .int(2)])
        XCTAssertEqual(eq.map(\.shape), [[2, 3], [2, 2]])
        let old = try K.run("Split", [Self.iota([6])], opset: 11, outputs: 3, ["split": .ints([1, 2, 3])])
        XCTAssertEqual(old.map(\.shape), [[1], [2], [3]])
        K.assertClose(old[2], [3], [3, 4, 5])
    }

    /// Values from ONNX Runtime: negative steps, INT64_MAX/MIN ends, clamping.
    func testSliceNegativeStepsAndClamping() throws {
        let x = Self.iota([10])
        K.assertClose(try K.run("Slice", [x, K.i([1], [-1]), K.i([1], [-100]), K.i([1], [0]), K.i([1], [-3])])[0],
                      [4], [9, 6, 3, 0])
        let m = Self.iota([3, 4])
        let y = try K.run("Slice", [m, K.i([2], [0, .max]), K.i([2], [-1, .min]), K.i([2], [0, 1]), K.i([2], [1, -2])])[0]
        K.assertClose(y, [2, 2], [3, 1, 7, 5])
        K.assertClose(try K.run("Slice", [m, K.i([1], [1]), K.i([1], [1000]), K.i([1], [1])])[0], [3, 3],
                      [1, 2, 3, 5, 6, 7, 9, 10, 11])
        XCTAssertEqual(try K.run("Slice", [x, K.i([1], [5]), K.i([1], [2])])[0].shape, [0])
        // Opset 1 attributes.
        K.assertClose(try K.run("Slice", [m], opset: 1, ["starts": .ints([1]), "ends": .ints([3]), "axes": .ints([0])])[0],
                      [2, 4], [4, 5, 6, 7, 8, 9, 10, 11])
    }

    /// Reflect mirrors without repeating the edge; negative pads crop.
    func testPadModes() throws {
        let x = Self.iota([2, 3])
        let r = try K.run("Pad", [x, K.i([4], [0, 2, 0, 1])], opset: 13, ["mode": .string("reflect")])[0]
        K.assertClose(r, [2, 6], [2, 1, 0, 1, 2, 1, 5, 4, 3, 4, 5, 4])
        let e = try K.run("Pad", [x, K.i([4], [1, 0, 0, 1])], opset: 13, ["mode": .string("edge")])[0]
        K.assertClose(e, [3, 4], [0, 1, 2, 2, 0, 1, 2, 2, 3, 4, 5, 5])
        let c = try K.run("Pad", [x, K.i([4], [0, 1, 0, -1]), K.f([], [7])], opset: 13)[0]
        K.assertClose(c, [2, 3], [7, 0, 1, 7, 3, 4])
        let old = try K.run("Pad", [x], opset: 2, ["pads": .ints([1, 0, 0, 0]), "value": .float(-1)])[0]
        K.assertClose(old, [3, 3], [-1, -1, -1, 0, 1, 2, 3, 4, 5])
        // Opset 18 axes.
        let ax = try K.run("Pad", [x, K.i([2], [1, 1]), nil, K.i([1], [-1])], opset: 18)[0]
        K.assertClose(ax, [2, 5], [0, 0, 1, 2, 0, 0, 3, 4, 5, 0])
    }

    func testGatherNegativeIndexAndAxis() throws {
        let x = Self.iota([3, 2])
        K.assertClose(try K.run("Gather", [x, K.i([2], [-1, 0])])[0], [2, 2], [4, 5, 0, 1])
        K.assertClose(try K.run("Gather", [x, K.i([], [1])], ["axis": .int(1)])[0], [3], [1, 3, 5])
        K.assertInts(try K.run("Gather", [K.i([4], [1, 3, 224, 224]), K.i([], [0])])[0], [], [1])
        XCTAssertThrowsError(try K.run("Gather", [x, K.i([1], [3])]))
        K.assertClose(try K.run("GatherElements", [x, K.i([3, 1], [1, 0, -1])], ["axis": .int(1)])[0], [3, 1], [1, 2, 5])
    }

    func testShapeSizeAndConstants() throws {
        let x = Self.iota([2, 3, 4])
        K.assertInts(try K.run("Shape", [x])[0], [3], [2, 3, 4])
        K.assertInts(try K.run("Shape", [x], opset: 15, ["start": .int(-2)])[0], [2], [3, 4])
        K.assertInts(try K.run("Shape", [x], opset: 15, ["start": .int(1), "end": .int(-1)])[0], [1], [3])
        K.assertInts(try K.run("Size", [x])[0], [], [24])
        K.assertClose(try K.run("ConstantOfShape", [K.i([2], [2, 1])])[0], [2, 1], [0, 0])
        K.assertInts(try K.run("ConstantOfShape", [K.i([1], [3])], ["value": .tensor(K.i([1], [5]))])[0], [3], [5, 5, 5])
        K.assertClose(try K.run("Constant", [], ["value_floats": .floats([1, 2])])[0], [2], [1, 2])
        K.assertInts(try K.run("Constant", [], ["value_int": .int(4)])[0], [], [4])
    }

    /// Truncation toward zero, then wrapping (values from ONNX Runtime).
    func testCast() throws {
        let f = K.f([4], [-2.7, 2.7, 300.5, -129.9])
        K.assertInts(try K.run("Cast", [f], ["to": .int(3)])[0], [4], [-2, 2, 44, 127], .int8)
        K.assertInts(try K.run("Cast", [f], ["to": .int(7)])[0], [4], [-2, 2, 300, -129])
        K.assertInts(try K.run("Cast", [K.i([3], [-1, 256, 257])], ["to": .int(2)])[0], [3], [255, 0, 1], .uint8)
        K.assertInts(try K.run("Cast", [K.f([3], [0, -0.5, .nan])], ["to": .int(9)])[0], [3], [0, 1, 1], .bool)
        let h = try K.run("Cast", [K.f([3], [0.1, 1.0 / 3, 65519])], ["to": .int(10)])[0]
        XCTAssertEqual(h.dtype, .float16)
        XCTAssertEqual(h.floats, [0.0999755859375, 0.333251953125, 65504])
        let back = try K.run("Cast", [K.i([2], [1, 0], .bool)], ["to": .int(1)])[0]
        K.assertClose(back, [2], [1, 0])
    }

    func testExpandTileRange() throws {
        K.assertClose(try K.run("Expand", [K.f([2, 1], [1, 2]), K.i([2], [2, 3])])[0], [2, 3], [1, 1, 1, 2, 2, 2])
        // The shape may be smaller than the input: the result is the broadcast of both.
        XCTAssertEqual(try K.run("Expand", [Self.iota([3, 1]), K.i([1], [1])])[0].shape, [3, 1])
        K.assertClose(try K.run("Tile", [Self.iota([2, 2]), K.i([2], [1, 2])])[0], [2, 4], [0, 1, 0, 1, 2, 3, 2, 3])
        K.assertClose(try K.run("Range", [K.f([], [1]), K.f([], [2]), K.f([], [0.3])])[0], [4], [1, 1.3, 1.6, 1.9])
        K.assertInts(try K.run("Range", [K.i([], [10]), K.i([], [3]), K.i([], [-3])])[0], [3], [10, 7, 4])
        K.assertInts(try K.run("NonZero", [K.f([2, 2], [1, 0, 0, 3])])[0], [2, 2], [0, 1, 0, 1])
        K.assertClose(try K.run("CumSum", [K.f([4], [1, 2, 3, 4]), K.i([], [0])], ["exclusive": .int(1), "reverse": .int(1)])[0],
                      [4], [9, 7, 4, 0])
    }

    func testIndexingOps() throws {
        // TopK: ties keep the lower index first.
        let t = try K.run("TopK", [K.f([5], [3, 1, 3, 7, 0]), K.i([1], [3])], opset: 11, outputs: 2)
        K.assertClose(t[0], [3], [7, 3, 3])
        K.assertInts(t[1], [3], [3, 0, 2])
        let s = try K.run("TopK", [K.f([5], [3, 1, 3, 7, 0]), K.i([1], [2])], opset: 11, outputs: 2, ["largest": .int(0)])
        K.assertInts(s[1], [2], [4, 1])
        let nd = try K.run("ScatterND", [Self.iota([2, 2]), K.i([2, 2], [0, 1, 1, -2]), K.f([2], [9, 8])], opset: 16,
                           ["reduction": .string("add")])[0]
        K.assertClose(nd, [2, 2], [0, 10, 10, 3])
        let el = try K.run("ScatterElements", [Self.iota([2, 3]), K.i([1, 2], [2, 0]), K.f([1, 2], [-1, -2])], opset: 16,
                           ["axis": .int(1)])[0]
        K.assertClose(el, [2, 3], [-2, 1, -1, 3, 4, 5])
        let oh = try K.run("OneHot", [K.i([3], [0, -1, 5]), K.f([], [3]), K.f([2], [0, 1])], opset: 11)[0]
        K.assertClose(oh, [3, 3], [1, 0, 0, 0, 0, 1, 0, 0, 0])
        K.assertClose(try K.run("Trilu", [Self.iota([3, 3])], opset: 14, ["upper": .int(0)])[0], [3, 3], [0, 0, 0, 3, 4, 0, 6, 7, 8])
        K.assertClose(try K.run("Trilu", [Self.iota([2, 3]), K.i([], [1])], opset: 14)[0], [2, 3], [0, 1, 2, 0, 0, 5])
        K.assertClose(try K.run("EyeLike", [Self.iota([2, 3])], opset: 9, ["k": .int(1)])[0], [2, 3], [0, 1, 0, 0, 0, 1])
    }

    /// The coalescing strided copy behind Transpose against naive index arithmetic, on
    /// seeded random shapes and permutations (size-1 dims included).
    func testTransposeMatchesNaiveOnRandomShapes() throws {
        var rng = K.RNG(seed: 7)
        for _ in 0..<200 {
            let r = 1 + rng.next(5)
            let shape = (0..<r).map { _ in 1 + rng.next(4) }
            var perm = Array(0..<r)
            for i in stride(from: r - 1, to: 0, by: -1) { perm.swapAt(i, rng.next(i + 1)) }
            let x = Self.iota(shape)
            let y = try ShapeOps.Transpose(x, perm: perm)
            let out = perm.map { shape[$0] }
            XCTAssertEqual(y.shape, out)
            let ost = stridesOf(out), ist = stridesOf(shape)
            for o in 0..<y.count {
                var src = 0
                for d in 0..<r { src += ((o / ost[d]) % out[d]) * ist[perm[d]] }
                XCTAssertEqual(y.floats[o], x.floats[src], "\(shape) perm \(perm)")
            }
        }
    }
}
