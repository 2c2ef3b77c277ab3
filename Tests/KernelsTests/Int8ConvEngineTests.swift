import CKernels
import XCTest

/// The INT8 Conv engine choice per layer (mpq_qconv2d_engine, docs/int8-amx.md "Engine per
/// Conv"): the policy picks what the doc's table says for a few shapes of the bench models,
/// `MPQ_QGEMM_AMX=0|1` (modes 0 and 1) override it, and every engine gives the same bytes as
/// the scalar reference on small convs. The AMX cases run where the CPU has AMX and the OS
/// grants the tiles; the test says which ran.
final class Int8ConvEngineTests: AmxModeTestCase {
    private func shape(c: Int, hw: Int, k: Int, stride: Int) -> mpq_conv2d_shape {
        let pad = Int32(k / 2)
        return mpq_conv2d_shape(channels: Int32(c), height: Int32(hw), width: Int32(hw), kernel_h: Int32(k), kernel_w: Int32(k),
                                pad_top: pad, pad_left: pad, pad_bottom: pad, pad_right: pad,
                                stride_h: Int32(stride), stride_w: Int32(stride), dilation_h: 1, dilation_w: 1, group: 1)
    }

    private func engine(path: mpq_kernel_path = MPQ_PATH_VNNI, c: Int, hw: Int, k: Int, stride: Int, n: Int,
                        khwc: Bool = true) -> String {
        var s = shape(c: c, hw: hw, k: k, stride: stride)
        return String(cString: mpq_qconv2d_engine_name(path, mpq_qconv2d_engine(path, &s, Int32(n), khwc ? 1 : 0)))
    }

    /// The AVX2 path's choices, on every AVX2 host (they sat in the VNNI test above, which AVX2
    /// hosts skip, and went stale for two sessions): the indirect conv (s31) for (kh, kw, c)
    /// weights, the im2col for (c, kh, kw) ones, the pointwise kernel for a 1x1 stride-1 conv.
    func testAVX2PolicyChoices() throws {
        guard mpq_kernel_path_available(MPQ_PATH_AVX2) != 0 else { throw XCTSkip("no AVX2 path on this CPU") }
        try XCTSkipIf(ProcessInfo.processInfo.environment["MPQ_INT8_AVX2_INDIRECT"] != nil, "indirect conv overridden")
        var s = shape(c: 64, hw: 56, k: 3, stride: 1)
        XCTAssertEqual(mpq_qconv2d_engine(MPQ_PATH_AVX2, &s, 64, 1), MPQ_QCONV_INDIRECT)
        XCTAssertEqual(mpq_qconv2d_engine(MPQ_PATH_AVX2, &s, 64, 0), MPQ_QCONV_IM2COL)
        XCTAssertEqual(engine(path: MPQ_PATH_AVX2, c: 32, hw: 112, k: 1, stride: 1, n: 16), "pointwise+avx2")
    }

    /// The choices of the table in docs/int8-amx.md.
    func testPolicyChoices() throws {
        guard mpq_kernel_path_available(MPQ_PATH_VNNI) != 0 else { throw XCTSkip("no VNNI path on this CPU") }
        // AMX off (MPQ_QGEMM_AMX=0, or no AMX): the VNNI kernels as before AMX.
        XCTAssertEqual(mpq_set_qgemm_amx(0), 0)
        // Outputs of up to 196 pixels: the channel-vector tiles (docs/int8-conv.md).
        XCTAssertEqual(engine(c: 256, hw: 14, k: 3, stride: 1, n: 256), "cv+vnni")
        XCTAssertEqual(engine(c: 512, hw: 7, k: 3, stride: 1, n: 512), "cv+vnni")
        // Up to 56x56 with 32 or more input channels and taps (s33, qgemm_conv.c cv_wide).
        XCTAssertEqual(engine(c: 64, hw: 56, k: 3, stride: 1, n: 64), "cv+vnni")
        XCTAssertEqual(engine(c: 128, hw: 28, k: 3, stride: 1, n: 128), "cv+vnni")
        XCTAssertEqual(engine(c: 32, hw: 16, k: 3, stride: 1, n: 32), "cv+vnni")
        // Not with 16-24 channels, not past 56x56, not for a 1x1 stride-2 Conv.
        XCTAssertEqual(engine(c: 16, hw: 56, k: 3, stride: 1, n: 16), "implicit")
        XCTAssertEqual(engine(c: 16, hw: 64, k: 3, stride: 2, n: 24), "implicit")
        XCTAssertEqual(engine(c: 64, hw: 64, k: 3, stride: 1, n: 64), "implicit")
        XCTAssertEqual(engine(c: 64, hw: 56, k: 1, stride: 2, n: 128, khwc: false), "im2col+vnni")
        XCTAssertEqual(engine(c: 32, hw: 112, k: 1, stride: 1, n: 16), "pointwise")
        guard mpq_qgemm_amx_available() != 0 else {
            print("INT8 Conv engine policy: AMX not available here, checked the AMX-off choices only")
            return
        }
        // The per-layer choice (the default where AMX is there).
        XCTAssertEqual(mpq_set_qgemm_amx(MPQ_AMX_PER_CONV), 0)
        XCTAssertEqual(mpq_qgemm_amx_mode(), MPQ_AMX_PER_CONV)
        let perConv: [(c: Int, hw: Int, k: Int, stride: Int, n: Int, want: String)] = [
            (64, 56, 3, 1, 64, "implicit"),       // ResNet-18 layer1
            (128, 28, 3, 1, 128, "implicit"),     // ResNet-18 layer2: N 128 against the implicit conv
            (128, 28, 3, 2, 256, "im2col+amx"),   // ResNet-18 layer3.0 conv1: 288 KB of weights, N 256
            (256, 14, 3, 1, 256, "im2col+amx"),   // ResNet-18 layer3
            (128, 28, 1, 2, 256, "cv+vnni"),      // ResNet-18 downsample to 14x14: 32 KB (small plane)
            (512, 7, 3, 1, 512, "im2col+amx"),    // ResNet-18 layer4 (7x7: no implicit)
            (128, 7, 3, 1, 128, "im2col+amx"),    // resnet_digits layer4: 144 KB of weights, N 128
            (64, 14, 3, 2, 128, "cv+vnni"),       // resnet_digits layer4.0 conv1 (7x7 out): 72 KB
            (256, 14, 1, 2, 512, "im2col+amx"),   // ResNet-18 downsample to 7x7: 128 KB, N 512
            (16, 56, 3, 1, 16, "implicit"),       // resnet_digits layer1
            (48, 8, 3, 1, 48, "cv+vnni"),         // shapes_det c3
            (112, 8, 3, 1, 64, "cv+vnni"),        // shapes_det fuse: N 64
            (3, 224, 7, 2, 64, "im2col+vnni"),    // a stem
            (960, 7, 1, 1, 320, "im2col+amx"),    // MobileNetV2 7x7 pointwise (under 128 pixels): 300 KB
            (576, 7, 1, 1, 160, "cv+vnni"),       // MobileNetV2 7x7 pointwise: 90 KB
            (32, 112, 1, 1, 16, "pointwise"),     // MobileNetV2 pointwise
        ]
        for t in perConv {
            XCTAssertEqual(engine(c: t.c, hw: t.hw, k: t.k, stride: t.stride, n: t.n), t.want, "\(t)")
        }
        // (c, kh, kw) weights never take the implicit conv.
        XCTAssertEqual(engine(c: 64, hw: 56, k: 3, stride: 1, n: 64, khwc: false), "im2col+vnni")
        // MPQ_QGEMM_AMX=1: AMX for every im2col conv (the pointwise conv stays).
        XCTAssertEqual(mpq_set_qgemm_amx(1), 0)
        XCTAssertEqual(engine(c: 64, hw: 56, k: 3, stride: 1, n: 64), "im2col+amx")
        XCTAssertEqual(engine(c: 48, hw: 8, k: 3, stride: 1, n: 48), "im2col+amx")
        XCTAssertEqual(engine(c: 32, hw: 112, k: 1, stride: 1, n: 16), "pointwise")
        print("INT8 Conv engine policy: checked with AMX off, per conv and on")
    }

    /// One conv through every engine the machine has: the bytes (floats and codes) equal the
    /// reference's whichever engine runs, on 1 and 2 threads.
    func testEnginesGiveTheSameBytes() throws {
        guard mpq_kernel_path_available(MPQ_PATH_VNNI) != 0 else { throw XCTSkip("no VNNI path on this CPU") }
        var rng = XorShiftRng(state: 7)
        let amx = mpq_qgemm_amx_available() != 0
        // 3x3 at 14x14 (implicit against im2col + AMX), 7x7 (im2col VNNI against AMX), a narrow one.
        for (c, hw, kk, stride, cout) in [(128, 14, 3, 1, 256), (128, 7, 3, 1, 128), (16, 16, 3, 2, 24)] {
            var s = shape(c: c, hw: hw, k: kk, stride: stride)
            let k = c * kk * kk
            let pixels = Int(mpq_conv2d_out_h(&s) * mpq_conv2d_out_w(&s))
            let operands = RandomInt8ConvOperands(c: c, hw: hw, k: k, cout: cout, rng: &rng)
            let (x, scales, biasI32) = (operands.x, operands.scales, operands.biasI32)
            let packed = int8Pack(operands.w, n: cout, k: k)
            let zx: UInt8 = 5
            func conv(_ path: mpq_kernel_path, codes: Bool, threads: Int) -> [UInt8] {
                scales.withUnsafeBufferPointer { sp in
                    biasI32.withUnsafeBufferPointer { ip in
                        packed.withUnsafeBytes { pp in
                            if codes {
                                var ep = mpq_epilogue(a_zero_point: Int32(zx), a_scale: 1, b_scale: sp.baseAddress, bias: nil,
                                                      clamp_lo: -7, clamp_hi: 248, bias_i32: ip.baseAddress, out_scale: 0.03)
                                var y = [UInt8](repeating: 0xCD, count: cout * pixels)
                                XCTAssertEqual(mpq_qconv2d_u8s8(path, x, &s, 0, 1, zx, pp.baseAddress, &ep, nil, &y, 7, Int32(threads)), 0)
                                return y
                            }
                            var ep = mpq_epilogue(a_zero_point: Int32(zx), a_scale: 0.01, b_scale: sp.baseAddress, bias: nil,
                                                  clamp_lo: -.infinity, clamp_hi: .infinity, bias_i32: ip.baseAddress, out_scale: 0)
                            var y = [Float](repeating: .nan, count: cout * pixels)
                            XCTAssertEqual(mpq_qconv2d_u8s8(path, x, &s, 0, 1, zx, pp.baseAddress, &ep, &y, nil, 0, Int32(threads)), 0)
                            return y.withUnsafeBytes { Array($0) }
                        }
                    }
                }
            }
            for codes in [false, true] {
                XCTAssertEqual(mpq_set_qgemm_amx(0), 0)
                let want = conv(MPQ_PATH_REFERENCE, codes: codes, threads: 1)
                var engines = Set<String>()
                for mode: Int32 in amx ? [0, 1, MPQ_AMX_PER_CONV] : [0] {
                    XCTAssertEqual(mpq_set_qgemm_amx(mode), 0)
                    engines.insert(String(cString: mpq_qconv2d_engine_name(MPQ_PATH_VNNI, mpq_qconv2d_engine(MPQ_PATH_VNNI, &s, Int32(cout), 1))))
                    for t in [1, 2] {
                        XCTAssertEqual(conv(MPQ_PATH_VNNI, codes: codes, threads: t), want,
                                       "c \(c) hw \(hw) k \(kk) codes \(codes) mode \(mode) threads \(t)")
                    }
                }
                if amx { XCTAssertTrue(engines.contains("im2col+amx"), "c \(c) hw \(hw): AMX never ran") }
                if codes { print("INT8 Conv c \(c) hw \(hw) k \(kk) n \(cout): engines \(engines.sorted()) matched the reference") }
            }
        }
    }
}
