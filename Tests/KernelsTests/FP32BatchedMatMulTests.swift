import CKernels
import XCTest
import ONNX
@testable import Kernels

/// Batched activation x activation MatMul (attention) on the packed GEMM
/// (`LinearOps.batchedPackedProduct`, Linear+Batched.swift): every output matrix bit for
/// bit equal to the scalar reference's product of its own A and B (so the chunking, the
/// thread count and the broadcast indexing change nothing), within the Conv GEMM's bound of
/// OpenBLAS, and routed there by the size rule.
final class FP32BatchedMatMulTests: XCTestCase {
    /// (A shape, B shape): MiniLM's two attention products at small batch x heads, batch
    /// dims broadcast either way, N and K off the 16/64 vector and panel widths, and one
    /// tall-K product past the 256-deep K block.
    static let cases: [([Int], [Int])] = [
        ([2, 3, 128, 32], [2, 3, 32, 128]),   // Q·Kᵀ
        ([2, 3, 128, 128], [2, 3, 128, 32]),  // softmax·V
        ([2, 1, 20, 24], [3, 24, 17]),        // A broadcast over B's batches
        ([4, 19, 33], [1, 33, 65]),           // B broadcast: folded (not batched), still covered
        ([3, 1, 17, 300], [1, 5, 300, 9]),    // both broadcast, K past one block
    ]

    static func tensor(_ shape: [Int], _ rng: inout TestRNG) -> Tensor {
        Tensor(shape: shape, floats: (0..<shape.reduce(1, *)).map { _ in rng.float(-1...1) })
    }

    /// Output matrix i by the scalar reference: A[ai] x B[bi] on `mpq_slinear_f32`'s reference path.
    static func reference(_ a: Tensor, _ b: Tensor, shape: BatchedShape) -> [Float] {
        let (m, k, n) = (shape.m, shape.k, shape.n)
        var out: [Float] = []
        for i in 0..<shape.batchCount {
            let (ai, bi) = shape.operandIndices(i)
            let packed = PackedLinearWeights(Tensor(shape: [k, n], floats: Array(b.floats[bi * k * n..<(bi + 1) * k * n])),
                                             k: k, n: n, transB: false)
            let rows = Array(a.floats[ai * m * k..<(ai + 1) * m * k])
            out += rows.withUnsafeBufferPointer {
                LinearOps.packedProduct(a: $0.baseAddress!, m: m, packed: packed, bias: nil, path: MPQ_PATH_REFERENCE, threads: 1)
            }
        }
        return out
    }

    func testEveryMatrixEqualsTheReferenceAndNearOpenBLAS() throws {
        var rng = TestRNG(seed: 7)
        for (aShape, bShape) in Self.cases {
            let a = Self.tensor(aShape, &rng), b = Self.tensor(bShape, &rng)
            let shape = try BatchedShape(aShape, bShape)
            let what = "\(aShape) x \(bShape)"
            let got = try LinearOps.MatMul(a: a, b: b, gemm: .mpq)
            let blas = try LinearOps.MatMul(a: a, b: b, gemm: .openblas)
            XCTAssertEqual(got.shape, blas.shape, what)
            XCTAssertEqual(got.floats.map(\.bitPattern), Self.reference(a, b, shape: shape).map(\.bitPattern), what)
            // |a|, |b| <= 1: sum |a b| <= k.
            let bound = Float(2 * (FP32GemmTests.relativeTolerance * Double(shape.k) + FP32GemmTests.absoluteFloor))
            let worst = zip(got.floats, blas.floats).map { abs($0 - $1) }.max() ?? 0
            XCTAssertLessThanOrEqual(worst, bound, what)
        }
    }

    /// One thread (the pool inline, as inside an image chain) and all cores give the same bytes.
    func testBytesDoNotDependOnTheThreadCount() throws {
        var rng = TestRNG(seed: 11)
        let a = Self.tensor([4, 6, 64, 32], &rng), b = Self.tensor([4, 6, 32, 64], &rng)
        let split = try LinearOps.MatMul(a: a, b: b)
        mpq_set_single_threaded(1)
        defer { mpq_set_single_threaded(0) }
        let inline = try LinearOps.MatMul(a: a, b: b)
        XCTAssertEqual(split.floats.map(\.bitPattern), inline.floats.map(\.bitPattern))
    }

    /// Attention-sized products take the packed path by default (their bits are the
    /// reference's, which OpenBLAS's sum order does not give on this data); tiny-M batches
    /// (packing B would cost more than the product) and `MPQ_FP32_GEMM=openblas` do not.
    func testAttentionShapesRouteToThePackedGemm() throws {
        XCTAssertTrue(LinearOps.usesBatchedPackedGemm(batchCount: 12, m: 128, k: 32, n: 128, choice: .auto))
        XCTAssertTrue(LinearOps.usesBatchedPackedGemm(batchCount: 12, m: 128, k: 128, n: 32, choice: .auto))
        XCTAssertFalse(LinearOps.usesBatchedPackedGemm(batchCount: 12, m: 128, k: 128, n: 32, choice: .openblas))
        XCTAssertFalse(LinearOps.usesBatchedPackedGemm(batchCount: 64, m: 1, k: 128, n: 128, choice: .auto))
        XCTAssertFalse(LinearOps.usesBatchedPackedGemm(batchCount: 2, m: 16, k: 8, n: 8, choice: .auto))
        XCTAssertTrue(LinearOps.usesBatchedPackedGemm(batchCount: 2, m: 1, k: 8, n: 8, choice: .mpq))

        var rng = TestRNG(seed: 3)
        let a = Self.tensor([1, 12, 128, 32], &rng), b = Self.tensor([1, 12, 32, 128], &rng)
        let ref = Self.reference(a, b, shape: try BatchedShape(a.shape, b.shape)).map(\.bitPattern)
        let blas = try LinearOps.MatMul(a: a, b: b, gemm: .openblas).floats.map(\.bitPattern)
        try XCTSkipIf(ref == blas, "OpenBLAS gave the reference's bits: routing not observable on this data")
        XCTAssertEqual(try LinearOps.MatMul(a: a, b: b, gemm: .auto).floats.map(\.bitPattern), ref)
    }
}
