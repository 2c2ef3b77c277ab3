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

/// Channel ranges one image's depthwise conv splits into: 2M MACs or more (a few hundred
/// microseconds on the VNNI kernel) repay a fork/join, smaller layers stay on one core.
func depthwiseChannelTasks(macs: Int) -> Int {
    macs >= 1 << 21 ? coreCount : 1
}

/// Pool threads for one image's depthwise conv to codes (`mpq_depthwise_conv_u8s8_u8_threads`:
/// the kernel pool's workers, which spin between the layers of a run, split the channels; no
/// fork/join per call as the channel-range tasks pay): all cores from 128K MACs, which takes in
/// MobileNetV2's 14x14 and 7x7 layers (0.25-0.7M MACs, one core before).
func depthwisePoolThreads(macs: Int) -> Int32 {
    macs >= 1 << 17 ? Int32(coreCount) : 1
}

/// `MPQ_INT8_DEPTHWISE_POOL=0` keeps the channel-range tasks (`depthwiseChannelTasks`) for a
/// depthwise conv to codes too, for A/B.
let depthwisePoolEnabled = ProcessInfo.processInfo.environment["MPQ_INT8_DEPTHWISE_POOL"] != "0"

func gemmThreads(m: Int, n: Int, k: Int) -> Int32 {
    m * n * k >= 1 << 20 ? Int32(coreCount) : 1
}

/// Threads for one image's im2col Conv (`mpq_qconv2d_u8s8`): as `gemmThreads`, but a Conv with
/// a window (3x3 and larger) splits from `windowConvSplitMACs` (256K): the detector's 0.4-0.9M-MAC
/// 3x3 layers ran on the caller at batch 1 while the other core spun. 1x1 Convs keep 1M
/// (resnet_digits' 401K-MAC 1x1 stride-2 downsamples were slower split: s27 tried 256K for all).
func convGemmThreads(m: Int, n: Int, k: Int, window: Int) -> Int32 {
    window > 1 && m * n * k >= windowConvSplitMACs ? Int32(coreCount) : gemmThreads(m: m, n: n, k: k)
}

/// `MPQ_INT8_WINDOW_SPLIT_MACS` (read once) sets `convGemmThreads`' threshold for an A/B.
let windowConvSplitMACs = Int(ProcessInfo.processInfo.environment["MPQ_INT8_WINDOW_SPLIT_MACS"] ?? "") ?? 1 << 18

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
