import XCTest
@testable import Kernels
import ONNX

/// Float tolerances of the op tests, in one place: FP32 kernels against a plain
/// reference differ only by summation order.
enum OpTolerance {
    /// Max |got - want| allowed, relative to max |want| (the project's acceptance rule).
    static let relativeToMax: Float = 1e-5
    /// Absolute floor for outputs near zero.
    static let absolute: Float = 1e-5
}

/// Asserts same shape and values within `OpTolerance`.
func assertClose(_ got: Tensor, _ want: Tensor, _ what: String = "", file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(got.shape, want.shape, "\(what) shape", file: file, line: line)
    guard got.shape == want.shape else { return }
    let scale = want.floats.reduce(Float(0)) { max($0, abs($1)) }
    let tol = max(OpTolerance.absolute, OpTolerance.relativeToMax * scale)
    var worst: Float = 0, at = 0
    for i in 0..<want.count {
        let d = abs(got.floats[i] - want.floats[i])
        if !(d <= worst) { worst = d; at = i }
        if got.floats[i].isNaN != want.floats[i].isNaN { worst = .infinity; at = i; break }
    }
    XCTAssert(worst <= tol, "\(what): max diff \(worst) at \(at) (got \(got.floats[at]), want \(want.floats[at])), tolerance \(tol)",
              file: file, line: line)
}

final class LinearOpsTests: XCTestCase {
    /// Plain triple loop: C = alpha·op(A)·op(B) + beta·C broadcast. Never optimised.
    func referenceGemm(_ a: Tensor, _ b: Tensor, _ c: Tensor?, alpha: Float, beta: Float, tA: Bool, tB: Bool) -> Tensor {
        let m = tA ? a.shape[1] : a.shape[0], k = tA ? a.shape[0] : a.shape[1]
        let n = tB ? b.shape[0] : b.shape[1]
        var out = [Float](repeating: 0, count: m * n)
        for i in 0..<m {
            for j in 0..<n {
                var s: Float = 0
                for p in 0..<k {
                    let av = tA ? a.floats[p * m + i] : a.floats[i * k + p]
                    let bv = tB ? b.floats[j * k + p] : b.floats[p * n + j]
                    s += av * bv
                }
                var cv: Float = 0
                if let c {
                    let cs = [Int](repeating: 1, count: 2 - c.rank) + c.shape
                    cv = c.floats[(cs[0] == 1 ? 0 : i) * cs[1] + (cs[1] == 1 ? 0 : j)]
                }
                out[i * n + j] = alpha * s + beta * cv
            }
        }
        return Tensor(shape: [m, n], floats: out)
    }

    func testGemmMatchesReferenceOverShapesAndAttributes() throws {
        var rng = OpTestRandom(seed: 7)
        for (m, k, n) in [(1, 1, 1), (3, 5, 7), (17, 33, 15), (64, 65, 63), (2, 1, 9)] {
            for (tA, tB) in [(false, false), (true, false), (false, true), (true, true)] {
                let a = rng.tensor(tA ? [k, m] : [m, k]), b = rng.tensor(tB ? [n, k] : [k, n])
                for cShape in [nil, [], [n], [1, n], [m, 1], [m, n]] as [[Int]?] {
                    let c = cShape.map { rng.tensor($0) }
                    let got = try LinearOps.Gemm(a: a, b: b, c: c, alpha: 0.75, beta: 1.5, transA: tA, transB: tB)
                    assertClose(got, referenceGemm(a, b, c, alpha: 0.75, beta: 1.5, tA: tA, tB: tB),
                                 "Gemm m\(m) k\(k) n\(n) tA\(tA) tB\(tB) C\(String(describing: cShape))")
                }
            }
        }
    }

    func testGemmRejectsMismatchedShapes() {
        var rng = OpTestRandom(seed: 1)
        XCTAssertThrowsError(try LinearOps.Gemm(a: rng.tensor([2, 3]), b: rng.tensor([4, 5]), c: nil,
                                                alpha: 1, beta: 1, transA: false, transB: false))
        XCTAssertThrowsError(try LinearOps.Gemm(a: rng.tensor([2, 3]), b: rng.tensor([3, 5]), c: rng.tensor([3, 5]),
                                                alpha: 1, beta: 1, transA: false, transB: false))
    }

    /// numpy matmul semantics, by index arithmetic over broadcast batches.
    func referenceMatMul(_ a: Tensor, _ b: Tensor) -> Tensor {
        let aS = a.rank == 1 ? [1, a.shape[0]] : a.shape, bS = b.rank == 1 ? [b.shape[0], 1] : b.shape
        let m = aS[aS.count - 2], k = aS[aS.count - 1], n = bS[bS.count - 1]
        let rank = max(aS.count, bS.count) - 2
        let ab = [Int](repeating: 1, count: rank - (aS.count - 2)) + aS.dropLast(2)
        let bb = [Int](repeating: 1, count: rank - (bS.count - 2)) + bS.dropLast(2)
        let batch = zip(ab, bb).map { max($0, $1) }
        let count = batch.reduce(1, *)
        var out: [Float] = []
        for i in 0..<count {
            var idx = [Int](repeating: 0, count: rank), r = i
            for d in stride(from: rank - 1, through: 0, by: -1) { idx[d] = r % batch[d]; r /= batch[d] }
            var ai = 0, bi = 0
            for d in 0..<rank { ai = ai * ab[d] + (ab[d] == 1 ? 0 : idx[d]); bi = bi * bb[d] + (bb[d] == 1 ? 0 : idx[d]) }
            for p in 0..<m {
                for q in 0..<n {
                    var s: Float = 0
                    for t in 0..<k { s += a.floats[ai * m * k + p * k + t] * b.floats[bi * k * n + t * n + q] }
                    out.append(s)
                }
            }
        }
        var shape = batch + [m, n]
        if b.rank == 1 { shape.removeLast() }
        if a.rank == 1 { shape.remove(at: shape.count - (b.rank == 1 ? 1 : 2)) }
        return Tensor(shape: shape, floats: out)
    }

    func testMatMulBroadcastsAndPromotesLikeNumpy() throws {
        var rng = OpTestRandom(seed: 11)
        let cases: [([Int], [Int], [Int])] = [
            ([5], [5], []), ([4], [4, 3], [3]), ([3, 4], [4], [3]), ([2, 3, 4], [4], [2, 3]),
            ([4], [2, 4, 3], [2, 3]), ([7, 9], [9, 5], [7, 5]),
            ([2, 3, 17], [17, 15], [2, 3, 15]),          // constant right operand: batch folds into M
            ([17, 15], [3, 15, 4], [3, 17, 4]),
            ([2, 1, 3, 4], [5, 4, 6], [2, 5, 3, 6]),     // batch broadcast both ways
            ([3, 1, 2], [3, 2, 1], [3, 1, 1]), ([2, 3, 0], [0, 4], [2, 3, 4]),
        ]
        for (aShape, bShape, outShape) in cases {
            let a = rng.tensor(aShape), b = rng.tensor(bShape)
            let got = try LinearOps.MatMul(a: a, b: b)
            XCTAssertEqual(got.shape, outShape, "MatMul \(aShape) x \(bShape)")
            assertClose(got, referenceMatMul(a, b), "MatMul \(aShape) x \(bShape)")
        }
        XCTAssertThrowsError(try LinearOps.MatMul(a: rng.tensor([2, 3]), b: rng.tensor([4, 2])))
        XCTAssertThrowsError(try LinearOps.MatMul(a: rng.tensor([2, 2, 3]), b: rng.tensor([3, 3, 2])))
    }

    func testGemmRunsThroughTheRegistryWithOpsetRules() throws {
        let node = Node(name: "g", opType: "Gemm", inputs: ["a", "b"], outputs: ["y"], attributes: ["transB": .int(1)])
        let a = Tensor(shape: [1, 2], floats: [1, 2]), b = Tensor(shape: [2, 2], floats: [3, 4, 5, 6])
        let entry = try OpRegistry.entry(for: node, opset: 13)
        XCTAssertEqual(try entry.run(node, [a, b], 13)[0].floats, [11, 17])
        XCTAssertThrowsError(try entry.run(node, [a, b], 9), "C is required before opset 11")
    }
}
