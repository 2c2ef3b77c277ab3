// `mpq-bench im2col`: the three uint8 im2col variants on typical CNN layers,
// side by side with the GEMM that consumes them (VNNI path, one thread), so the
// cost of building A is visible next to the cost of using it.
import CKernels
import Foundation

enum Im2colBench {
    static let warmup = 2
    static let iterations = 20

    struct Layer {
        let name: String
        let c, h, k, stride, pad, cout: Int
    }

    static let layers = [
        Layer(name: "stem 7x7/2 C3", c: 3, h: 224, k: 7, stride: 2, pad: 3, cout: 64),
        Layer(name: "stem 3x3/2 C3 224", c: 3, h: 224, k: 3, stride: 2, pad: 1, cout: 32),
        Layer(name: "stem 3x3/1 C3 64x64", c: 3, h: 64, k: 3, stride: 1, pad: 1, cout: 16),
        Layer(name: "3x3/1 C64 56x56", c: 64, h: 56, k: 3, stride: 1, pad: 1, cout: 64),
        Layer(name: "3x3/2 C32 112x112", c: 32, h: 112, k: 3, stride: 2, pad: 1, cout: 64),
        Layer(name: "3x3/1 C256 14x14", c: 256, h: 14, k: 3, stride: 1, pad: 1, cout: 256),
        Layer(name: "1x1/1 C128 28x28", c: 128, h: 28, k: 1, stride: 1, pad: 0, cout: 256),
    ]

    static func main(_ args: [String]) -> Int32 {
        print("# mpq-bench im2col (warm-up \(warmup), iterations \(iterations); best = min, med = median, microseconds)")
        print("| layer | M x K | reference (c,kh,kw) | fast (c,kh,kw) | padded (c,kh,kw) | khwc | GEMM vnni 1 thr (N = Cout) |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for l in layers {
            var s = mpq_conv2d_shape(channels: Int32(l.c), height: Int32(l.h), width: Int32(l.h), kernel_h: Int32(l.k), kernel_w: Int32(l.k),
                                     pad_top: Int32(l.pad), pad_left: Int32(l.pad), pad_bottom: Int32(l.pad), pad_right: Int32(l.pad),
                                     stride_h: Int32(l.stride), stride_w: Int32(l.stride), dilation_h: 1, dilation_w: 1, group: 1)
            let m = Int(mpq_conv2d_out_h(&s) * mpq_conv2d_out_w(&s)), k = l.c * l.k * l.k
            var rng = BenchRNG(state: 7)
            let x = (0..<(l.c * l.h * l.h)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            var col = [UInt8](repeating: 0, count: m * k)
            func time(_ f: (UnsafePointer<UInt8>?, UnsafePointer<mpq_conv2d_shape>?, Int32, UInt8, UnsafeMutablePointer<UInt8>?) -> Void) -> String {
                let t = BenchTiming.measure(warmup: warmup, iterations: iterations) {
                    x.withUnsafeBufferPointer { xp in col.withUnsafeMutableBufferPointer { f(xp.baseAddress, &s, 0, 3, $0.baseAddress) } }
                }
                return String(format: "%.0f / %.0f", t.min * 1e6, t.median * 1e6)
            }
            let ref = time(mpq_im2col_u8_reference), fast = time(mpq_im2col_u8), khwc = time(mpq_im2col_u8_khwc)
            // The few-channel path (pad copy included), where it applies.
            var scratch = [UInt8](repeating: 0, count: mpq_im2col_padded_bytes(&s))
            let padded = scratch.withUnsafeMutableBufferPointer { sp in
                mpq_im2col_u8_padded(x, &s, 0, 3, &col, sp.baseAddress) == 0 ? time { _ = mpq_im2col_u8_padded($0, $1, $2, $3, $4, sp.baseAddress) } : "-"
            }
            let w = (0..<(l.cout * k)).map { _ in Int8(truncatingIfNeeded: rng.next()) }
            var packed = [UInt8](repeating: 0, count: mpq_pack_b_s8_size(Int32(l.cout), Int32(k)))
            _ = w.withUnsafeBufferPointer { wp in packed.withUnsafeMutableBytes { mpq_pack_b_s8(wp.baseAddress, Int32(l.cout), Int32(k), Int32(k), $0.baseAddress) } }
            var c = [Int32](repeating: 0, count: m * l.cout)
            let g = BenchTiming.measure(warmup: warmup, iterations: iterations) {
                _ = mpq_qgemm_u8s8(MPQ_PATH_AUTO, Int32(m), Int32(l.cout), Int32(k), col, Int32(k), packed, 3, &c, Int32(l.cout), 1)
            }
            print("| \(l.name) | \(m) x \(k) | \(ref) | \(fast) | \(padded) | \(khwc) | " + String(format: "%.0f / %.0f", g.min * 1e6, g.median * 1e6) + " |")
        }
        return 0
    }
}
