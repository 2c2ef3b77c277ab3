import CKernels
import XCTest
import ONNX
@testable import Kernels

/// The FP32 Conv epilogue (bias, Relu/Clip, SiLU in `mpq_conv_epilogue_f32`) against the
/// unfused ops it replaces, bit for bit on every path, and the session's run-time SiLU
/// fusion against the unfused graph.
final class ConvEpilogueTests: XCTestCase {
    static let special: [Float] = [0, -0.0, 1, -1, 6, 6.5, -95, -104, 88, 1e30, -1e30, .nan, .infinity, -.infinity,
                                   .leastNonzeroMagnitude, -.leastNormalMagnitude]

    var paths: [mpq_kernel_path] {
        // MPQ_PATH_VNNI runs the epilogue's AVX-512 build (conv_epilogue.c), the others AVX2 or the reference.
        [MPQ_PATH_REFERENCE, MPQ_PATH_AUTO] + (mpq_kernel_path_available(MPQ_PATH_AVX2) != 0 ? [MPQ_PATH_AVX2] : [])
            + (mpq_kernel_path_available(MPQ_PATH_VNNI) != 0 ? [MPQ_PATH_VNNI] : [])
    }

    /// The unfused ops on one path: bias pass (zero skipped), then FusedActivation.apply's
    /// clamp, or Sigmoid on that path then Mul.
    func unfused(_ y: [Float], rows: Int, cols: Int, ld: Int, bias: [Float]?, act: mpq_activation,
                 lo: Float, hi: Float, path: mpq_kernel_path) -> [Float] {
        var v = y
        for r in 0..<rows {
            var row = Array(v[r * ld..<r * ld + cols])
            if let b = bias?[r], b != 0 { row = row.map { $0 + b } }
            if act == MPQ_ACT_CLAMP { row = row.map { $0 < lo ? lo : ($0 > hi ? hi : $0) } }
            if act == MPQ_ACT_SILU {
                var s = [Float](repeating: 0, count: cols)
                mpq_sigmoid_f32(path, row, cols, &s)
                row = zip(row, s).map { $0 * $1 }
            }
            v.replaceSubrange(r * ld..<r * ld + cols, with: row)
        }
        return v
    }

    func testKernelEqualsUnfusedOpsBitForBitOnEveryPath() {
        var rng = TestRNG(seed: 5)
        var cases = 0
        for (rows, cols, ld) in [(1, 1, 1), (3, 7, 9), (5, 33, 40), (2, 100, 100), (4, 17, 17), (1, 4099, 4100)] {
            let y: [Float] = (0..<rows * ld).map { i in rng.int(0...4) == 0 ? Self.special[i % Self.special.count] : rng.float(-12...12) }
            for withBias in [false, true] {
                let bias: [Float]? = withBias ? (0..<rows).map { $0 % 3 == 1 ? 0 : rng.float(-2...2) } : nil
                for (act, lo, hi) in [(MPQ_ACT_NONE, Float(0), Float(0)), (MPQ_ACT_CLAMP, 0, .infinity),
                                      (MPQ_ACT_CLAMP, 0, 6), (MPQ_ACT_CLAMP, -1.5, 2.25), (MPQ_ACT_SILU, 0, 0)] {
                    for path in paths {
                        var got = y
                        got.withUnsafeMutableBufferPointer { p in
                            if let bias { mpq_conv_epilogue_f32(path, p.baseAddress, rows, cols, ld, bias, act, lo, hi) }
                            else { mpq_conv_epilogue_f32(path, p.baseAddress, rows, cols, ld, nil, act, lo, hi) }
                        }
                        let want = unfused(y, rows: rows, cols: cols, ld: ld, bias: bias, act: act, lo: lo, hi: hi, path: path)
                        // Bit patterns: NaN == NaN, -0 != +0; the gaps between rows (ld > cols) untouched.
                        XCTAssertEqual(got.map(\.bitPattern), want.map(\.bitPattern),
                                       "rows \(rows) cols \(cols) ld \(ld) bias \(withBias) act \(act.rawValue) [\(lo), \(hi)] path \(path.rawValue)")
                        cases += 1
                    }
                }
            }
        }
        XCTAssertGreaterThan(cases, 100)
    }

    /// Conv -> Sigmoid -> Mul (SiLU), then a Conv with a fused Relu feeding a Conv with a
    /// fused Clip: the graph's output through the fused run, and through the unfused one.
    func siluGraph(channels c: Int, mid: Int) -> Graph {
        var rng = TestRNG(seed: 9)
        func t(_ shape: [Int], _ scale: Float) -> Tensor {
            Tensor(shape: shape, floats: (0..<shape.reduce(1, *)).map { _ in rng.float(-scale...scale) })
        }
        let pads: Attribute = .ints([1, 1, 1, 1])
        return Graph(nodes: [
            Node(name: "conv1", opType: "Conv", inputs: ["x", "w1", "b1"], outputs: ["c1"], attributes: ["pads": pads]),
            Node(name: "sig1", opType: "Sigmoid", inputs: ["c1"], outputs: ["s1"]),
            Node(name: "mul1", opType: "Mul", inputs: ["c1", "s1"], outputs: ["y1"]),
            Node(name: "conv2", opType: "Conv", inputs: ["y1", "w2", "b2"], outputs: ["y2"],
                 attributes: ["pads": pads, FusedActivation.attributeKey: .string("Relu")]),
            Node(name: "conv3", opType: "Conv", inputs: ["y2", "w3"], outputs: ["c3"],
                 attributes: [FusedActivation.attributeKey: .string("Clip"), "mpq_clip_min": .float(0), "mpq_clip_max": .float(0.5)]),
            Node(name: "sig3", opType: "Sigmoid", inputs: ["c3"], outputs: ["s3"]),
            Node(name: "mul3", opType: "Mul", inputs: ["s3", "c3"], outputs: ["y"]),
        ], initializers: ["w1": t([mid, c, 3, 3], 0.6), "b1": t([mid], 3), "w2": t([mid, mid, 3, 3], 0.2), "b2": t([mid], 1),
                          "w3": t([c, mid, 1, 1], 0.3)],
           inputs: [ValueInfo(name: "x", dtype: .float32, shape: [nil, c, nil, nil])],
           outputs: [ValueInfo(name: "y", dtype: .float32, shape: nil)], opsets: ["": 17])
    }

    func testSessionFusesSiLUAndMatchesUnfusedRunBitForBit() throws {
        let session = try Session(graph: siluGraph(channels: 16, mid: 32))
        XCTAssertEqual(session.siluFusions.count, 1, "conv1's SiLU fuses; conv3 has a fused Clip already")
        var rng = TestRNG(seed: 3)
        // Batch 1 of 32x32 splits one image's GEMMs over the cores; batch 3 splits by image.
        for (n, hw) in [(1, 32), (3, 12), (1, 5)] {
            let x = Tensor(shape: [n, 16, hw, hw], floats: (0..<n * 16 * hw * hw).map { _ in rng.float(-4...4) })
            for path in [MPQ_PATH_REFERENCE, MPQ_PATH_AUTO] {
                XCTAssertEqual(mpq_set_kernel_path(path), 0)
                defer { mpq_set_kernel_path(MPQ_PATH_AUTO) }
                var executed: [String] = []
                let fused = try session.run(["x": x], keep: [], fusing: true) { node, _, _ in executed.append(node.name) }
                XCTAssertEqual(executed, ["conv1", "conv2", "conv3", "sig3", "mul3"], "sig1 and mul1 run inside conv1")
                let plain = try session.run(["x": x], keep: [], fusing: false, observer: nil)
                XCTAssertEqual(fused["y"]!.floats.map(\.bitPattern), plain["y"]!.floats.map(\.bitPattern), "n \(n) \(hw)x\(hw) path \(path.rawValue)")
                // Asking for an intermediate turns the fusion off for that run, with the same values.
                let kept = try session.run(["x": x], keep: ["s1"])
                XCTAssertNotNil(kept["s1"])
                XCTAssertEqual(kept["y"]!.floats.map(\.bitPattern), plain["y"]!.floats.map(\.bitPattern))
            }
        }
    }

    /// What the fused Conv computes, against the direct-loop reference Conv then the ops.
    func testConvEpiloguesAgainstReferenceConv() throws {
        var rng = TestRNG(seed: 21)
        // Batch 1 over ~2M MACs: split by pixels; fewer pixels than channels: by channels;
        // batch 4: by image; small: one call.
        for (xs, ws) in [([1, 16, 32, 32], [32, 16, 3, 3]), ([1, 64, 6, 6], [128, 64, 3, 3]),
                         ([4, 8, 9, 11], [12, 8, 3, 3]), ([1, 3, 7, 5], [5, 3, 3, 3])] {
            let x = Tensor(shape: xs, floats: (0..<xs.reduce(1, *)).map { _ in rng.float(-1...1) })
            let w = Tensor(shape: ws, floats: (0..<ws.reduce(1, *)).map { _ in rng.float(-0.3...0.3) })
            let b = Tensor(shape: [ws[0]], floats: (0..<ws[0]).map { _ in rng.float(-1...1) })
            let want = ConvOpsTests.referenceConv(x, w, b, group: 1, strides: [1, 1], dilations: [1, 1], pads: [1, 1, 1, 1])
            for ep in [ConvEpilogue.none, .clamp(lo: 0, hi: 6), .clamp(lo: 0, hi: .infinity), .silu] {
                let got = try ConvOps.Conv(x: x, w: w, b: b, autoPad: "NOTSET", dilations: nil, group: 1, kernelShape: nil,
                                           pads: [1, 1, 1, 1], strides: nil, epilogue: ep)
                let expect: [Float] = want.floats.map { v in
                    switch ep {
                    case .none: return v
                    case .clamp(let lo, let hi): return min(max(v, lo), hi)
                    case .silu: return v / (1 + Foundation.exp(-v))
                    }
                }
                XCTAssertEqual(got.shape, want.shape)
                for (i, (g, e)) in zip(got.floats, expect).enumerated() where abs(g - e) > 1e-4 * max(1, abs(e)) {
                    XCTFail("\(xs) \(ws) \(ep): [\(i)] \(g) vs \(e)"); break
                }
            }
        }
    }
}
