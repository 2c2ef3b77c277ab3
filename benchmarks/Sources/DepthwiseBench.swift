// `mpq-bench depthwise`: the direct depthwise INT8 conv, reference vs SIMD path,
// on MobileNet-style layers (3x3, pad 1, stride 1 and 2), fused epilogue included.
import CKernels
import Foundation

enum DepthwiseBench {
    static let warmup = 2
    static let iterations = 20

    static let layers: [(c: Int, h: Int, stride: Int)] = [(32, 112, 1), (64, 112, 2), (128, 56, 1), (256, 28, 2), (512, 14, 1)]

    static func main(_ args: [String]) -> Int32 {
        print("# mpq-bench depthwise (3x3, pad 1; warm-up \(warmup), iterations \(iterations); microseconds best / median)")
        print("| C x H x W, stride | reference | avx2 (also run by the vnni path) | speed-up (best) | GMAC/s (best) |")
        print("|---|---:|---:|---:|---:|")
        for l in layers {
            var s = mpq_conv2d_shape(channels: Int32(l.c), height: Int32(l.h), width: Int32(l.h), kernel_h: 3, kernel_w: 3,
                                     pad_top: 1, pad_left: 1, pad_bottom: 1, pad_right: 1, stride_h: Int32(l.stride),
                                     stride_w: Int32(l.stride), dilation_h: 1, dilation_w: 1, group: Int32(l.c))
            let outCount = l.c * Int(mpq_conv2d_out_h(&s) * mpq_conv2d_out_w(&s))
            var rng = BenchRNG(state: 11)
            let x = (0..<(l.c * l.h * l.h)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            let w = (0..<(l.c * 9)).map { _ in Int8(truncatingIfNeeded: rng.next()) }
            let scales = [Float](repeating: 0.01, count: l.c), bias = [Float](repeating: 0.1, count: l.c)
            var out = [Float](repeating: 0, count: outCount)
            func time(_ path: mpq_kernel_path) -> BenchTiming {
                scales.withUnsafeBufferPointer { sp in
                    bias.withUnsafeBufferPointer { bp in
                        var ep = mpq_epilogue(a_zero_point: 128, a_scale: 0.02, b_scale: sp.baseAddress, bias: bp.baseAddress,
                                              clamp_lo: 0, clamp_hi: 6, bias_i32: nil, out_scale: 0)
                        return BenchTiming.measure(warmup: warmup, iterations: iterations) {
                            _ = mpq_depthwise_conv_u8s8(path, x, &s, w, &ep, &out)
                        }
                    }
                }
            }
            let r = time(MPQ_PATH_REFERENCE)
            guard mpq_kernel_path_available(MPQ_PATH_AVX2) != 0 else { continue }
            let a = time(MPQ_PATH_AVX2)
            print(String(format: "| %d x %d x %d, /%d | %.0f / %.0f | %.0f / %.0f | %.1fx | %.1f |", l.c, l.h, l.h, l.stride,
                         r.min * 1e6, r.median * 1e6, a.min * 1e6, a.median * 1e6, r.min / a.min, Double(outCount * 9) / a.min * 1e-9))
        }
        return 0
    }
}
