import COpenBLAS
import Foundation
import ONNX

/// Row-major single-precision GEMM on OpenBLAS: `C[m×n] = alpha·op(A)·op(B) + beta·C`,
/// where `op(A)` is `m×k` (stored `k×m` when `transA`) and `op(B)` is `k×n`.
/// The one entry point every FP32 matrix product in mpq goes through (Gemm, MatMul,
/// Conv, ConvTranspose), so degenerate sizes are handled once, here.
public func sgemm(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
                  alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
                  b: UnsafePointer<Float>, ldb: Int,
                  beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
    if m == 0 || n == 0 { return }
    if k == 0 {
        // BLAS leaves C untouched for k == 0 only when beta == 1; do the scaling ourselves.
        for i in 0..<m {
            let row = c + i * ldc
            for j in 0..<n { row[j] = beta == 0 ? 0 : beta * row[j] }
        }
        return
    }
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                Int32(m), Int32(n), Int32(k), alpha, a, Int32(max(lda, 1)), b, Int32(max(ldb, 1)),
                beta, c, Int32(max(ldc, 1)))
}

enum LinearOps {
    static let table: [String: OpEntry] = [
        "Gemm": OpEntry(since: 1) { node, inputs, opset, prepared in
            let a = try node.required(inputs, 0, "A"), b = try node.required(inputs, 1, "B")
            let c = inputs.count > 2 ? inputs[2] : nil
            if c == nil && opset < 11 { throw OpError("Gemm before opset 11 requires input C") }
            return [try Gemm(a: a, b: b, c: c, alpha: node.float("alpha", default: 1),
                             beta: node.float("beta", default: 1),
                             transA: node.int("transA", default: 0) != 0,
                             transB: node.int("transB", default: 0) != 0,
                             packWeights: sessionPacker(node, prepared))]
        },
        "MatMul": OpEntry(since: 1) { node, inputs, _, prepared in
            [try MatMul(a: try node.required(inputs, 0, "A"), b: try node.required(inputs, 1, "B"),
                        packWeights: sessionPacker(node, prepared))]
        },
    ]

    /// The session's cache of packed weights for input B (input 1) of `node`.
    static func sessionPacker(_ node: Node, _ prepared: PreparedWeights?) -> LinearWeightPacker? {
        guard let prepared, node.inputs.count > 1 else { return nil }
        let name = node.inputs[1]
        return { b, k, n, transB in prepared.linearWeights(name, b, k: k, n: n, transB: transB) }
    }

    /// ONNX Gemm: `Y = alpha·op(A)·op(B) + beta·C`, C broadcast unidirectionally to `[M,N]`.
    /// With B a session constant (`packWeights` gives it packed), transA = 0, alpha = 1 and
    /// C absent or a row ([N], [1, N], one value), it runs on mpq's packed GEMM with
    /// `beta·C` added in the epilogue (`usesPackedGemm`); everything else, and
    /// `MPQ_FP32_GEMM=openblas`, on OpenBLAS. `MPQ_FP32_GEMM=mpq` also packs a B that is no
    /// session constant, for the call.
    static func Gemm(a: Tensor, b: Tensor, c: Tensor?, alpha: Float, beta: Float,
                     transA: Bool, transB: Bool, packWeights: LinearWeightPacker? = nil,
                     gemm: FP32GemmChoice = FP32GemmChoice.environment) throws -> Tensor {
        guard a.rank == 2, b.rank == 2 else {
            throw OpError("Gemm needs 2-D A and B, got A \(Tensor.describe(a.shape)) and B \(Tensor.describe(b.shape))")
        }
        try ensureFloat(a, "A"); try ensureFloat(b, "B")
        let m = transA ? a.shape[1] : a.shape[0], k = transA ? a.shape[0] : a.shape[1]
        let kb = transB ? b.shape[1] : b.shape[0], n = transB ? b.shape[0] : b.shape[1]
        guard k == kb else {
            throw OpError("Gemm inner dimensions differ: A \(Tensor.describe(a.shape)) transA=\(transA), B \(Tensor.describe(b.shape)) transB=\(transB)")
        }
        if !transA, alpha == 1, usesPackedGemm(m: m, k: k, n: n, choice: gemm), case let .some(bias) = packedBias(c, beta: beta, n: n),
           let packed = packWeights?(b, k, n, transB) ?? (gemm == .mpq ? PackedLinearWeights(b, k: k, n: n, transB: transB) : nil) {
            if let c, beta != 0 { try ensureFloat(c, "C") }
            let out = a.floats.withUnsafeBufferPointer { packedProduct(a: $0.baseAddress!, m: m, packed: packed, bias: bias) }
            return Tensor(shape: [m, n], floats: out, dtype: a.dtype)
        }
        var out = [Float](repeating: 0, count: m * n)
        var betaEff: Float = 0
        if let c, beta != 0 {
            try ensureFloat(c, "C")
            try broadcastBias(c, m: m, n: n, into: &out)
            betaEff = beta
        }
        a.floats.withUnsafeBufferPointer { pa in
            b.floats.withUnsafeBufferPointer { pb in
                out.withUnsafeMutableBufferPointer { pc in
                    sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha,
                          a: pa.baseAddress!, lda: a.shape[1], b: pb.baseAddress!, ldb: b.shape[1],
                          beta: betaEff, c: pc.baseAddress!, ldc: n)
                }
            }
        }
        return Tensor(shape: [m, n], floats: out, dtype: a.dtype)
    }

    /// Writes C broadcast to `[m,n]` (right-aligned, each dimension 1 or equal) into `out`.
    private static func broadcastBias(_ c: Tensor, m: Int, n: Int, into out: inout [Float]) throws {
        guard c.rank <= 2 else { throw OpError("Gemm C \(Tensor.describe(c.shape)) does not broadcast to [\(m),\(n)]") }
        let shape = [Int](repeating: 1, count: 2 - c.rank) + c.shape
        guard shape[0] == 1 || shape[0] == m, shape[1] == 1 || shape[1] == n else {
            throw OpError("Gemm C \(Tensor.describe(c.shape)) does not broadcast to [\(m),\(n)]")
        }
        let rs = shape[0] == 1 ? 0 : shape[1], cs = shape[1] == 1 ? 0 : 1
        c.floats.withUnsafeBufferPointer { pc in
            out.withUnsafeMutableBufferPointer { po in
                for i in 0..<m { for j in 0..<n { po[i * n + j] = pc[i * rs + j * cs] } }
            }
        }
    }

    /// ONNX MatMul with numpy semantics: 1-D operands are promoted (and the added axis
    /// removed from the result), batch dimensions broadcast. A B without batches (or a
    /// batch of one) that `packWeights` gives packed (a session constant) runs on mpq's
    /// packed GEMM with A's batches folded into its rows (`usesPackedGemm`); batched
    /// activation x activation products (attention) on it matrix by matrix
    /// (`usesBatchedPackedGemm`, Linear+Batched.swift).
    static func MatMul(a: Tensor, b: Tensor, packWeights: LinearWeightPacker? = nil,
                       gemm: FP32GemmChoice = FP32GemmChoice.environment) throws -> Tensor {
        try ensureFloat(a, "A"); try ensureFloat(b, "B")
        guard a.rank >= 1, b.rank >= 1 else {
            throw OpError("MatMul operands must have rank >= 1, got \(Tensor.describe(a.shape)) and \(Tensor.describe(b.shape))")
        }
        let aShape = a.rank == 1 ? [1, a.shape[0]] : a.shape
        let bShape = b.rank == 1 ? [b.shape[0], 1] : b.shape
        let shape = try BatchedShape(aShape, bShape, description: "\(Tensor.describe(a.shape)) x \(Tensor.describe(b.shape))")
        let (m, k, n, batchCount) = (shape.m, shape.k, shape.n, shape.batchCount)
        var outShape = shape.outShape
        if b.rank == 1 { outShape.removeLast() }
        if a.rank == 1 { outShape.remove(at: outShape.count - (b.rank == 1 ? 1 : 2)) }
        if let y = packedMatMul(a: a, b: b, shape: shape, outShape: outShape, bias: nil, packWeights: packWeights, gemm: gemm) {
            return y
        }
        let batched = !(shape.bBatchCount == 1 && shape.aBatchCount == batchCount)
        if batched, usesBatchedPackedGemm(batchCount: batchCount, m: m, k: k, n: n, choice: gemm) {
            let out = [Float](unsafeUninitializedCapacity: batchCount * m * n) { po, count in
                a.floats.withUnsafeBufferPointer { pa in
                    b.floats.withUnsafeBufferPointer { pb in
                        batchedPackedProduct(a: pa.baseAddress!, b: pb.baseAddress!, c: po.baseAddress!, shape: shape)
                    }
                }
                count = batchCount * m * n
            }
            return Tensor(shape: outShape, floats: out, dtype: a.dtype)
        }
        var out = [Float](repeating: 0, count: batchCount * m * n)
        a.floats.withUnsafeBufferPointer { pa in
            b.floats.withUnsafeBufferPointer { pb in
                out.withUnsafeMutableBufferPointer { po in
                    let A = pa.baseAddress!, B = pb.baseAddress!, C = po.baseAddress!
                    if shape.bBatchCount == 1 && shape.aBatchCount == batchCount {
                        // One right operand for every batch: the batch folds into M, one call.
                        sgemm(m: batchCount * m, n: n, k: k, a: A, lda: k, b: B, ldb: n, c: C, ldc: n)
                    } else {
                        // Batched activation x activation products (attention: batch x heads
                        // small GEMMs): whole batches per core, single-threaded BLAS each.
                        parallelBatches(batchCount, macsPerBatch: m * n * k) { i in
                            let (ai, bi) = shape.operandIndices(i)
                            sgemm(m: m, n: n, k: k, a: A + ai * m * k, lda: k, b: B + bi * k * n, ldb: n,
                                  c: C + i * m * n, ldc: n)
                        }
                    }
                }
            }
        }
        return Tensor(shape: outShape, floats: out, dtype: a.dtype)
    }
}

extension LinearOps {
    /// MatMul(a, b) + bias (a float32 row of N) with the bias added in the packed GEMM's
    /// epilogue, or nil when the product would not run on the packed GEMM (B batched or no
    /// session constant, a size OpenBLAS keeps) or the operands are not plain float32
    /// matrices: the caller then runs the MatMul and the Add as they are. The bits equal
    /// MatMul then Add: each output is the product's FMA chain, then one float add.
    static func MatMulAddingBias(a: Tensor, b: Tensor, bias: Tensor, packWeights: LinearWeightPacker?,
                                 gemm: FP32GemmChoice = FP32GemmChoice.environment) -> Tensor? {
        guard a.dtype == .float32, b.dtype == .float32, bias.dtype == .float32, bias.rank == 1, a.rank >= 2, b.rank == 2,
              let shape = try? BatchedShape(a.shape, b.shape, description: ""), bias.count == shape.n else { return nil }
        return packedMatMul(a: a, b: b, shape: shape, outShape: shape.outShape, bias: bias.floats, packWeights: packWeights,
                            gemm: gemm)
    }

    /// The product on the packed GEMM with A's batches folded into its rows, when B has no
    /// batches and `packWeights` packs it (or `gemm` is `.mpq`); nil otherwise.
    static func packedMatMul(a: Tensor, b: Tensor, shape: BatchedShape, outShape: [Int], bias: [Float]?,
                             packWeights: LinearWeightPacker?, gemm: FP32GemmChoice) -> Tensor? {
        let (m, k, n, batchCount) = (shape.m, shape.k, shape.n, shape.batchCount)
        guard shape.bBatchCount == 1, shape.aBatchCount == batchCount, usesPackedGemm(m: batchCount * m, k: k, n: n, choice: gemm),
              let packed = packWeights?(b, k, n, false) ?? (gemm == .mpq ? PackedLinearWeights(b, k: k, n: n, transB: false) : nil)
        else { return nil }
        // A held as codes (after an INT8 region) becomes floats here, once, only when used.
        let out = a.materialized().floats.withUnsafeBufferPointer {
            packedProduct(a: $0.baseAddress!, m: batchCount * m, packed: packed, bias: bias)
        }
        return Tensor(shape: outShape, floats: out, dtype: a.dtype)
    }
}

/// Runs `body(0..<count)`, split into one contiguous block per core when there are
/// several batches and enough work (>= 1M multiply-adds in all), with OpenBLAS held to
/// one thread meanwhile so the cores are not oversubscribed. Each batch writes its own
/// output, so the result does not depend on the split.
func parallelBatches(_ count: Int, macsPerBatch: Int, _ body: (Int) -> Void) {
    let tasks = min(coreCount, count)
    guard tasks > 1, count * macsPerBatch >= 1 << 20 else {
        for i in 0..<count { body(i) }
        return
    }
    let before = openblas_get_num_threads()
    if before > 1 { openblas_set_num_threads(1) }
    withoutActuallyEscaping(body) { body in
        DispatchQueue.concurrentPerform(iterations: tasks) { t in
            for i in (count * t / tasks)..<(count * (t + 1) / tasks) { body(i) }
        }
    }
    if before > 1 { openblas_set_num_threads(before) }
}

/// Throws unless the tensor holds floating-point data (every FP32 kernel's precondition).
func ensureFloat(_ t: Tensor, _ what: String) throws {
    guard t.dtype.isFloating else {
        throw OpError("\(what) must be floating point, got \(t.dtype.rawValue) \(Tensor.describe(t.shape))")
    }
}

/// Shapes of a batched matmul of rank >= 2 operands with numpy broadcasting of the
/// batch dimensions; shared by the FP32 MatMul and the INT8 activation x activation one.
struct BatchedShape {
    let m: Int, k: Int, n: Int
    let batch: [Int]
    let outShape: [Int]
    let batchCount: Int
    let aBatchCount: Int, bBatchCount: Int
    private let aStrides: [Int], bStrides: [Int], outStrides: [Int]

    /// `description` names the operands in errors (default: the shapes given).
    init(_ a: [Int], _ b: [Int], description: String? = nil) throws {
        let describe = description ?? "\(Tensor.describe(a)) x \(Tensor.describe(b))"
        m = a[a.count - 2]; k = a[a.count - 1]; n = b[b.count - 1]
        guard b[b.count - 2] == k else { throw OpError("MatMul inner dimensions differ: \(describe)") }
        let aBatch = Array(a.dropLast(2)), bBatch = Array(b.dropLast(2))
        let rank = max(aBatch.count, bBatch.count)
        let ab = [Int](repeating: 1, count: rank - aBatch.count) + aBatch
        let bb = [Int](repeating: 1, count: rank - bBatch.count) + bBatch
        var batch = [Int](repeating: 1, count: rank)
        for i in 0..<rank {
            guard ab[i] == bb[i] || ab[i] == 1 || bb[i] == 1 else {
                throw OpError("MatMul batch dimensions do not broadcast: \(describe)")
            }
            batch[i] = ab[i] == 1 ? bb[i] : ab[i]
        }
        self.batch = batch
        outShape = batch + [m, n]
        batchCount = batch.reduce(1, *)
        aBatchCount = ab.reduce(1, *); bBatchCount = bb.reduce(1, *)
        // Strides over batch indices, 0 along broadcast (size-1) dimensions.
        aStrides = zip(ab, stridesOf(ab)).map { $0 == 1 ? 0 : $1 }
        bStrides = zip(bb, stridesOf(bb)).map { $0 == 1 ? 0 : $1 }
        outStrides = stridesOf(batch)
    }

    /// Indices of the A and B matrices that output batch matrix `i` multiplies.
    func operandIndices(_ i: Int) -> (Int, Int) {
        var ai = 0, bi = 0, r = i
        for d in 0..<batch.count {
            let idx = r / outStrides[d]; r -= idx * outStrides[d]
            ai += idx * aStrides[d]; bi += idx * bStrides[d]
        }
        return (ai, bi)
    }
}
