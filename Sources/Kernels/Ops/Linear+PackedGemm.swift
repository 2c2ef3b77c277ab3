import CKernels
import Foundation
import ONNX

/// Owns a constant Gemm / MatMul weight B (K x N) packed for `mpq_slinear_f32`
/// (`mpq_slinear_pack_weights`), 64-byte aligned. Packed once per session and weight
/// (`PreparedWeights.linearWeights`).
final class PackedLinearWeights: @unchecked Sendable {
    let pointer: UnsafeMutableRawPointer
    let k: Int, n: Int, transB: Bool

    /// `b` holds K x N floats row-major, or N x K with `transB` (a Gemm's transB = 1).
    /// `layout` (MPQ_SLINEAR_LAYOUT_*) defaults to the one this CPU's tile reads fastest;
    /// the tests pack both.
    init(_ b: Tensor, k: Int, n: Int, transB: Bool, layout: Int32 = mpq_slinear_host_layout()) {
        self.k = k; self.n = n; self.transB = transB
        precondition(b.count == k * n, "linear weight \(b.shape) is not \(k) x \(n)")
        let size = mpq_slinear_pack_weights_size(Int32(k), Int32(n))
        pointer = UnsafeMutableRawPointer.allocate(byteCount: max(size, 64), alignment: 64)
        let rc = b.floats.withUnsafeBufferPointer {
            mpq_slinear_pack_weights_layout($0.baseAddress, Int32(k), Int32(n), transB ? 1 : 0, layout, pointer)
        }
        precondition(rc == 0, "mpq_slinear_pack_weights rejected k=\(k) n=\(n) layout=\(layout)")
    }

    func matches(k: Int, n: Int, transB: Bool) -> Bool { self.k == k && self.n == n && self.transB == transB }

    deinit { pointer.deallocate() }
}

/// Gives the packed form of a Gemm / MatMul weight B (the tensor, K, N, transB), or nil
/// when B is no session constant (it then stays on OpenBLAS: packing it on every call
/// costs as much as a small product).
typealias LinearWeightPacker = (_ b: Tensor, _ k: Int, _ n: Int, _ transB: Bool) -> PackedLinearWeights?

extension LinearOps {
    /// Whether a product of A [m x k] and a constant B [k x n] runs on mpq's packed GEMM
    /// (`mpq_slinear.h`; docs/fp32-gemm.md has the measurements). Empty products and sizes
    /// past the C kernel's int arithmetic stay on OpenBLAS. `MPQ_FP32_GEMM=mpq` drops the
    /// size rule, `=openblas` keeps every product on OpenBLAS.
    static func usesPackedGemm(m: Int, k: Int, n: Int, choice: FP32GemmChoice = FP32GemmChoice.environment) -> Bool {
        if choice == .openblas || m == 0 || k == 0 || n == 0 { return false }
        guard m <= Int(Int32.max), k <= 1 << 24, n <= 1 << 24 else { return false }
        if choice == .mpq { return true }
        let macs = m.multipliedReportingOverflow(by: k * n)
        return macs.overflow || macs.partialValue >= minimumMACs || k * n >= minimumWeightElements
    }

    /// Multiply-adds from which a constant-weight product runs on the packed GEMM.
    static let minimumMACs = 1 << 20

    /// Weight elements (K x N) from which a product runs on the packed GEMM at any M: OpenBLAS
    /// re-packs B on every call, which dominates a classifier head at batch 1 (ResNet-18's
    /// [1, 512] x [512, 1000]: 0.39 ms on OpenBLAS, 0.14 ms packed on one core).
    static let minimumWeightElements = 1 << 16

    /// Threads for a packed product of `macs` multiply-adds over a weight of `weights` (K x N)
    /// elements: all cores from ~2M multiply-adds, or from 256K weight elements (1 MiB): a
    /// product with few rows is bound by streaming B, and the column split gives each core
    /// its own half of B to stream (ResNet-18's head at batch 1); else the caller's thread.
    static func packedGemmThreads(macs: Int, weights: Int = 0) -> Int32 {
        macs >= 1 << 21 || weights >= 1 << 18 ? Int32(min(coreCount, 64)) : 1
    }

    /// The bias a Gemm's C gives the packed GEMM's epilogue: nil (none) without C or with
    /// beta = 0, `beta * C` as a row of n when C broadcasts along the rows ([n], [1, n],
    /// one value), else `.none`: such a C (per row, or a whole [m, n] matrix) stays on OpenBLAS.
    static func packedBias(_ c: Tensor?, beta: Float, n: Int) -> [Float]?? {
        guard let c, beta != 0 else { return .some(nil) }
        guard c.rank <= 2, c.dtype.isFloating else { return .none }
        let shape = [Int](repeating: 1, count: 2 - c.rank) + c.shape
        guard shape[0] == 1, shape[1] == n || shape[1] == 1 else { return .none }
        let row = shape[1] == n ? c.floats : [Float](repeating: c.floats[0], count: n)
        return .some(beta == 1 ? row : row.map { beta * $0 })
    }

    /// Y [m x n] = A [m x k] x B (+ bias[j]) on the packed GEMM (`mpq_slinear_f32`): each
    /// output is the FMA chain over k in order from +0, then one float add of the bias.
    static func packedProduct(a: UnsafePointer<Float>, m: Int, packed: PackedLinearWeights, bias: [Float]?,
                              path: mpq_kernel_path = MPQ_PATH_AUTO, threads: Int32? = nil) -> [Float] {
        let n = packed.n, k = packed.k
        let threads = threads ?? packedGemmThreads(macs: m * k * n, weights: k * n)
        return [Float](unsafeUninitializedCapacity: m * n) { out, count in
            let rc = (bias ?? []).withUnsafeBufferPointer { pb in
                mpq_slinear_f32(path, a, Int32(m), Int32(k), packed.pointer, bias == nil ? nil : pb.baseAddress,
                                out.baseAddress, Int32(n), threads)
            }
            precondition(rc == 0, "mpq_slinear_f32 rejected m=\(m) k=\(k) n=\(n)")
            count = m * n
        }
    }
}
