import CKernels
import XCTest

/// One group of a random INT8 Conv test case and what the conv kernels must equal, byte for
/// byte: weights drawn from `rng` ([Cout/g][C/g][KH][KW]) packed as drawn (`packedRef`, for
/// the reference GEMM on the im2col) and, with `khwc`, reordered to (kh, kw, c) first
/// (`packed`, what the kernels read); the group's scalar im2col; per-channel scales, int32
/// biases and float biases drawn after the weights. Shared by the whole-driver, implicit and
/// channel-vector conv tests (same draws in the same order as each had inline).
struct Int8ConvGroupReference {
    let coutG: Int, pixels: Int, k: Int
    let zx: UInt8, zy: UInt8
    let packed: [UInt8], packedRef: [UInt8], col: [UInt8]
    let scales: [Float], biasI32: [Int32], bias: [Float]

    init(rng: inout Int8TestRNG, x: [UInt8], shape: mpq_conv2d_shape, group grp: Int, channelsPerGroup cg: Int,
         kh: Int, kw: Int, coutG: Int, zx: UInt8, zy: UInt8, khwc: Bool = true, sevenBit: Bool = false,
         extremeSevenBit: Bool = false, extremeEightBit: Bool = false) {
        var s = shape
        let pixels = Int(mpq_conv2d_out_h(&s)) * Int(mpq_conv2d_out_w(&s)), k = cg * kh * kw
        // sevenBit: the same draws halved into [-64, 63]; extremeSevenBit: -64 or 64 by the
        // draw's sign (every k pair still fits int16, at its largest: the AVX2 kernels'
        // vpmaddubsw forms must not saturate there); extremeEightBit: -128 or 127.
        let w = rng.s8s(coutG * k).map {
            extremeEightBit ? ($0 < 0 ? -128 : 127) : extremeSevenBit ? ($0 < 0 ? -64 : 64) : sevenBit ? Int8(Int($0) >> 1) : $0
        }
        var wk = w
        if khwc {
            w.withUnsafeBufferPointer { wp in
                wk.withUnsafeMutableBufferPointer {
                    mpq_conv_weights_khwc_s8(wp.baseAddress, Int32(coutG), Int32(cg), Int32(kh), Int32(kw), $0.baseAddress)
                }
            }
        }
        var col = [UInt8](repeating: 0, count: pixels * k)
        x.withUnsafeBufferPointer { xp in
            col.withUnsafeMutableBufferPointer { mpq_im2col_u8_reference(xp.baseAddress, &s, Int32(grp), zx, $0.baseAddress) }
        }
        self.coutG = coutG; self.pixels = pixels; self.k = k; self.zx = zx; self.zy = zy
        packedRef = int8Pack(w, n: coutG, k: k)
        packed = int8Pack(wk, n: coutG, k: k)
        self.col = col
        scales = (0..<coutG).map { _ in Float(rng.int(1...1000)) * 1e-5 }
        biasI32 = (0..<coutG).map { _ in Int32(rng.int(-5000...5000)) }
        bias = (0..<coutG).map { _ in Float(rng.int(-100...100)) * 0.01 }
    }

    /// Output mode 0 (float: bias, Relu as a clamp), 1 (requantized float) or 2 (codes):
    /// `body` gets that mode's epilogue and the scalar im2col + reference GEMM output (floats
    /// for modes 0-1, codes for mode 2).
    func withMode(_ mode: Int, _ body: (inout mpq_epilogue, _ refF: [Float], _ refC: [UInt8]) -> Void) {
        scales.withUnsafeBufferPointer { sp in biasI32.withUnsafeBufferPointer { bip in bias.withUnsafeBufferPointer { bp in
            var ep = mpq_epilogue(a_zero_point: Int32(zx), a_scale: mode == 0 ? 0.02 : 1, b_scale: sp.baseAddress,
                                  bias: mode == 0 ? bp.baseAddress : nil,
                                  clamp_lo: mode == 0 ? 0 : -Float(zy), clamp_hi: mode == 0 ? .infinity : 255 - Float(zy),
                                  bias_i32: mode == 0 ? nil : bip.baseAddress, out_scale: mode == 0 ? 0 : 0.05)
            var refF = [Float](repeating: .nan, count: coutG * pixels)
            var refC = [UInt8](repeating: 0, count: coutG * pixels)
            XCTAssertEqual(mode == 2
                ? mpq_qgemm_u8s8_u8(MPQ_PATH_REFERENCE, Int32(pixels), Int32(coutG), Int32(k), col, Int32(k), packedRef, &ep,
                                    &refC, Int32(pixels), zy, 1, 1)
                : mpq_qgemm_u8s8_f32_nchw(MPQ_PATH_REFERENCE, Int32(pixels), Int32(coutG), Int32(k), col, Int32(k), packedRef,
                                          &ep, &refF, Int32(pixels), 1), 0)
            body(&ep, refF, refC)
        } } }
    }
}

/// The packed B's pairs_fit_i16 (1: every k pair of every column has |b0| + |b1| <= 128).
func int8PairsFit(_ packed: [UInt8]) -> Int32 {
    packed.withUnsafeBytes { $0.load(as: mpq_packed_b_header.self).pairs_fit_i16 }
}
