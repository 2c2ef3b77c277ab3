// `mpq-bench depthwise`: the depthwise kernels on MobileNetV2's layer shapes (3x3, pad 1,
// stride 1 and 2, 112x112 down to 7x7), one image, one thread. INT8 (codes in, codes out,
// the `ort` scheme's requantizing epilogue) on every path; FP32 the 3x3 plane kernel
// (the AVX2 path's choice) vs `mpq_depthwise_f32` on the VNNI path (AVX-512 row kernel on
// stride-1 rows of 9-64 outputs, window-gather kernel on narrower planes). docs/depthwise.md.
import CKernels
import Foundation

enum DepthwiseBench {
    static let warmup = 2
    static let iterations = 20

    /// MobileNetV2's depthwise layers (channels, input size, stride), each once.
    static let layers: [(c: Int, h: Int, stride: Int)] = [
        (32, 112, 1), (96, 112, 2), (144, 56, 1), (144, 56, 2), (192, 28, 1), (192, 28, 2),
        (384, 14, 1), (576, 14, 1), (576, 14, 2), (960, 7, 1),
    ]

    static func main(_ args: [String]) -> Int32 {
        let vbmi = mpq_depthwise_vnni_available() != 0
        print("# mpq-bench depthwise (3x3, pad 1; one image, one thread; warm-up \(warmup), iterations \(iterations); microseconds best / median)")
        print("# vnni path: \(vbmi ? "AVX-512 VNNI + VBMI kernel" : "no VBMI on this CPU: runs the AVX2 kernel")")
        print("| C x H x W, stride | INT8 reference | INT8 avx2 | INT8 vnni | vnni vs avx2 (best) | INT8 vnni GMAC/s | FP32 3x3 plane (avx2) | FP32 vnni path | FP32 vnni vs avx2 |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for l in layers {
            var s = mpq_conv2d_shape(channels: Int32(l.c), height: Int32(l.h), width: Int32(l.h), kernel_h: 3, kernel_w: 3,
                                     pad_top: 1, pad_left: 1, pad_bottom: 1, pad_right: 1, stride_h: Int32(l.stride),
                                     stride_w: Int32(l.stride), dilation_h: 1, dilation_w: 1, group: Int32(l.c))
            let outCount = l.c * Int(mpq_conv2d_out_h(&s) * mpq_conv2d_out_w(&s))
            var rng = BenchRNG(state: 11)
            let x = (0..<(l.c * l.h * l.h)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            let w = (0..<(l.c * 9)).map { _ in Int8(truncatingIfNeeded: rng.next()) }
            let xf = x.map { Float($0) * 0.01 - 1 }, wf = w.map { Float($0) * 0.01 }
            let multipliers = [Float](repeating: 0.01, count: l.c), biasI32 = [Int32](repeating: 100, count: l.c)
            var codes = [UInt8](repeating: 0, count: outCount)
            var floats = [Float](repeating: 0, count: outCount)
            func int8(_ path: mpq_kernel_path) -> BenchTiming {
                multipliers.withUnsafeBufferPointer { sp in
                    biasI32.withUnsafeBufferPointer { bp in
                        var ep = mpq_epilogue(a_zero_point: 128, a_scale: 1, b_scale: sp.baseAddress, bias: nil,
                                              clamp_lo: -3, clamp_hi: 252, bias_i32: bp.baseAddress, out_scale: 0.05)
                        return BenchTiming.measure(warmup: warmup, iterations: iterations) {
                            _ = mpq_depthwise_conv_u8s8_u8(path, x, &s, w, &ep, &codes, 3)
                        }
                    }
                }
            }
            func fp32(_ path: mpq_kernel_path) -> BenchTiming {
                BenchTiming.measure(warmup: warmup, iterations: iterations) { _ = mpq_depthwise_f32(path, xf, &s, wf, &floats) }
            }
            guard mpq_kernel_path_available(MPQ_PATH_AVX2) != 0 else { continue }
            let r = int8(MPQ_PATH_REFERENCE), a = int8(MPQ_PATH_AVX2)
            let v = mpq_kernel_path_available(MPQ_PATH_VNNI) != 0 ? int8(MPQ_PATH_VNNI) : a
            let fa = fp32(MPQ_PATH_AVX2)
            let fv = mpq_kernel_path_available(MPQ_PATH_VNNI) != 0 ? fp32(MPQ_PATH_VNNI) : fa
            print(String(format: "| %d x %d x %d, /%d | %.0f / %.0f | %.0f / %.0f | %.0f / %.0f | %.1fx | %.1f | %.0f / %.0f | %.0f / %.0f | %.1fx |",
                         l.c, l.h, l.h, l.stride, r.min * 1e6, r.median * 1e6, a.min * 1e6, a.median * 1e6,
                         v.min * 1e6, v.median * 1e6, a.min / v.min, Double(outCount * 9) / v.min * 1e-9,
                         fa.min * 1e6, fa.median * 1e6, fv.min * 1e6, fv.median * 1e6, fa.min / fv.min))
        }
        return 0
    }
}
