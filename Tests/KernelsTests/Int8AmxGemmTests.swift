import CKernels
import XCTest

/// The AMX INT8 GEMM (qgemm_amx.c) against the scalar reference, bit for bit: int32 out, the
/// float epilogue (int32 and float bias, ReLU clamp) row- and channel-major, and requantized
/// codes row- and channel-major, over shapes with M, N and K off every tile size (16-row
/// tiles, 16-column panels, 64-byte K chunks, K % 4 != 0, the K ranges of a long K), lda > K,
/// and 1 to 3 threads. Runs where the CPU has AMX and the OS grants the tiles; says so, or
/// skips with the reason.
final class Int8AmxGemmTests: AmxModeTestCase {
    private func requireAmx() throws {
        guard mpq_qgemm_amx_available() != 0 else {
            print("AMX INT8 GEMM: not available on this CPU/OS (no AMX-INT8, or arch_prctl refused the tile data): skipped")
            throw XCTSkip("AMX-INT8 not available")
        }
        print("AMX INT8 GEMM: available, running the AMX tiles (engine \(String(cString: mpq_qgemm_engine_name(MPQ_PATH_VNNI))))")
    }

    /// Every output of one shape, computed by `path` (with AMX on or off as set by the caller).
    private enum Output: CaseIterable { case int32, f32, f32ChannelMajor, u8, u8ChannelMajor }

    private func run(_ out: Output, _ path: mpq_kernel_path, m: Int, n: Int, k: Int, lda: Int, a: [UInt8], packed: [UInt8],
                     za: Int32, scales: [Float], bias: [Float], biasI32: [Int32], threads: Int) -> [UInt8] {
        let t = Int32(threads)
        return a.withUnsafeBufferPointer { ap in
            packed.withUnsafeBytes { pp in
                scales.withUnsafeBufferPointer { sp in
                    bias.withUnsafeBufferPointer { bp in
                        biasI32.withUnsafeBufferPointer { ip in
                            switch out {
                            case .int32:
                                var c = [Int32](repeating: -7, count: m * n)
                                XCTAssertEqual(mpq_qgemm_u8s8(path, Int32(m), Int32(n), Int32(k), ap.baseAddress, Int32(lda), pp.baseAddress,
                                                              za, &c, Int32(n), t), 0)
                                return c.withUnsafeBytes { Array($0) }
                            case .f32, .f32ChannelMajor:
                                var ep = mpq_epilogue(a_zero_point: za, a_scale: 0.037, b_scale: sp.baseAddress, bias: bp.baseAddress,
                                                      clamp_lo: 0, clamp_hi: 40, bias_i32: ip.baseAddress, out_scale: 0)
                                var y = [Float](repeating: .nan, count: m * n)
                                let rc = out == .f32
                                    ? mpq_qgemm_u8s8_f32(path, Int32(m), Int32(n), Int32(k), ap.baseAddress, Int32(lda), pp.baseAddress,
                                                         &ep, &y, Int32(n), t)
                                    : mpq_qgemm_u8s8_f32_nchw(path, Int32(m), Int32(n), Int32(k), ap.baseAddress, Int32(lda),
                                                              pp.baseAddress, &ep, &y, Int32(m), t)
                                XCTAssertEqual(rc, 0)
                                return y.withUnsafeBytes { Array($0) }
                            case .u8, .u8ChannelMajor:
                                // Requantizing: clamp (-zp, 255 - zp) as the runtime sets it.
                                var ep = mpq_epilogue(a_zero_point: za, a_scale: 1, b_scale: sp.baseAddress, bias: nil,
                                                      clamp_lo: -9, clamp_hi: 246, bias_i32: ip.baseAddress, out_scale: 0.05)
                                var y = [UInt8](repeating: 0xCD, count: m * n)
                                let cm = out == .u8ChannelMajor
                                XCTAssertEqual(mpq_qgemm_u8s8_u8(path, Int32(m), Int32(n), Int32(k), ap.baseAddress, Int32(lda),
                                                                 pp.baseAddress, &ep, &y, Int32(cm ? m : n), 9, cm ? 1 : 0, t), 0)
                                return y
                            }
                        }
                    }
                }
            }
        }
    }

    private func check(m: Int, n: Int, k: Int, lda: Int, threads: [Int], rng: inout XorShiftRng) -> Int {
        let a = (0..<(m * lda)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        let b = (0..<(n * k)).map { _ in Int8(truncatingIfNeeded: rng.next()) }
        let packed = int8Pack(b, n: n, k: k)
        let za = Int32(rng.next() % 256)
        let scales = (0..<n).map { _ in Float(rng.next() % 1000 + 1) * 1e-5 }
        let bias = (0..<n).map { _ in Float(Int(rng.next() % 400) - 200) * 0.01 }
        let biasI32 = (0..<n).map { _ in Int32(Int(rng.next() % 4000) - 2000) }
        var failures = 0
        for out in Output.allCases {
            XCTAssertEqual(mpq_set_qgemm_amx(0), 0)
            let want = run(out, MPQ_PATH_REFERENCE, m: m, n: n, k: k, lda: lda, a: a, packed: packed, za: za, scales: scales,
                           bias: bias, biasI32: biasI32, threads: 1)
            // 2: AMX tiles on every region, the small ones the auto switch leaves to VNNI included.
            XCTAssertEqual(mpq_set_qgemm_amx(2), 0)
            XCTAssertEqual(mpq_qgemm_uses_amx(MPQ_PATH_VNNI), 1)
            for t in threads {
                let got = run(out, MPQ_PATH_VNNI, m: m, n: n, k: k, lda: lda, a: a, packed: packed, za: za, scales: scales,
                              bias: bias, biasI32: biasI32, threads: t)
                if got != want {
                    failures += 1
                    XCTFail("AMX \(out) differs from the reference: m \(m) n \(n) k \(k) lda \(lda) threads \(t)")
                }
            }
        }
        return failures
    }

    func testAmxMatchesReferenceBitForBit() throws {
        try requireAmx()
        var rng = XorShiftRng(state: 0x9E37_79B9_7F4A_7C15)
        let ms = [1, 15, 16, 17, 31, 32, 33, 47, 64, 97]
        let ns = [1, 15, 16, 17, 31, 32, 33, 48, 65, 100]
        let ks = [1, 3, 4, 5, 63, 64, 65, 127, 129, 147, 300]
        var shapes = 0
        for m in ms {
            for n in ns {
                for k in ks {
                    // A deterministic third of the grid (every M, N and K value still appears many times).
                    guard (m &* 31 &+ n &* 7 &+ k) % 3 == 0 else { continue }
                    let lda = k + Int(rng.next() % 3)
                    _ = check(m: m, n: n, k: k, lda: lda, threads: [1, 2, 3], rng: &rng)
                    shapes += 1
                }
            }
        }
        // Long K: several K ranges of the L1 blocking, with and without a K tail; a few groups of panels.
        for (m, n, k) in [(70, 40, 1100), (96, 33, 1027), (48, 700, 2304), (200, 96, 1088)] {
            _ = check(m: m, n: n, k: k, lda: k + 5, threads: [1, 2, 3], rng: &rng)
            shapes += 1
        }
        print("AMX INT8 GEMM matched the reference bit for bit on \(shapes) shapes x \(Output.allCases.count) outputs x 1-3 threads")
    }

    /// The im2col Conv path on AMX: the same bytes as the VNNI kernel and the reference
    /// (stem-like 3-channel 7x7 stride 2, and narrow-plane 3x3 convs the implicit path leaves).
    func testConvOnAmxMatchesReference() throws {
        try requireAmx()
        var rng = XorShiftRng(state: 42)
        for (c, hw, kk, stride, cout, khwc) in [(3, 30, 7, 2, 20, 0), (16, 9, 3, 1, 40, 1), (12, 7, 3, 1, 33, 0), (64, 7, 3, 1, 64, 1)] {
            let pad = kk / 2
            var s = mpq_conv2d_shape(channels: Int32(c), height: Int32(hw), width: Int32(hw), kernel_h: Int32(kk), kernel_w: Int32(kk),
                                     pad_top: Int32(pad), pad_left: Int32(pad), pad_bottom: Int32(pad), pad_right: Int32(pad),
                                     stride_h: Int32(stride), stride_w: Int32(stride), dilation_h: 1, dilation_w: 1, group: 1)
            let k = c * kk * kk
            let pixels = Int(mpq_conv2d_out_h(&s) * mpq_conv2d_out_w(&s))
            let operands = RandomInt8ConvOperands(c: c, hw: hw, k: k, cout: cout, rng: &rng)
            let (x, scales, biasI32) = (operands.x, operands.scales, operands.biasI32)
            let packed = int8Pack(operands.w, n: cout, k: k)
            let zx: UInt8 = 11
            func conv(_ path: mpq_kernel_path, amx: Int32, codes: Bool, threads: Int) -> [UInt8] {
                XCTAssertEqual(mpq_set_qgemm_amx(amx), 0)
                return scales.withUnsafeBufferPointer { sp in
                    biasI32.withUnsafeBufferPointer { ip in
                        packed.withUnsafeBytes { pp in
                            if codes {
                                var ep = mpq_epilogue(a_zero_point: Int32(zx), a_scale: 1, b_scale: sp.baseAddress, bias: nil,
                                                      clamp_lo: -3, clamp_hi: 252, bias_i32: ip.baseAddress, out_scale: 0.1)
                                var y = [UInt8](repeating: 0xCD, count: cout * pixels)
                                XCTAssertEqual(mpq_qconv2d_u8s8(path, x, &s, 0, Int32(khwc), zx, pp.baseAddress, &ep, nil, &y, 3,
                                                                Int32(threads)), 0)
                                return y
                            }
                            var ep = mpq_epilogue(a_zero_point: Int32(zx), a_scale: 0.02, b_scale: sp.baseAddress, bias: nil,
                                                  clamp_lo: 0, clamp_hi: .infinity, bias_i32: ip.baseAddress, out_scale: 0)
                            var y = [Float](repeating: .nan, count: cout * pixels)
                            XCTAssertEqual(mpq_qconv2d_u8s8(path, x, &s, 0, Int32(khwc), zx, pp.baseAddress, &ep, &y, nil, 0,
                                                            Int32(threads)), 0)
                            return y.withUnsafeBytes { Array($0) }
                        }
                    }
                }
            }
            for codes in [false, true] {
                let want = conv(MPQ_PATH_REFERENCE, amx: 0, codes: codes, threads: 1)
                let vnni = conv(MPQ_PATH_VNNI, amx: 0, codes: codes, threads: 1)
                XCTAssertEqual(vnni, want, "VNNI conv c \(c) hw \(hw) k \(kk)")
                for t in [1, 2, 3] {
                    XCTAssertEqual(conv(MPQ_PATH_VNNI, amx: 2, codes: codes, threads: t), want,
                                   "AMX conv c \(c) hw \(hw) k \(kk) codes \(codes) threads \(t)")
                }
            }
        }
        print("AMX INT8 Conv (im2col GEMM) matched the reference and the VNNI kernel")
    }

    /// The switch: off gives the VNNI kernel, on AMX (where available), auto AMX where available
    /// unless MPQ_QGEMM_AMX=0; non-VNNI paths never use AMX.
    func testEngineSwitch() {
        XCTAssertEqual(mpq_set_qgemm_amx(0), 0)
        XCTAssertEqual(mpq_qgemm_uses_amx(MPQ_PATH_VNNI), 0)
        if mpq_kernel_path_available(MPQ_PATH_VNNI) != 0 {
            XCTAssertEqual(String(cString: mpq_qgemm_engine_name(MPQ_PATH_VNNI)), "vnni")
        }
        XCTAssertEqual(String(cString: mpq_qgemm_engine_name(MPQ_PATH_REFERENCE)), "reference")
        if mpq_qgemm_amx_available() != 0 {
            XCTAssertEqual(mpq_set_qgemm_amx(1), 0)
            XCTAssertEqual(String(cString: mpq_qgemm_engine_name(MPQ_PATH_VNNI)), "amx")
            XCTAssertEqual(mpq_qgemm_uses_amx(MPQ_PATH_AVX2), 0)
            XCTAssertEqual(mpq_qgemm_uses_amx(MPQ_PATH_REFERENCE), 0)
        } else {
            XCTAssertEqual(mpq_set_qgemm_amx(1), -1)
            XCTAssertEqual(mpq_qgemm_uses_amx(MPQ_PATH_VNNI), 0)
        }
        XCTAssertEqual(mpq_set_qgemm_amx(-1), 0)
        let env = ProcessInfo.processInfo.environment["MPQ_QGEMM_AMX"]
        if env == nil || env == "" {
            XCTAssertEqual(mpq_qgemm_uses_amx(MPQ_PATH_VNNI),
                           mpq_qgemm_amx_available() != 0 && mpq_resolve_kernel_path(MPQ_PATH_VNNI) == MPQ_PATH_VNNI ? 1 : 0)
        }
        print("INT8 GEMM engine on the auto path here: \(String(cString: mpq_qgemm_engine_name(MPQ_PATH_AUTO)))")
    }
}
