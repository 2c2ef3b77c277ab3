import CKernels
import Foundation
import ONNX
import XCTest
@testable import Kernels

/// The INT8 depthwise kernels on the geometries their plans distinguish (docs/depthwise.md):
/// every path against the scalar reference bit for bit, float and codes outputs, and the
/// codes against ONNX Runtime's QLinearConv bytes (tools/goldens/qlinear_conv_goldens.py).
final class DepthwiseInt8KernelTests: XCTestCase {
    static let goldens = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures/qlinear_conv").path

    private static func shape(c: Int, h: Int, w: Int, k: (Int, Int), stride: (Int, Int), pad: Int,
                              dilation: (Int, Int) = (1, 1)) -> mpq_conv2d_shape {
        mpq_conv2d_shape(channels: Int32(c), height: Int32(h), width: Int32(w), kernel_h: Int32(k.0), kernel_w: Int32(k.1),
                         pad_top: Int32(pad), pad_left: Int32(pad), pad_bottom: Int32(pad), pad_right: Int32(pad),
                         stride_h: Int32(stride.0), stride_w: Int32(stride.1), dilation_h: Int32(dilation.0),
                         dilation_w: Int32(dilation.1), group: Int32(c))
    }

    /// Small planes (several rows per vector: 7x7, 5x5, 3x9, 1xN), wide planes (one row per
    /// vector, 16-pixel blocks with tails: 14, 17, 28, 33, 57), strides 1-3, 5x5 and 1x7 kernels
    /// (two tap quads per row), dilations 2 and 8, pads 0-8, and a geometry without a plan
    /// (stride 5 over 20 output columns: a 16-pixel window spans 78 bytes) that the VNNI path
    /// hands to the AVX2 kernel.
    static let geometries: [mpq_conv2d_shape] = [
        shape(c: 17, h: 7, w: 7, k: (3, 3), stride: (1, 1), pad: 1),
        shape(c: 5, h: 14, w: 14, k: (3, 3), stride: (2, 2), pad: 1),
        shape(c: 3, h: 14, w: 14, k: (3, 3), stride: (1, 1), pad: 1),
        shape(c: 2, h: 28, w: 28, k: (3, 3), stride: (1, 1), pad: 1),
        shape(c: 2, h: 57, w: 57, k: (3, 3), stride: (2, 2), pad: 1),
        shape(c: 3, h: 9, w: 33, k: (3, 3), stride: (1, 2), pad: 0),
        shape(c: 4, h: 3, w: 9, k: (3, 3), stride: (1, 1), pad: 2),
        shape(c: 3, h: 13, w: 13, k: (5, 5), stride: (2, 2), pad: 2),
        shape(c: 2, h: 8, w: 17, k: (1, 7), stride: (1, 1), pad: 3),
        shape(c: 2, h: 5, w: 5, k: (3, 3), stride: (3, 3), pad: 1),
        shape(c: 2, h: 1, w: 40, k: (1, 3), stride: (1, 1), pad: 1),
        shape(c: 2, h: 12, w: 20, k: (3, 3), stride: (1, 1), pad: 2, dilation: (2, 2)),
        shape(c: 2, h: 12, w: 100, k: (3, 3), stride: (5, 5), pad: 1),
        shape(c: 2, h: 20, w: 40, k: (3, 3), stride: (1, 1), pad: 8, dilation: (8, 8)),
    ]

    /// The AVX2 path's two depthwise kernels (depthwise_avx2.c: 16 pixels of a channel in the
    /// lanes; depthwise_lanes_avx2.c: 16 channels of a pixel, small planes): each test runs with
    /// each kernel taking every geometry (mpq_set_depthwise_lanes_pixels), then restores the
    /// default.
    private func eachDepthwiseKernel(_ body: (String) throws -> Void) rethrows {
        for (label, pixels) in [("pixel kernel", 0), ("lanes kernel", 1 << 30)] {
            let before = mpq_set_depthwise_lanes_pixels(pixels)
            defer { _ = mpq_set_depthwise_lanes_pixels(before) }
            try body(label)
        }
    }

    func testEveryPathEqualsReferenceBitForBit() { eachDepthwiseKernel { everyPathEqualsReference(kernel: $0) } }
    func testCodesClampsAndThreadsEqualReference() { eachDepthwiseKernel { codesClampsAndThreadsEqualReference(kernel: $0) } }
    func testCodesEqualOnnxRuntimeQLinearConv() throws { try eachDepthwiseKernel { try codesEqualOnnxRuntimeQLinearConv(kernel: $0) } }

    private func everyPathEqualsReference(kernel: String) {
        var rng = Int8TestRNG(seed: 4242)
        for (trial, var s) in Self.geometries.enumerated() {
            let c = Int(s.channels), oh = Int(mpq_conv2d_out_h(&s)), ow = Int(mpq_conv2d_out_w(&s))
            let x = rng.u8s(c * Int(s.height * s.width)), w = rng.s8s(c * Int(s.kernel_h * s.kernel_w))
            let scales = (0..<c).map { _ in rng.float(0.002...0.03) }
            let bias = (0..<c).map { _ in rng.float(-2...2) }
            let biasI32 = (0..<c).map { _ in Int32(rng.int(0...4000)) - 2000 }
            let za = Int32(rng.int(0...255)), zy = UInt8(rng.int(0...255))
            let (lo, hi): (Float, Float) = [(-.infinity, .infinity), (0, 6)][trial % 2]
            func run(_ path: mpq_kernel_path) -> (floats: [Float], requantized: [Float], codes: [UInt8]) {
                var floats = [Float](repeating: .nan, count: c * oh * ow)
                var requantized = floats
                var codes = [UInt8](repeating: 7, count: c * oh * ow)
                scales.withUnsafeBufferPointer { sb in bias.withUnsafeBufferPointer { bb in biasI32.withUnsafeBufferPointer { bi in
                    var ep = mpq_epilogue(a_zero_point: za, a_scale: 0.02, b_scale: sb.baseAddress, bias: bb.baseAddress,
                                          clamp_lo: lo, clamp_hi: hi, bias_i32: nil, out_scale: 0)
                    XCTAssertEqual(mpq_depthwise_conv_u8s8(path, x, &s, w, &ep, &floats), 0)
                    ep = mpq_epilogue(a_zero_point: za, a_scale: 1, b_scale: sb.baseAddress, bias: nil,
                                      clamp_lo: Float(0) - Float(zy), clamp_hi: Float(255) - Float(zy),
                                      bias_i32: bi.baseAddress, out_scale: 0.05)
                    XCTAssertEqual(mpq_depthwise_conv_u8s8(path, x, &s, w, &ep, &requantized), 0)
                    XCTAssertEqual(mpq_depthwise_conv_u8s8_u8(path, x, &s, w, &ep, &codes, zy), 0)
                }}}
                return (floats, requantized, codes)
            }
            let ref = run(MPQ_PATH_REFERENCE)
            for path in int8AvailablePaths where path != MPQ_PATH_REFERENCE {
                let got = run(path)
                let what = "\(kernel) \(int8PathName(path)) geometry \(trial): \(s)"
                XCTAssertEqual(got.floats.map(\.bitPattern), ref.floats.map(\.bitPattern), what)
                XCTAssertEqual(got.requantized.map(\.bitPattern), ref.requantized.map(\.bitPattern), what)
                XCTAssertEqual(got.codes, ref.codes, what)
            }
        }
        print("int8 depthwise paths covered: \(int8AvailablePaths.map(int8PathName).joined(separator: ", "));",
              mpq_depthwise_vnni_available() != 0 ? "vnni ran its VBMI kernel" : "no VBMI: vnni ran the AVX2 kernel")
    }

    /// The codes output with clamps at the code range (the VBMI kernel then saturates instead
    /// of clamping: mpq_codes_clamp_plan), inside it at either end or both (non-integer bounds),
    /// and scales up to 0.9 (the high clamp must stay), with the channels split over 1-3 pool
    /// threads (mpq_depthwise_conv_u8s8_u8_threads): every path against the scalar reference.
    private func codesClampsAndThreadsEqualReference(kernel: String) {
        var rng = Int8TestRNG(seed: 5151)
        for (trial, var g) in Self.geometries.enumerated() {
            for mode in 0..<4 {
                g.channels = Int32(rng.int(1...40)); g.group = g.channels
                var s = g
                let c = Int(s.channels), oh = Int(mpq_conv2d_out_h(&s)), ow = Int(mpq_conv2d_out_w(&s))
                let x = rng.u8s(c * Int(s.height * s.width)), w = rng.s8s(c * Int(s.kernel_h * s.kernel_w))
                let scales = (0..<c).map { i in mode == 3 && i % 2 == 0 ? 0.9 : rng.float(0.002...0.03) }
                let biasI32 = (0..<c).map { _ in Int32(rng.int(0...4000)) - 2000 }
                let za = Int32(rng.int(0...255)), zy = UInt8(rng.int(0...255))
                var lo = Float(0) - Float(zy), hi = Float(255) - Float(zy)
                if mode == 1 { lo += Float(rng.int(1...50)) + 0.5 }
                if mode == 2 { hi -= Float(rng.int(1...50)) + 0.4; lo += Float(rng.int(1...20)) }
                scales.withUnsafeBufferPointer { sb in biasI32.withUnsafeBufferPointer { bi in
                    var ep = mpq_epilogue(a_zero_point: za, a_scale: 1, b_scale: sb.baseAddress, bias: nil, clamp_lo: lo,
                                          clamp_hi: hi, bias_i32: bi.baseAddress, out_scale: 0.05)
                    var ref = [UInt8](repeating: 7, count: c * oh * ow)
                    XCTAssertEqual(mpq_depthwise_conv_u8s8_u8(MPQ_PATH_REFERENCE, x, &s, w, &ep, &ref, zy), 0)
                    for path in int8AvailablePaths where path != MPQ_PATH_REFERENCE {
                        for threads in 1...3 {
                            var got = [UInt8](repeating: 9, count: c * oh * ow)
                            XCTAssertEqual(mpq_depthwise_conv_u8s8_u8_threads(path, x, &s, w, &ep, &got, zy, Int32(threads)), 0)
                            XCTAssertEqual(got, ref, "\(kernel) \(int8PathName(path)) geometry \(trial) mode \(mode) threads \(threads): \(s)")
                        }
                    }
                }}
            }
        }
    }

    /// ONNX Runtime's QLinearConv output for the same codes, weights, int32 bias and scales:
    /// the epilogue is the one `QuantizedConv` builds (`Requantization`, `layerEpilogue`).
    private func codesEqualOnnxRuntimeQLinearConv(kernel: String) throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: Self.goldens)
            .filter { $0.hasSuffix(".npz") }.sorted()
        XCTAssertGreaterThanOrEqual(names.count, 6, "fixtures missing: run tools/goldens/qlinear_conv_goldens.py")
        for name in names {
            let a = try Numpy.readNPZ(path: "\(Self.goldens)/\(name)")
            func get(_ key: String) throws -> Tensor { try XCTUnwrap(a[key], "\(name): \(key)") }
            let x = try get("x"), want = try get("y")
            let (n, c, h, wd) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
            let attrs = try get("attrs").ints.map(Int.init)
            var s = Self.shape(c: c, h: h, w: wd, k: (attrs[0], attrs[0]), stride: (attrs[1], attrs[1]), pad: attrs[2])
            let xs = try get("x_scale").floats[0], ws = try get("w_scale").floats
            let biasI32 = try get("b").ints.map { Int32($0) }
            // The runtime takes a float bias and quantizes it: give it the int32 bias's value.
            let floatBias = biasI32.enumerated().map { ch, b in Float(b) * (xs * ws[ch]) }
            let output = ActivationQuant(scale: try get("y_scale").floats[0], zeroPoint: UInt8(try get("y_zero_point").ints[0]))
            let requant = Requantization(inputScale: xs, weightScales: ws, bias: floatBias, output: output)
            XCTAssertEqual(requant.biasInt, biasI32, name)
            let input = ActivationQuant(scale: xs, zeroPoint: UInt8(try get("x_zero_point").ints[0]))
            let codes = x.ints.map { UInt8($0) }, w = try get("w").ints.map { Int8($0) }
            let perImage = want.count / n
            for path in int8AvailablePaths {
                var got = [UInt8](repeating: 0, count: want.count)
                ws.withUnsafeBufferPointer { ps in requant.multipliers.withUnsafeBufferPointer { pm in
                    (requant.biasInt ?? []).withUnsafeBufferPointer { pbi in
                        var ep = layerEpilogue(input: input, scales: ps, bias: nil, clamp: (-.infinity, .infinity),
                                               requant: requant, multipliers: pm, biasInt: pbi)
                        for img in 0..<n {
                            got.withUnsafeMutableBufferPointer { po in
                                XCTAssertEqual(mpq_depthwise_conv_u8s8_u8(path, Array(codes[img * c * h * wd..<(img + 1) * c * h * wd]),
                                                                          &s, w, &ep, po.baseAddress! + img * perImage, output.zeroPoint), 0)
                            }
                        }
                    }
                }}
                let differing = zip(got, want.ints).filter { Int64($0) != $1 }.count
                XCTAssertEqual(differing, 0, "\(kernel) \(name): \(differing) of \(want.count) bytes differ from ORT on \(int8PathName(path))")
            }
        }
    }

    /// One image of a big depthwise layer splits by channel over the cores; the split changes
    /// no bit: each image of a batch of two (split by image) equals the image run alone,
    /// float output and codes, on every path.
    func testOneImageChannelSplitIsBitIdenticalToTheBatch() throws {
        var rng = Int8TestRNG(seed: 96)
        let (c, h) = (96, 50)
        XCTAssertGreaterThanOrEqual(depthwiseChannelTasks(macs: c * h * h * 9), min(2, ProcessInfo.processInfo.activeProcessorCount))
        let w = Tensor(shape: [c, 1, 3, 3], floats: (0..<c * 9).map { _ in rng.float(-1...1) })
        let node = Node(name: "dw", opType: "Conv", inputs: ["x", "w"], outputs: ["y"],
                        attributes: ["group": .int(c), "pads": .ints([1, 1, 1, 1])])
        let input = ActivationQuant(scale: 0.02, zeroPoint: 120), output = ActivationQuant(scale: 0.05, zeroPoint: 100)
        let layer = try ConvFamily.prepare(node, constants: ["w": w], inputs: [input], weightBits: .eight)
        let x = Tensor(shape: [2, c, h, h], floats: (0..<2 * c * h * h).map { _ in rng.float(-2...2) })
        let per = c * h * h
        for path in KernelPath.allCases {
            let batch = try layer.run([x], path: path)[0], codes = try layer.runWritingCodes([x], path: path, output: output)[0]
            for img in 0..<2 {
                let one = Tensor(shape: [1, c, h, h], floats: Array(x.floats[img * per..<(img + 1) * per]))
                let alone = try layer.run([one], path: path)[0], aloneCodes = try layer.runWritingCodes([one], path: path, output: output)[0]
                let outPer = batch.count / 2
                XCTAssertEqual(alone.floats.map(\.bitPattern), batch.floats[img * outPer..<(img + 1) * outPer].map(\.bitPattern),
                               "\(path) image \(img)")
                XCTAssertEqual(try XCTUnwrap(aloneCodes.codes).values,
                               Array(try XCTUnwrap(codes.codes).values[img * outPer..<(img + 1) * outPer]), "\(path) codes, image \(img)")
            }
        }
    }
}
