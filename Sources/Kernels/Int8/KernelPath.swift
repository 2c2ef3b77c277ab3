import CKernels
import Foundation

/// Which instruction-set path the INT8 kernels use. `auto` is the fastest this CPU has
/// (or the one forced by `MPQ_KERNEL_PATH`); forcing a path lets every path be tested and
/// timed on one machine.
public enum KernelPath: String, CaseIterable, Codable, Sendable {
    case auto, reference, avx2, vnni

    var c: mpq_kernel_path {
        switch self {
        case .auto: return MPQ_PATH_AUTO
        case .reference: return MPQ_PATH_REFERENCE
        case .avx2: return MPQ_PATH_AVX2
        case .vnni: return MPQ_PATH_VNNI
        }
    }

    public var isAvailable: Bool { mpq_kernel_path_available(c) != 0 }

    /// The path that actually runs for this choice on this CPU.
    public var resolved: KernelPath {
        switch mpq_resolve_kernel_path(c) {
        case MPQ_PATH_VNNI: return .vnni
        case MPQ_PATH_AVX2: return .avx2
        default: return .reference
        }
    }

    /// Paths this machine can run, reference first.
    public static var available: [KernelPath] { [.reference, .avx2, .vnni].filter(\.isAvailable) }
}

/// Threads for one GEMM: small products are not worth waking a second core.
@inline(__always)
/// How many tasks a batched layer splits its images over (one image each at least): all
/// cores when there are several images and the layer is worth a fork/join, else one (the
/// GEMM then splits a single image itself, `gemmThreads`).
func imageTasks(images: Int, macsPerImage: Int) -> Int {
    guard images > 1, images * macsPerImage >= 1 << 20 else { return 1 }
    return min(images, coreCount)
}

/// Channel ranges one image's depthwise conv (FP32 or INT8) splits into, on the C kernel pool
/// (`poolPerform`, `mpq_depthwise_conv_u8s8_u8_threads`): from 256K MACs, about 15-35 us on the
/// VNNI kernel and 30-60 us on the FP32 ones against a few us of fork/join, so every batch-1
/// depthwise layer of MobileNetV2. The pool's caller runs any task no worker has claimed yet,
/// so on a busy machine a split layer costs what one thread costs; the old split on
/// `concurrentPerform` waited for the second core instead, which is why it started at 2M.
func depthwiseChannelTasks(macs: Int) -> Int {
    macs >= 1 << 18 ? coreCount : 1
}

/// Runs `body(k)` once for each chunk k in 0..<chunks on up to `threads` threads of the C
/// kernel pool (`mpq_run_chunks`: the caller among them, each thread claiming the next
/// unclaimed chunk, so a busy second core delays the caller by one chunk at most; inline
/// where `mpq_set_single_threaded` is on). `body` must not itself split over the pool.
func poolPerform(threads: Int, chunks: Int, _ body: (Int) -> Void) {
    if threads <= 1 || chunks <= 1 {
        for k in 0..<chunks { body(k) }
        return
    }
    withoutActuallyEscaping(body) { escapable in
        var task = escapable
        withUnsafeMutablePointer(to: &task) { p in
            mpq_run_chunks(Int32(threads), Int32(chunks), { arg, k in
                arg!.assumingMemoryBound(to: ((Int) -> Void).self).pointee(Int(k))
            }, p)
        }
    }
}

func gemmThreads(m: Int, n: Int, k: Int) -> Int32 {
    m * n * k >= 1 << 20 ? Int32(coreCount) : 1
}

/// Owns a packed INT8 weight matrix (`mpq_pack_b_s8` layout), 64-byte aligned.
final class PackedWeights: @unchecked Sendable {
    let pointer: UnsafeMutableRawPointer
    let n: Int, k: Int

    /// `rows` is [n][k] int8 row-major: one row per output channel.
    init(rows: [Int8], n: Int, k: Int) {
        self.n = n; self.k = k
        let size = mpq_pack_b_s8_size(Int32(n), Int32(k))
        pointer = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 64)
        let rc = rows.withUnsafeBufferPointer { mpq_pack_b_s8($0.baseAddress, Int32(n), Int32(k), Int32(k), pointer) }
        precondition(rc == 0, "mpq_pack_b_s8 rejected n=\(n) k=\(k)")
    }

    deinit { pointer.deallocate() }
}

/// Quantizes floats to uint8 with ONNX QuantizeLinear semantics.
func quantizeU8(_ x: UnsafeBufferPointer<Float>, _ q: ActivationQuant, path: KernelPath, into y: UnsafeMutablePointer<UInt8>) {
    mpq_quantize_u8(path.c, x.baseAddress, x.count, q.scale, q.zeroPoint, y)
}

/// `quantizeU8` over all cores from 64k floats up (the same codes, mpq_quantize_split.h), for
/// callers on the session's thread (MatMul inputs), not inside a per-image parallel loop.
func quantizeU8Split(_ x: UnsafeBufferPointer<Float>, _ q: ActivationQuant, path: KernelPath, into y: UnsafeMutablePointer<UInt8>) {
    mpq_quantize_u8_split(path.c, x.baseAddress, x.count, q.scale, q.zeroPoint, y, rowThreads(x.count))
}
