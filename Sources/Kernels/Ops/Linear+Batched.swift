import CKernels
import Foundation

/// Batched activation x activation products (attention: Q·Kᵀ and softmax·V, one small GEMM
/// per batch x head) on mpq's packed GEMM instead of one OpenBLAS call per matrix.
///
/// Why: OpenBLAS packs both operands on every call and its small-matrix path ran MiniLM's
/// attention products ([128 x 32] x [32 x 128] and [128 x 128] x [128 x 32]) at ~40
/// GFLOP/s on two cores, against ~280 for the model's weight products on the packed GEMM
/// and ~180 for ORT's FusedMatMul (benchmarks/README.md, "s10-attn"). Here each matrix is
/// multiplied single-threaded with its rows read in place, its B read in place too when N is
/// whole vectors (`mpq_slinear_f32_rows`, s34), else packed into a per-chunk scratch panel;
/// the chunks of matrices go over the kernel pool.
///
/// Each output is the FMA chain over k in order from +0 (`mpq_slinear.h`), so the bytes do
/// not depend on the thread count or the chunking; they differ from OpenBLAS's only by the
/// float rounding of the sum order.
extension LinearOps {
    /// Whether a batched product of `batchCount` matrices A [m x k] x B [k x n] runs here:
    /// each matrix big enough that packing its B (k x n floats) is small against its m x k x n
    /// multiply-adds (m >= 16), the whole call at least `minimumMACs`, and the sizes inside the
    /// C kernel's int arithmetic. `MPQ_FP32_GEMM=openblas` keeps every product on OpenBLAS,
    /// `=mpq` drops the size rules.
    static func usesBatchedPackedGemm(batchCount: Int, m: Int, k: Int, n: Int,
                                      choice: FP32GemmChoice = FP32GemmChoice.environment) -> Bool {
        // Each matrix is one packed product: the constant-weight rule's limits and switch apply.
        guard batchCount > 0, usesPackedGemm(m: m, k: k, n: n, choice: choice == .openblas ? .openblas : .mpq) else { return false }
        if choice == .mpq { return true }
        let perMatrix = m.multipliedReportingOverflow(by: k * n)
        if perMatrix.overflow { return true }
        return m >= 16 && batchCount * perMatrix.partialValue >= minimumMACs
    }

    /// C[i] = A[ai] x B[bi] for every output matrix i of `shape` (`operandIndices`), written to
    /// `c` ([batchCount][m][n]). Splits the matrices over the kernel pool in contiguous chunks
    /// (a few per core, claimed, so a late core costs one chunk); where B is packed, one scratch per chunk.
    static func batchedPackedProduct(a: UnsafePointer<Float>, b: UnsafePointer<Float>,
                                     c: UnsafeMutablePointer<Float>, shape: BatchedShape,
                                     path: mpq_kernel_path = MPQ_PATH_AUTO) {
        let (m, k, n, count) = (shape.m, shape.k, shape.n, shape.batchCount)
        let threads = min(Int(packedGemmThreads(macs: count * m * k * n)), count)
        let chunks = threads > 1 ? min(count, 4 * threads) : 1
        // Whole vectors: each B is read in place (`mpq_slinear_f32_rows`), no packing pass
        // (13-16% of MiniLM's attention products when packed; the same bits). Else each chunk
        // packs its matrices' B into one scratch.
        let inPlace = n % 16 == 0
        let packBytes = inPlace ? 0 : mpq_slinear_pack_weights_size(Int32(k), Int32(n))
        poolPerform(threads: threads, chunks: chunks) { chunk in
            let scratch = inPlace ? nil : UnsafeMutableRawPointer.allocate(byteCount: packBytes, alignment: 64)
            defer { scratch?.deallocate() }
            var packedIndex = -1  // B matrix now in `scratch` (broadcast B repeats over A's batches)
            for i in (count * chunk / chunks)..<(count * (chunk + 1) / chunks) {
                let (ai, bi) = shape.operandIndices(i)
                matrixProduct(a + ai * m * k, m: m, k: k, lda: k, b + bi * k * n, n: n, ldb: n, pack: scratch,
                              repack: bi != packedIndex, c + i * m * n, ldy: n, path: path)
                packedIndex = bi
            }
        }
    }

    /// One matrix of a batched product on the calling thread: y (row stride `ldy`) = A (row
    /// stride `lda`) x B (row stride `ldb`), B read in place (`mpq_slinear_f32_rows`: N whole
    /// vectors), or with a `pack` scratch packed into it first (B dense: ldb == n), unless
    /// `repack` is false because it holds this B already. The same FMA chains either way, so the
    /// same bits (`AttentionFusion` relies on it).
    static func matrixProduct(_ a: UnsafePointer<Float>, m: Int, k: Int, lda: Int, _ b: UnsafePointer<Float>, n: Int,
                              ldb: Int, pack: UnsafeMutableRawPointer?, repack: Bool = true, _ y: UnsafeMutablePointer<Float>,
                              ldy: Int, path: mpq_kernel_path = MPQ_PATH_AUTO) {
        let rc: Int32
        if let pack {
            if repack {
                let packed = ldb == n ? mpq_slinear_pack_weights(b, Int32(k), Int32(n), 0, pack) : -1
                precondition(packed == 0, "mpq_slinear_pack_weights rejected k=\(k) n=\(n) ldb=\(ldb)")
            }
            rc = mpq_slinear_f32(path, a, Int32(m), Int32(lda), pack, nil, y, Int32(ldy), 1)
        } else {
            rc = mpq_slinear_f32_rows(path, a, Int32(m), Int32(lda), b, Int32(k), Int32(n), Int32(ldb), nil, y, Int32(ldy), 1)
        }
        precondition(rc == 0, "the linear GEMM rejected m=\(m) k=\(k) n=\(n)")
    }
}
