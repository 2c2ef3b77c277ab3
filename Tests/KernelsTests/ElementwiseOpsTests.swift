import XCTest
import ONNX
@testable import Kernels

/// Helpers shared by the op-family tests (Elementwise, Activation, Shape, Reduce).
enum OpTestKit {
    /// Float tolerance for hand-checked and ONNX Runtime-derived values.
    static let tolerance: Float = 1e-5

    static func f(_ shape: [Int], _ v: [Float]) -> Tensor { Tensor(shape: shape, floats: v) }
    static func i(_ shape: [Int], _ v: [Int64], _ dt: DType = .int64) -> Tensor { Tensor(shape: shape, ints: v, dtype: dt) }

    /// Runs `op` through the registry, as a session would, at `opset`.
    static func run(_ op: String, _ inputs: [Tensor?], opset: Int = 18, outputs: Int = 1,
                    _ attrs: [String: Attribute] = [:]) throws -> [Tensor] {
        let node = Node(name: "\(op)_0", opType: op, inputs: inputs.enumerated().map { $1 == nil ? "" : "x\($0)" },
                        outputs: (0..<outputs).map { "y\($0)" }, attributes: attrs)
        let entry = try OpRegistry.entry(for: node, opset: opset)
        return try entry.run(node, inputs, opset)
    }

    static func assertClose(_ got: Tensor, _ shape: [Int], _ want: [Float], tol: Float = tolerance,
                            file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(got.shape, shape, "shape", file: file, line: line)
        XCTAssertTrue(got.dtype.isFloating, "dtype \(got.dtype)", file: file, line: line)
        XCTAssertEqual(got.floats.count, want.count, "count", file: file, line: line)
        for (k, (a, b)) in zip(got.floats, want).enumerated() {
            if (a.isNaN && b.isNaN) || a == b { continue }
            XCTAssertLessThanOrEqual(abs(a - b), tol * max(1, abs(b)), "element \(k): \(a) vs \(b)", file: file, line: line)
        }
    }

    static func assertInts(_ got: Tensor, _ shape: [Int], _ want: [Int64], _ dt: DType = .int64,
                           file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(got.shape, shape, "shape", file: file, line: line)
        XCTAssertEqual(got.dtype, dt, "dtype", file: file, line: line)
        XCTAssertEqual(got.ints, want, file: file, line: line)
    }
}

final class ElementwiseOpsTests: XCTestCase {
    typealias K = OpTestKit

    func testBroadcastShapes() throws {
        XCTAssertEqual(try Broadcast.shape([2, 3, 1], [1, 4]), [2, 3, 4])
        XCTAssertEqual(try Broadcast.shape([5], []), [5])
        XCTAssertEqual(try Broadcast.shape([0, 1], [1, 3]), [0, 3])
        XCTAssertThrowsError(try Broadcast.shape([2, 3], [4]))
    }

    /// `[2,3,1] + [1,4]`: every (i, j, k) is a[i, j] + b[k].
    func testAddBroadcastsBothWays() throws {
        let a = K.f([2, 3, 1], [0, 10, 20, 30, 40, 50])
        let b = K.f([1, 4], [1, 2, 3, 4])
        let y = try K.run("Add", [a, b])[0]
        var want: [Float] = []
        for r in [0, 10, 20, 30, 40, 50] as [Float] { for c in [1, 2, 3, 4] as [Float] { want.append(r + c) } }
        K.assertClose(y, [2, 3, 4], want)
        // Either operand order.
        K.assertClose(try K.run("Add", [b, a])[0], [2, 3, 4], want)
    }

    /// The per-channel bias pattern the fast path coalesces: [N,C,H,W] op [1,C,1,1].
    func testChannelBroadcastMatchesNaive() throws {
        let shape = [2, 3, 4, 5]
        let n = shape.reduce(1, *)
        let x = K.f(shape, (0..<n).map { Float($0) * 0.25 - 7 })
        let c = K.f([1, 3, 1, 1], [2, -1, 0.5])
        for op in ["Sub", "Mul", "Div"] {
            let y = try K.run(op, [x, c])[0]
            let want = (0..<n).map { k -> Float in
                let v = x.floats[k], s = c.floats[(k / 20) % 3]
                return op == "Sub" ? v - s : (op == "Mul" ? v * s : v / s)
            }
            K.assertClose(y, shape, want)
        }
        // A middle broadcast dim: [2,1,4] with [2,3,4] reads a's rows three times.
        let a = K.f([2, 1, 4], [1, 2, 3, 4, 5, 6, 7, 8])
        let b = K.f([2, 3, 4], [Float](repeating: 1, count: 24))
        let y = try K.run("Mul", [a, b])[0]
        K.assertClose(y, [2, 3, 4], [1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4, 5, 6, 7, 8, 5, 6, 7, 8, 5, 6, 7, 8])
    }

    func testIntegerArithmetic() throws {
        let a = K.i([4], [-7, 7, -7, 7]), b = K.i([4], [2, 2, -2, -2])
        K.assertInts(try K.run("Div", [a, b])[0], [4], [-3, 3, 3, -3])   // truncates like C
        K.assertInts(try K.run("Mul", [a, K.i([], [3])])[0], [4], [-21, 21, -21, 21])
        // int32 arithmetic wraps.
        let big = K.i([1], [Int64(Int32.max)], .int32)
        K.assertInts(try K.run("Add", [big, K.i([1], [1], .int32)])[0], [1], [Int64(Int32.min)], .int32)
    }

    /// Mod: fmod=0 takes the divisor's sign, fmod=1 the dividend's (values from ONNX Runtime).
    func testMod() throws {
        let a = K.i([4], [-7, 7, -7, 7]), b = K.i([4], [3, -3, -3, 3])
        K.assertInts(try K.run("Mod", [a, b])[0], [4], [2, -2, -1, 1])
        let y = try K.run("Mod", [K.f([2], [-7.5, 7.5]), K.f([2], [2, -2])], ["fmod": .int(1)])[0]
        K.assertClose(y, [2], [-1.5, 1.5])
    }

    func testPow() throws {
        K.assertClose(try K.run("Pow", [K.f([3], [2, -3, 4]), K.f([], [2])])[0], [3], [4, 9, 16])
        K.assertClose(try K.run("Pow", [K.f([2], [4, 9]), K.f([2], [0.5, -1])])[0], [2], [2, 1.0 / 9])
        // An integer base stays integer.
        K.assertInts(try K.run("Pow", [K.i([2], [2, 3]), K.f([1], [3])])[0], [2], [8, 27])
    }

    func testVariadic() throws {
        let a = K.f([2], [1, 5]), b = K.f([2, 1], [3, -1]), c = K.f([], [2])
        K.assertClose(try K.run("Sum", [a, b, c])[0], [2, 2], [6, 10, 2, 6])
        K.assertClose(try K.run("Max", [a, b])[0], [2, 2], [3, 5, 1, 5])
        K.assertClose(try K.run("Min", [a, b, c])[0], [2, 2], [1, 2, -1, -1])
        K.assertClose(try K.run("Mean", [a, b])[0], [2, 2], [2, 4, 0, 2])
        K.assertClose(try K.run("Max", [K.f([2], [.nan, 1]), K.f([2], [0, .nan])])[0], [2], [.nan, .nan])
    }

    func testUnary() throws {
        let x = K.f([5], [-2.5, -0.5, 0, 0.5, 2.5])
        K.assertClose(try K.run("Abs", [x])[0], [5], [2.5, 0.5, 0, 0.5, 2.5])
        K.assertClose(try K.run("Neg", [x])[0], [5], [2.5, 0.5, 0, -0.5, -2.5])
        K.assertClose(try K.run("Floor", [x])[0], [5], [-3, -1, 0, 0, 2])
        K.assertClose(try K.run("Ceil", [x])[0], [5], [-2, 0, 0, 1, 3])
        K.assertClose(try K.run("Round", [x])[0], [5], [-2, 0, 0, 0, 2])   // halves to even
        K.assertClose(try K.run("Sign", [x])[0], [5], [-1, -1, 0, 1, 1])
        K.assertClose(try K.run("Reciprocal", [K.f([2], [4, -0.5])])[0], [2], [0.25, -2])
        K.assertClose(try K.run("Sqrt", [K.f([2], [9, 2])])[0], [2], [3, 1.4142135])
        K.assertClose(try K.run("Exp", [K.f([2], [0, 1])])[0], [2], [1, 2.7182817])
        K.assertClose(try K.run("Log", [K.f([2], [1, 10])])[0], [2], [0, 2.3025851])
        // From ONNX Runtime.
        K.assertClose(try K.run("Erf", [K.f([3], [-1, 0.5, 2])])[0], [3], [-0.8427007794, 0.5204998851, 0.9953222871])
        K.assertInts(try K.run("Abs", [K.i([2], [-3, 4], .int8)])[0], [2], [3, 4], .int8)
        K.assertInts(try K.run("Neg", [K.i([2], [-3, 4])])[0], [2], [3, -4])
    }

    func testComparisonsAndLogic() throws {
        let a = K.f([3], [1, 2, 3]), b = K.f([1], [2])
        K.assertInts(try K.run("Equal", [a, b])[0], [3], [0, 1, 0], .bool)
        K.assertInts(try K.run("Less", [a, b])[0], [3], [1, 0, 0], .bool)
        K.assertInts(try K.run("LessOrEqual", [a, b])[0], [3], [1, 1, 0], .bool)
        K.assertInts(try K.run("Greater", [a, b])[0], [3], [0, 0, 1], .bool)
        K.assertInts(try K.run("GreaterOrEqual", [a, b])[0], [3], [0, 1, 1], .bool)
        K.assertInts(try K.run("Equal", [K.i([2], [5, 6]), K.i([], [6])])[0], [2], [0, 1], .bool)
        let p = K.i([2, 2], [1, 1, 0, 0], .bool), q = K.i([2], [1, 0], .bool)
        K.assertInts(try K.run("And", [p, q])[0], [2, 2], [1, 0, 0, 0], .bool)
        K.assertInts(try K.run("Or", [p, q])[0], [2, 2], [1, 1, 1, 0], .bool)
        K.assertInts(try K.run("Xor", [p, q])[0], [2, 2], [0, 1, 1, 0], .bool)
        K.assertInts(try K.run("Not", [q])[0], [2], [0, 1], .bool)
    }

    func testWhereBroadcastsAllThree() throws {
        let c = K.i([2, 1], [1, 0], .bool)
        let x = K.f([3], [1, 2, 3]), y = K.f([], [-1])
        K.assertClose(try K.run("Where", [c, x, y])[0], [2, 3], [1, 2, 3, -1, -1, -1])
        K.assertInts(try K.run("Where", [K.i([2], [0, 1], .bool), K.i([2], [7, 8]), K.i([2], [9, 10])])[0], [2], [9, 8])
    }

    func testShapeMismatchThrowsNamingShapes() {
        XCTAssertThrowsError(try K.run("Add", [K.f([2, 3], [Float](repeating: 0, count: 6)), K.f([4], [0, 0, 0, 0])])) { e in
            XCTAssertTrue("\(e)".contains("[2,3]") && "\(e)".contains("[4]"), "\(e)")
        }
    }

    /// The coalescing broadcast kernel against a naive per-element index computation, on
    /// seeded random shape pairs (ranks 0-4, dims 1-5, broadcast dims anywhere).
    func testBroadcastKernelMatchesNaiveOnRandomShapes() throws {
        var rng = K.RNG(seed: 42)
        for _ in 0..<300 {
            let r = rng.next(5)
            let out = (0..<r).map { _ in 1 + rng.next(5) }
            func operand() -> [Int] {
                let drop = rng.next(r + 1)
                return out.dropFirst(drop).map { rng.next(3) == 0 ? 1 : $0 }
            }
            let sa = operand(), sb = operand()
            let a = K.f(sa, (0..<sa.reduce(1, *)).map { _ in Float(rng.next(100)) - 50 })
            let b = K.f(sb, (0..<sb.reduce(1, *)).map { _ in Float(rng.next(100)) - 50 })
            let want = try Broadcast.shape(sa, sb)
            let y = try ElementwiseOps.Sub(a, b)
            XCTAssertEqual(y.shape, want)
            let n = want.reduce(1, *), st = stridesOf(want)
            for o in 0..<n {
                let idx = (0..<want.count).map { (o / st[$0]) % want[$0] }
                func read(_ t: Tensor) -> Float {
                    let lead = want.count - t.rank
                    var off = 0
                    for (d, s) in stridesOf(t.shape).enumerated() where t.shape[d] != 1 { off += idx[lead + d] * s }
                    return t.floats[off]
                }
                XCTAssertEqual(y.floats[o], read(a) - read(b), "\(sa) - \(sb) at \(idx)")
            }
        }
    }
}

extension OpTestKit {
    typealias RNG = TestRNG
}
