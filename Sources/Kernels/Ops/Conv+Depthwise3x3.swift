import CKernels
import Foundation
import ONNX

extension ConvOps {
    /// Multiply-adds from which one image's FP32 depthwise conv splits its channels over the
    /// cores (on the kernel pool): `MPQ_FP32_DW_SPLIT_MACS` (read once), default 128K. The
    /// 2M of the INT8 kernels (`depthwiseChannelTasks`) kept all but MobileNetV2's three largest
    /// FP32 layers on one core, at 3-8 GFLOP/s where ORT splits every layer. Same bits either
    /// way: a split is by channel, never inside a sum. 256K until s15: MobileNetV2's stride-2
    /// depthwise onto 7x7 (254K) then ran on one core, reading the 1x1 expand's output that both
    /// cores had written (each its own channels since s15-split): 43-44 us at two threads against
    /// 34 on one core alone; split (each core its own channels) 21 us, C sequence harness
    /// (benchmarks/fp32_mbv2_sequence.c).
    static let fp32DepthwiseSplitMACs: Int = {
        Int(ProcessInfo.processInfo.environment["MPQ_FP32_DW_SPLIT_MACS"] ?? "").flatMap { $0 >= 0 ? $0 : nil } ?? 1 << 17
    }()

    static func fp32DepthwiseChannelTasks(macs: Int) -> Int {
        macs >= fp32DepthwiseSplitMACs ? coreCount : 1
    }

    /// Output channels `range` of image `image` of a depthwise conv (one input channel per
    /// group), bias and epilogue included: `depthwiseLanes` when it takes the case, else
    /// `depthwiseImage` calls when each output channel
    /// reads its own input channel, else plane by plane. Channels go in chunks of at most
    /// 256 KiB of output, each chunk's epilogue run right after it while it is in cache: at
    /// batch 16 MobileNetV2's tensors are 10-30 MB, and a separate bias/Relu6 pass over the
    /// whole image re-read it from memory.
    static func depthwiseChannels(_ range: Range<Int>, image: Int, x: UnsafePointer<Float>, w: UnsafePointer<Float>,
                                  y: UnsafeMutablePointer<Float>, channels c: Int, outChannels m: Int, _ g: WindowGeometry,
                                  bias: UnsafePointer<Float>?, epilogue: ConvEpilogue) {
        let inP = g.inputCount, outP = g.outputCount, kCount = g.kernelCount, perInput = m / c
        if c == m, depthwiseLanes(src: x + (image * c + range.lowerBound) * inP, weights: w + range.lowerBound * kCount,
                                  bias: bias.map { $0 + range.lowerBound }, dst: y + (image * m + range.lowerBound) * outP,
                                  channels: range.count, g, epilogue: epilogue, threads: 1) { return }
        let chunk = max(1, (256 << 10) / max(1, outP * MemoryLayout<Float>.size))
        var first = range.lowerBound
        while first < range.upperBound {
            let part = first..<min(range.upperBound, first + chunk)
            let dst = y + (image * m + part.lowerBound) * outP
            if !(c == m && depthwiseImage(src: x + (image * c + part.lowerBound) * inP, weights: w + part.lowerBound * kCount,
                                          dst: dst, channels: part.count, outChannels: part.count, g)) {
                for oc in part {
                    let src = x + (image * c + oc / perInput) * inP, plane = y + (image * m + oc) * outP
                    if !depthwise3x3Plane(src: src, weights: w + oc * kCount, dst: plane, g) {
                        plane.update(repeating: 0, count: outP)  // the tap loop accumulates
                        depthwisePlane(src: src, weights: w + oc * kCount, dst: plane, g)
                    }
                }
            }
            epilogue.apply(dst, rows: part.count, cols: outP, ld: outP, bias: bias.map { $0 + part.lowerBound })
            first = part.upperBound
        }
    }

    /// `channels` planes of one image of a 2-D depthwise 3x3 conv (undilated, stride 1 or 2
    /// across, one output channel per input channel), bias and a Relu/Clip epilogue fused, by
    /// `mpq_depthwise3x3_f32_lanes`: 16 channels in the vector lanes, split into (channel block,
    /// row strip) units over `threads` threads of the kernel pool (docs/depthwise.md). The bits
    /// of `depthwiseImage` then `epilogue.apply`. Returns false (writing nothing) when the
    /// kernel does not take the case (no AVX-512, another geometry, a SiLU epilogue, a weight
    /// that is not finite, MPQ_FP32_DW_LANES=0); the caller then runs the pixel-lane kernels.
    static func depthwiseLanes(src: UnsafePointer<Float>, weights w: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                               dst: UnsafeMutablePointer<Float>, channels: Int, _ g: WindowGeometry, epilogue: ConvEpilogue,
                               threads: Int) -> Bool {
        let limit = Int(Int32.max)
        guard channels > 0, channels <= limit, g.input[0] == 1, g.kernel[0] == 1, g.output[0] == 1, g.kernel[1] == 3,
              g.kernel[2] == 3, g.dilation[1] == 1, g.dilation[2] == 1,
              [g.input[1], g.input[2], g.stride[1], g.stride[2], g.padHead[1], g.padHead[2], g.padTail[1], g.padTail[2]]
                  .allSatisfy({ $0 <= limit }) else { return false }
        let (act, lo, hi): (mpq_activation, Float, Float)
        switch epilogue {
        case .none: (act, lo, hi) = (MPQ_ACT_NONE, 0, 0)
        case .clamp(let l, let h): (act, lo, hi) = (MPQ_ACT_CLAMP, l, h)
        case .silu: return false
        }
        var s = mpq_conv2d_shape(channels: Int32(channels), height: Int32(g.input[1]), width: Int32(g.input[2]),
                                 kernel_h: 3, kernel_w: 3, pad_top: Int32(g.padHead[1]), pad_left: Int32(g.padHead[2]),
                                 pad_bottom: Int32(g.padTail[1]), pad_right: Int32(g.padTail[2]),
                                 stride_h: Int32(g.stride[1]), stride_w: Int32(g.stride[2]),
                                 dilation_h: 1, dilation_w: 1, group: Int32(channels))
        guard Int(mpq_conv2d_out_h(&s)) == g.output[1], Int(mpq_conv2d_out_w(&s)) == g.output[2] else { return false }
        return mpq_depthwise3x3_f32_lanes(MPQ_PATH_AUTO, src, &s, w, bias, act, lo, hi, dst, Int32(min(max(threads, 1), 64))) == 0
    }

    /// One image of a 2-D depthwise conv with one output channel per input channel (the
    /// MobileNet case), all planes in one `mpq_depthwise_f32` call: on the VNNI path an
    /// AVX-512 row kernel for stride-1 rows of 9-64 outputs, a window-gather kernel for
    /// narrower planes (7x7), the 3x3 plane kernel for 112-wide and stride-2 rows, the
    /// scalar reference otherwise (docs/depthwise.md). Every form gives the
    /// bits of the tap-by-tap `depthwisePlane` (taps inside the input, in order, from +0, one
    /// fused multiply-add each, then + 0). Returns false (writing nothing) when the geometry is not this case.
    static func depthwiseImage(src: UnsafePointer<Float>, weights w: UnsafePointer<Float>, dst: UnsafeMutablePointer<Float>,
                               channels: Int, outChannels: Int, _ g: WindowGeometry) -> Bool {
        let limit = Int(Int32.max)
        guard channels == outChannels, channels <= limit, g.input[0] == 1, g.kernel[0] == 1, g.output[0] == 1,
              [g.input[1], g.input[2], g.kernel[1], g.kernel[2], g.stride[1], g.stride[2], g.dilation[1], g.dilation[2],
               g.padHead[1], g.padHead[2], g.padTail[1], g.padTail[2]].allSatisfy({ $0 <= limit }) else { return false }
        var s = mpq_conv2d_shape(channels: Int32(channels), height: Int32(g.input[1]), width: Int32(g.input[2]),
                                 kernel_h: Int32(g.kernel[1]), kernel_w: Int32(g.kernel[2]),
                                 pad_top: Int32(g.padHead[1]), pad_left: Int32(g.padHead[2]),
                                 pad_bottom: Int32(g.padTail[1]), pad_right: Int32(g.padTail[2]),
                                 stride_h: Int32(g.stride[1]), stride_w: Int32(g.stride[2]),
                                 dilation_h: Int32(g.dilation[1]), dilation_w: Int32(g.dilation[2]), group: Int32(channels))
        guard Int(mpq_conv2d_out_h(&s)) == g.output[1], Int(mpq_conv2d_out_w(&s)) == g.output[2] else { return false }
        return mpq_depthwise_f32(MPQ_PATH_AUTO, src, &s, w, dst) == 0
    }

    /// Depthwise 3x3 (2-D, undilated) plane, the MobileNet case: `mpq_depthwise3x3_f32`
    /// sums each output's nine taps in registers, eight outputs per vector for strides 1
    /// and 2, the same bits as the tap-by-tap `depthwisePlane` (taps inside the input, in
    /// order, from +0, one fused multiply-add each, then + 0). Returns false (writing nothing) when the geometry is not
    /// this case.
    static func depthwise3x3Plane(src: UnsafePointer<Float>, weights w: UnsafePointer<Float>,
                                  dst: UnsafeMutablePointer<Float>, _ g: WindowGeometry) -> Bool {
        // No arrays here: this runs once per plane (960 planes per MobileNetV2 layer).
        let limit = Int(Int32.max)
        guard g.input[0] == 1, g.kernel[0] == 1, g.kernel[1] == 3, g.kernel[2] == 3,
              g.dilation[1] == 1, g.dilation[2] == 1, g.output[0] == 1,
              g.input[1] <= limit, g.input[2] <= limit, g.stride[1] <= limit, g.stride[2] <= limit,
              g.padHead[1] <= limit, g.padHead[2] <= limit, g.output[1] <= limit, g.output[2] <= limit else { return false }
        mpq_depthwise3x3_f32(MPQ_PATH_AUTO, src, Int32(g.input[1]), Int32(g.input[2]), w, Int32(g.stride[1]), Int32(g.stride[2]),
                             Int32(g.padHead[1]), Int32(g.padHead[2]), Int32(g.output[1]), Int32(g.output[2]), dst)
        return true
    }
}
