import CKernels
import Foundation
import ONNX

/// Owns a Conv's FP32 weights packed for `mpq_sconv2d_f32` (`mpq_sconv_pack_weights`),
/// 64-byte aligned. Packed once per session and weight (`PreparedWeights`).
final class PackedConvWeights: @unchecked Sendable {
    let pointer: UnsafeMutableRawPointer
    let m: Int, k: Int, group: Int

    /// `w` is ONNX Conv weights [M][C/group][kernel...], read as [M][K].
    init(_ w: Tensor, group: Int) {
        m = w.shape[0]; k = w.count / max(m, 1); self.group = group
        let size = mpq_sconv_pack_weights_size(Int32(m), Int32(k), Int32(group))
        pointer = UnsafeMutableRawPointer.allocate(byteCount: max(size, 64), alignment: 64)
        let rc = w.floats.withUnsafeBufferPointer { mpq_sconv_pack_weights($0.baseAddress, Int32(m), Int32(k), Int32(group), pointer) }
        precondition(rc == 0, "mpq_sconv_pack_weights rejected m=\(m) k=\(k) group=\(group)")
    }

    func matches(_ w: Tensor, group: Int) -> Bool { w.shape[0] == m && w.count == m * k && group == self.group }

    private let cvLock = NSLock()
    private var cvPointer: UnsafeMutableRawPointer?

    /// The same weights in the channel-vector layout (`mpq_sconv_cv_pack_weights_layout`, the
    /// host's layout: sliced on AVX2, rows elsewhere), repacked from the panels on first use:
    /// only Convs that run the small-plane kernel pay for it.
    var channelVector: UnsafeMutableRawPointer {
        cvLock.lock(); defer { cvLock.unlock() }
        if let p = cvPointer { return p }
        let p = channelVector(layout: mpq_sconv_cv_host_layout())
        cvPointer = p
        return p
    }

    /// A new channel-vector copy in `layout` (MPQ_SCONV_CV_ROWS or MPQ_SCONV_CV_SLICED), owned
    /// by the caller (deallocate it): the tests run every path on both.
    func channelVector(layout: Int32) -> UnsafeMutableRawPointer {
        let size = mpq_sconv_cv_weights_size(Int32(m), Int32(k), Int32(group))
        let p = UnsafeMutableRawPointer.allocate(byteCount: max(size, 64), alignment: 64)
        let rc = mpq_sconv_cv_pack_weights_layout(pointer, layout, p)
        precondition(rc == 0, "mpq_sconv_cv_pack_weights rejected m=\(m) k=\(k) group=\(group) layout=\(layout)")
        return p
    }

    deinit {
        pointer.deallocate()
        cvPointer?.deallocate()
    }
}

/// Which FP32 GEMM a Conv runs on: mpq's packed one (`mpq_sgemm.h`) or OpenBLAS on an
/// im2col buffer. Read once from the environment `MPQ_FP32_GEMM=mpq|openblas` (default:
/// the rule in `ConvOps.usesPackedGemm`), so both can be timed and tested on one machine.
enum FP32GemmChoice: String {
    case auto, mpq, openblas

    static let environment: FP32GemmChoice = {
        FP32GemmChoice(rawValue: ProcessInfo.processInfo.environment["MPQ_FP32_GEMM"] ?? "") ?? .auto
    }()
}

extension ConvEpilogue {
    /// The activation arguments of `mpq_conv_epilogue_f32` / `mpq_sconv2d_f32`.
    var cActivation: (mpq_activation, Float, Float) {
        switch self {
        case .none: return (MPQ_ACT_NONE, 0, 0)
        case .clamp(let l, let h): return (MPQ_ACT_CLAMP, l, h)
        case .silu: return (MPQ_ACT_SILU, 0, 0)
        }
    }
}

extension ConvOps {
    /// Whether a Conv runs on the packed GEMM (docs/fp32-gemm.md has the measurements):
    /// 1-D and 2-D Convs that are not depthwise (those have their own kernel), with sizes
    /// that fit the C kernel's int arithmetic, and either strides up to 4 (the direct path,
    /// `mpq_sconv2d_f32_direct`: no packing; faster than OpenBLAS for every Conv of
    /// ResNet-digits, 0.4-9.8M MACs, where the packed path lost at 0.5-0.9x), at least
    /// `minimumMACs` per image, or at most 4 input channels per group (a stem; the
    /// packed path's rule, for larger strides).
    /// 3-D Convs stay on OpenBLAS.
    /// `MPQ_FP32_GEMM=mpq` drops the size rule, `=openblas` keeps every Conv on OpenBLAS.
    static func usesPackedGemm(_ g: WindowGeometry, channelsPerGroup cg: Int, m: Int, depthwise: Bool,
                               choice: FP32GemmChoice = FP32GemmChoice.environment) -> Bool {
        // Empty tensors and empty groups stay on the OpenBLAS loop (nothing to multiply).
        if choice == .openblas || depthwise || g.rank > 2 || m == 0 || cg == 0 || g.outputCount == 0 { return false }
        let limit = Int(Int32.max) / 64
        guard g.outputCount <= limit, cg * g.kernelCount <= limit, m <= limit,
              g.input[1] <= limit, g.input[2] <= limit, cg * g.inputCount <= limit else { return false }
        if choice == .mpq { return true }
        let macs = m.multipliedReportingOverflow(by: g.outputCount * cg * g.kernelCount)
        let direct = g.stride[1] <= 4 && g.stride[2] <= 4  // `mpq_sconv2d_f32_direct_applies`
        return direct || macs.overflow || macs.partialValue >= minimumMACs || cg <= 4
    }

    /// Multiply-adds per image from which a Conv runs on the packed GEMM (`usesPackedGemm`).
    static let minimumMACs = 16 << 20

    /// Threads for a packed-GEMM Conv: all cores from `splitMACs` multiply-adds in all (images
    /// split by image, one image by pixels or channels), else the calling thread.
    static func packedGemmThreads(images: Int, macsPerImage: Int) -> Int32 {
        images * macsPerImage >= splitMACs ? Int32(min(coreCount, 64)) : 1
    }

    /// Multiply-adds from which a Conv splits over the cores: 256K, or
    /// `MPQ_FP32_CONV_SPLIT_MACS` (read once). It was 2M while the pool's workers parked
    /// ~20 us after each call and a small layer's split waited for the wake-up; since s9-fp32
    /// they stay awake between layers (thread_pool.c, `MPQ_POOL_SPIN_US`), and splitting the
    /// detector's, resnet_digits' and MobileNetV2's 0.3-2M-MAC layers at batch 1 measured
    /// 0.84-0.93x of the 2M setting's wall time (interleaved minima, load 2.6-3.5; ORT splits
    /// every Conv). Same bits either way: a split never cuts a sum (sgemm_conv*.c).
    static let splitMACs: Int = {
        Int(ProcessInfo.processInfo.environment["MPQ_FP32_CONV_SPLIT_MACS"] ?? "").flatMap { $0 >= 0 ? $0 : nil } ?? 1 << 18
    }()

    /// The Conv on the packed GEMM: im2col fused into the packing, bias and `epilogue`
    /// applied per tile (`mpq_sconv2d_f32`).
    static func convPackedGemm(x: Tensor, packed: PackedConvWeights, bias: [Float], g: WindowGeometry,
                               epilogue: ConvEpilogue, path: mpq_kernel_path = MPQ_PATH_AUTO,
                               residual: ConvResidual? = nil) -> [Float] {
        let n = x.shape[0], c = x.shape[1], m = packed.m
        var shape = mpq_conv2d_shape(
            channels: Int32(c), height: Int32(g.input[1]), width: Int32(g.input[2]),
            kernel_h: Int32(g.kernel[1]), kernel_w: Int32(g.kernel[2]),
            pad_top: Int32(g.padHead[1]), pad_left: Int32(g.padHead[2]),
            pad_bottom: Int32(g.padTail[1]), pad_right: Int32(g.padTail[2]),
            stride_h: Int32(g.stride[1]), stride_w: Int32(g.stride[2]),
            dilation_h: Int32(g.dilation[1]), dilation_w: Int32(g.dilation[2]), group: Int32(packed.group))
        // Not zero-filled: both drivers write every output value (the direct one's tiles,
        // compressing stores or copy-out; the packed one's first K block stores), and a
        // failed call traps below. The fill was a serial memset of each Conv's output: 1.6% of
        // ResNet-18's batch-1 CPU time, 5% of the detector's FP32 batch-16 time.
        var out = [Float].uninitialized(count: n * m * g.outputCount)
        let (act, lo, hi) = epilogue.cActivation
        let threads = packedGemmThreads(images: n, macsPerImage: m * g.outputCount * packed.k)
        let rc = x.floats.withUnsafeBufferPointer { px in
            bias.withUnsafeBufferPointer { pb in
                out.withUnsafeMutableBufferPointer { po in
                    // Small planes: the channel-vector kernel (same bits; `MPQ_FP32_CONV_CV=0` keeps them off it).
                    if mpq_sconv2d_f32_cv_preferred(path, &shape, Int32(m), Int32(n), threads) != 0 {
                        let pb = pb.isEmpty ? nil : pb.baseAddress
                        guard let residual else {
                            return mpq_sconv2d_f32_cv(path, px.baseAddress, Int32(n), &shape, packed.channelVector, pb, act, lo, hi,
                                                      nil, po.baseAddress, threads)
                        }
                        return residual.shortcut.floats.withUnsafeBufferPointer { ps in
                            var r = mpq_sconv_residual(shortcut: ps.baseAddress, shortcut_first: residual.shortcutFirst ? 1 : 0,
                                                       relu: residual.relu ? 1 : 0)
                            return mpq_sconv2d_f32_cv(path, px.baseAddress, Int32(n), &shape, packed.channelVector, pb, act, lo, hi,
                                                      &r, po.baseAddress, threads)
                        }
                    }
                    if let residual {
                        // The caller checked the shortcut's shape (`ConvResidual.fits`).
                        return residual.shortcut.floats.withUnsafeBufferPointer { ps in
                            var r = mpq_sconv_residual(shortcut: ps.baseAddress, shortcut_first: residual.shortcutFirst ? 1 : 0,
                                                       relu: residual.relu ? 1 : 0)
                            return mpq_sconv2d_f32_residual(path, px.baseAddress, Int32(n), &shape, packed.pointer,
                                                            pb.isEmpty ? nil : pb.baseAddress, act, lo, hi, &r, po.baseAddress, threads)
                        }
                    }
                    return mpq_sconv2d_f32(path, px.baseAddress, Int32(n), &shape, packed.pointer,
                                           pb.isEmpty ? nil : pb.baseAddress, act, lo, hi, po.baseAddress, threads)
                }
            }
        }
        precondition(rc == 0, "mpq_sconv2d_f32 rejected a Conv the caller checked: X \(x.shape), M \(m), K \(packed.k)")
        return out
    }
}
