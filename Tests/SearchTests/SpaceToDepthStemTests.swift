import Foundation
import XCTest
import Kernels
@testable import ONNX
@testable import Search

/// docs/export.md, "Space-to-depth stems": under `--scheme ort` a stride-2 Conv with 1-2 input
/// channels and a kernel over 3x3 is written as Pad -> SpaceToDepth(2) -> a stride-1 Conv over
/// the blocks, so that ONNX Runtime takes its direct QLinearConv kernel. The integer sums must
/// stay the stride-2 Conv's (the export must equal mpq's runtime); ONNX Runtime's side, the
/// same output bytes as the plain export, is benchmarks/export_ab.py and tools/crosscheck.
final class SpaceToDepthStemTests: XCTestCase {
    /// Runs one node of mpq's own op table (the ops ONNX's conformance cases check), at opset
    /// 28, where SpaceToDepth has its mode.
    static func op(_ type: String, _ inputs: [Tensor], _ attrs: [String: Attribute]) throws -> Tensor {
        let node = Node(name: type, opType: type, inputs: inputs.indices.map { "i\($0)" }, outputs: ["y"], attributes: attrs)
        return try OpRegistry.table[type]!.run(node, inputs, 28)[0]
    }

    /// Σ (x - zp) · w of a Conv over one [1, C, H, W] image of codes, by mpq's FP32 Conv on the
    /// shifted codes: every product and partial sum is an integer under 2^24 (|x - zp| <= 255,
    /// |w| <= 127, at most 98 taps), so the float sums are the integer ones in any order, and
    /// the Conv's zero padding is the zero point's.
    static func sums(_ codes: Tensor, zeroPoint zp: Int, weight: [Int8], shape: [Int], stride: Int, pads: [Int]) throws -> [Int] {
        let shifted = Tensor(shape: codes.shape, floats: codes.floats.map { $0 - Float(zp) })
        let w = Tensor(shape: shape, floats: weight.map(Float.init))
        let y = try op("Conv", [shifted, w], ["strides": .ints([stride, stride]), "pads": .ints(pads),
                                             "kernel_shape": .ints(Array(shape.suffix(2)))])
        XCTAssertTrue(y.floats.allSatisfy { $0 == $0.rounded() && abs($0) < 16_777_216 })
        return y.floats.map { Int($0) }
    }

    /// The export's form of the same Conv: the codes padded by `s2d.pads` with the zero point
    /// (mpq's Pad), moved into blocks by mpq's SpaceToDepth, summed by a stride-1 unpadded Conv
    /// with the rearranged weight.
    static func blockSums(_ codes: Tensor, zeroPoint zp: Int, weight: [Int8], shape: [Int], s2d: QDQSpaceToDepth) throws -> [Int] {
        let c = codes.shape[1]
        let pads = Tensor(shape: [8], ints: [0, 0, s2d.pads[0], s2d.pads[1], 0, 0, s2d.pads[2], s2d.pads[3]].map(Int64.init))
        let padded = try op("Pad", [codes, pads, Tensor(shape: [], floats: [Float(zp)])], [:])
        let blocks = try op("SpaceToDepth", [padded], ["blocksize": .int(2)])
        XCTAssertEqual(blocks.shape, [1, 4 * c, padded.shape[2] / 2, padded.shape[3] / 2])
        let (w2, shape2) = QDQWriter.spaceToDepthWeight(weight, shape: shape)
        XCTAssertEqual(shape2, [shape[0], 4 * c, (shape[2] + 1) / 2, (shape[3] + 1) / 2])
        return try sums(blocks, zeroPoint: zp, weight: w2, shape: shape2, stride: 1, pads: [0, 0, 0, 0])
    }

    func testBlockConvSumsAreTheStridedConvs() throws {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next(_ n: Int) -> Int {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int((state >> 33) % UInt64(n))
        }
        // (Cin, kernel h x w, input h x w, pads): odd and even sizes, square and not, asymmetric
        // and no padding, an even kernel.
        let cases: [(Int, (Int, Int), (Int, Int), [Int])] = [
            (1, (7, 7), (12, 12), [3, 3, 3, 3]), (1, (7, 7), (13, 11), [3, 3, 3, 3]), (2, (5, 5), (11, 9), [2, 1, 2, 0]),
            (1, (6, 4), (10, 14), [2, 3, 1, 2]), (2, (7, 5), (9, 16), [0, 0, 0, 0]), (1, (5, 7), (8, 8), [1, 2, 0, 3]),
        ]
        for (cin, k, size, pads) in cases {
            let shape = [16, cin, k.0, k.1]
            let weight = (0..<shape.reduce(1, *)).map { _ in Int8(next(255) - 127) }
            let zp = next(256)
            let x = Tensor(shape: [1, cin, size.0, size.1], floats: (0..<(cin * size.0 * size.1)).map { _ in Float(next(256)) })
            let node = Node(name: "stem", opType: "Conv", inputs: ["x", "w"], outputs: ["y"],
                            attributes: ["strides": .ints([2, 2]), "pads": .ints(pads), "kernel_shape": .ints([k.0, k.1])])
            let spec = QDQLayer(node: "stem", activation: "x", activationScale: 1, activationZeroPoint: UInt8(zp), weightValues: weight,
                                weightShape: shape, weightScales: [Float](repeating: 1, count: 16), weightAxis: 0, biasValues: nil, biasScales: nil)
            let s2d = try XCTUnwrap(Exporter.ortSpaceToDepth(node, spec, inputSize: [size.0, size.1]), "\(cin) \(k) \(size) \(pads)")
            XCTAssertEqual(Array(s2d.pads.prefix(2)), Array(pads.prefix(2)), "the Conv's own padding comes first")
            let want = try Self.sums(x, zeroPoint: zp, weight: weight, shape: shape, stride: 2, pads: pads)
            let got = try Self.blockSums(x, zeroPoint: zp, weight: weight, shape: shape, s2d: s2d)
            XCTAssertEqual(got, want, "Cin \(cin), kernel \(k), input \(size), pads \(pads)")
        }
    }

    /// Only 1-2 input channels, kernels over 3x3, stride 2 in both axes, no dilation or groups
    /// (the measured cases where ORT gains); 3x3 kernels keep the channel padding.
    func testCandidateRule() {
        func conv(_ attrs: [String: Attribute]) -> Node {
            Node(name: "c", opType: "Conv", inputs: ["x", "w"], outputs: ["y"], attributes: attrs)
        }
        func spec(_ shape: [Int]) -> QDQLayer {
            QDQLayer(node: "c", activation: "x", activationScale: 1, activationZeroPoint: 0, weightValues: [], weightShape: shape,
                     weightScales: [], weightAxis: 0, biasValues: nil, biasScales: nil)
        }
        let s2 = ["strides": Attribute.ints([2, 2]), "pads": .ints([3, 3, 3, 3])]
        XCTAssertTrue(Exporter.ortSpaceToDepthCandidate(conv(s2), spec([16, 1, 7, 7])))
        XCTAssertTrue(Exporter.ortSpaceToDepthCandidate(conv(s2), spec([32, 2, 5, 5])))
        XCTAssertFalse(Exporter.ortSpaceToDepthCandidate(conv(s2), spec([64, 3, 7, 7])), "3 channels: slower on two threads at batch 16")
        XCTAssertFalse(Exporter.ortSpaceToDepthCandidate(conv(s2), spec([16, 1, 3, 3])), "3x3: channel padding instead")
        XCTAssertFalse(Exporter.ortSpaceToDepthCandidate(conv(s2), spec([12, 1, 7, 7])), "the direct kernel needs >= 16 outputs")
        XCTAssertFalse(Exporter.ortSpaceToDepthCandidate(conv(["strides": .ints([1, 1])]), spec([16, 1, 7, 7])))
        XCTAssertFalse(Exporter.ortSpaceToDepthCandidate(conv(["strides": .ints([2, 1])]), spec([16, 1, 7, 7])))
        XCTAssertFalse(Exporter.ortSpaceToDepthCandidate(conv(s2.merging(["dilations": .ints([2, 2])]) { $1 }), spec([16, 1, 7, 7])))
        XCTAssertFalse(Exporter.ortSpaceToDepthCandidate(conv(s2.merging(["auto_pad": .string("SAME_UPPER")]) { $1 }), spec([16, 1, 7, 7])))
        XCTAssertFalse(Exporter.ortSpaceToDepthCandidate(conv(s2.merging(["group": .int(2)]) { $1 }), spec([16, 1, 7, 7])))
        var padded = spec([16, 1, 7, 7])
        padded.inputChannelPad = 3
        XCTAssertFalse(Exporter.ortSpaceToDepthCandidate(conv(s2), padded), "one input rewrite per layer")
    }

    /// The ResNet fixture's 1-channel 7x7 stride-2 stem at 224x224, all-INT8 under `ort`: written
    /// as blocks, and the export, run by mpq as a float graph, still reproduces the runtime.
    func testResnetStemExportsAsBlocksAndMatchesTheRuntime() throws {
        let exporter = try Exporter(modelPath: ExportTests.path("resnet/resnet_digits.onnx"))
        let calib = try Dataset(path: ExportTests.path("resnet/resnet_digits_ci_calib.npz"), graph: exporter.graph)
        let table = try Calibrator(session: exporter.session, scheme: .ort).calibrate(
            dataset: calib, options: CalibrationOptions(method: .minmax), modelDigest: exporter.digest)
        let runtime = try MixedPrecisionRuntime(session: exporter.session, calibration: table, scheme: .ort)
        let map = try ExportMap(data: try JSONEncoder().encode(runtime.allInt8), path: "map.json")
        let qdq = try ModelLoader.load(data: try exporter.qdq(map: map, path: "map.json", calibration: table, version: "test", scheme: .ort))

        let producer = Dictionary(qdq.nodes.flatMap { n in n.outputs.map { ($0, n) } }, uniquingKeysWith: { a, _ in a })
        let stem = try XCTUnwrap(qdq.node(named: "/conv1/Conv"))
        XCTAssertEqual(stem.ints("kernel_shape"), [4, 4])
        XCTAssertEqual(stem.ints("strides"), [1, 1])
        XCTAssertEqual(stem.ints("pads"), [0, 0, 0, 0])
        let dq = try XCTUnwrap(producer[stem.inputs[0]])
        let blocks = try XCTUnwrap(producer[dq.inputs[0]])
        XCTAssertEqual(blocks.opType, "SpaceToDepth")
        XCTAssertEqual(blocks.int("blocksize"), 2)
        let pad = try XCTUnwrap(producer[blocks.inputs[0]])
        XCTAssertEqual(pad.opType, "Pad")
        XCTAssertEqual(qdq.initializers[pad.inputs[1]]?.ints, [0, 0, 3, 3, 0, 0, 3, 3], "224 + 3 + 3 = 2 x (112 + 4 - 1)")
        XCTAssertEqual(pad.inputs[2], dq.inputs[2], "padded with the input's zero point")
        XCTAssertEqual(producer[pad.inputs[0]]?.opType, "QuantizeLinear")
        XCTAssertEqual(qdq.initializers[try XCTUnwrap(producer[stem.inputs[1]]).inputs[0]]?.shape, [16, 4, 4, 4])
        XCTAssertEqual(qdq.nodes.filter { $0.opType == "SpaceToDepth" }.count, 1, "only the stem")
        let read = Set(qdq.nodes.flatMap(\.inputs)).union(qdq.outputs.map(\.name))
        for n in qdq.nodes { XCTAssertTrue(n.outputs.allSatisfy(read.contains), "\(n.opType) '\(n.name)' writes what nothing reads") }

        // The numbers: mpq's float run of the export against its INT8 run of the map.
        let holdout = try Dataset(path: ExportTests.path("resnet/resnet_digits_ci_holdout.npz"), graph: exporter.graph)
        let rows = holdout.batch(0..<32)
        let output = try XCTUnwrap(exporter.graph.outputs.first?.name)
        let exported = try XCTUnwrap(try Session(graph: qdq).run(rows)[output]).floats
        try runtime.apply(runtime.allInt8)
        let mine = try XCTUnwrap(try runtime.session.run(rows)[output]).floats
        try runtime.apply(runtime.allFP32)
        XCTAssertEqual(exported.count, mine.count)
        let diffs = zip(exported, mine).map { abs($0 - $1) }, spread = mine.map(abs).max() ?? 1
        XCTAssertLessThan(diffs.max() ?? 1, 0.02 * spread, "at most about one quantization step")
        // A 20-layer float run drifts from the integer one where a requantization lands on a tie
        // (75 of 320 logits move by more than 1e-4 x max, as much for the plain export); the
        // blocks themselves change nothing: the export without them (uint8 weights, the same
        // values) runs to the same logits within float rounding.
        let plain = try ModelLoader.load(data: try exporter.qdq(map: map, path: "map.json", calibration: table, version: "test",
                                                                scheme: .ort, weightType: .uint8))
        XCTAssertFalse(plain.nodes.contains { $0.opType == "SpaceToDepth" }, "ORT's direct kernel takes int8 weights only")
        let plainLogits = try XCTUnwrap(try Session(graph: plain).run(rows)[output]).floats
        XCTAssertLessThan(zip(plainLogits, exported).map { abs($0 - $1) }.max() ?? 1, 1e-4 * spread)
        let classes = mine.count / 32
        let argmax = { (v: [Float], r: Int) in (0..<classes).max { v[r * classes + $0] < v[r * classes + $1] }! }
        XCTAssertEqual((0..<32).map { argmax(exported, $0) }, (0..<32).map { argmax(mine, $0) })

        // `mpq export` says so in its summary.
        let result = try exporter.export(.qdq, map: map, mapPath: "map.json", calibration: table, version: "test", scheme: .ort)
        XCTAssertTrue(result.summary.hasSuffix("same integer sums: 1 stride-2 stem over space-to-depth blocks"), result.summary)

        // `inputs` exports stay as they were.
        let inputs = try ModelLoader.load(data: try exporter.qdq(map: map, path: "map.json", calibration: table, version: "test",
                                                                 scheme: .inputs))
        XCTAssertFalse(inputs.nodes.contains { $0.opType == "SpaceToDepth" })
    }

    /// mpq's SpaceToDepth / DepthToSpace against the ONNX definitions written out per element,
    /// and DepthToSpace(DCR) undoing SpaceToDepth.
    func testBlockOpsFollowTheSpec() throws {
        let (n, c, h, w, b) = (2, 3, 4, 6, 2)
        let x = Tensor(shape: [n, c, h, w], floats: (0..<(n * c * h * w)).map(Float.init))
        func run(_ type: String, _ t: Tensor, _ attrs: [String: Attribute]) throws -> Tensor { try Self.op(type, [t], attrs) }
        let s = try run("SpaceToDepth", x, ["blocksize": .int(b)])
        XCTAssertEqual(s.shape, [n, c * b * b, h / b, w / b])
        for i in 0..<n { for by in 0..<b { for bx in 0..<b { for ch in 0..<c { for y in 0..<(h / b) { for x0 in 0..<(w / b) {
            let got = s.floats[((i * c * b * b + (by * b + bx) * c + ch) * (h / b) + y) * (w / b) + x0]
            XCTAssertEqual(got, x.floats[((i * c + ch) * h + y * b + by) * w + x0 * b + bx])
        } } } } } }
        XCTAssertEqual(try run("DepthToSpace", s, ["blocksize": .int(b), "mode": .string("DCR")]).floats, x.floats)
        let sCRD = try run("SpaceToDepth", x, ["blocksize": .int(b), "mode": .string("CRD")])
        for i in 0..<n { for ch in 0..<c { for by in 0..<b { for bx in 0..<b { for y in 0..<(h / b) { for x0 in 0..<(w / b) {
            let got = sCRD.floats[((i * c * b * b + (ch * b + by) * b + bx) * (h / b) + y) * (w / b) + x0]
            XCTAssertEqual(got, x.floats[((i * c + ch) * h + y * b + by) * w + x0 * b + bx])
        } } } } } }
        let crd = try run("DepthToSpace", s, ["blocksize": .int(b), "mode": .string("CRD")])
        let cOut = c * b * b / (b * b)
        for i in 0..<n { for ch in 0..<cOut { for y in 0..<(h / b * b) { for x0 in 0..<(w / b * b) {
            let source = ((i * c * b * b + (ch * b + y % b) * b + x0 % b) * (h / b) + y / b) * (w / b) + x0 / b
            XCTAssertEqual(crd.floats[((i * cOut + ch) * h + y) * w + x0], s.floats[source])
        } } } }
        XCTAssertThrowsError(try run("SpaceToDepth", Tensor(shape: [1, 1, 3, 4], floats: [Float](repeating: 0, count: 12)),
                                     ["blocksize": .int(2)]))
        XCTAssertThrowsError(try run("DepthToSpace", x, ["blocksize": .int(2)]), "3 channels are not a multiple of 4")
        XCTAssertThrowsError(try run("DepthToSpace", s, ["blocksize": .int(2), "mode": .string("XYZ")]))
    }
}
