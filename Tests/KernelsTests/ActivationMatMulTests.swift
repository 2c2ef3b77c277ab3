import CKernels
import ONNX
import XCTest
@testable import Kernels

/// INT8 MatMul of two activations: exact integer arithmetic against a scalar reference on
/// every kernel path, then a small attention block through `MixedPrecisionRuntime`.
final class ActivationMatMulTests: XCTestCase {
    /// ONNX QuantizeLinear to uint8, in Swift: division in float, round half to even, saturate.
    private func quantize(_ x: Float, _ q: ActivationQuant) -> Int {
        Swift.max(0, Swift.min(255, Int((x / q.scale).rounded(.toNearestOrEven)) + Int(q.zeroPoint)))
    }

    /// sum_k (qa - za)(qb - zb) exactly, times s_a * s_b, with numpy broadcasting of batch dims.
    private func reference(_ a: Tensor, _ b: Tensor, _ qa: ActivationQuant, _ qb: ActivationQuant) -> Tensor {
        let m = a.shape[a.rank - 2], k = a.shape[a.rank - 1], n = b.shape[b.rank - 1]
        let rank = Swift.max(a.rank, b.rank) - 2
        let ab = [Int](repeating: 1, count: rank - (a.rank - 2)) + a.shape.dropLast(2)
        let bb = [Int](repeating: 1, count: rank - (b.rank - 2)) + b.shape.dropLast(2)
        let batch = zip(ab, bb).map { Swift.max($0, $1) }
        let count = batch.reduce(1, *)
        let ia = a.floats.map { quantize($0, qa) - Int(qa.zeroPoint) }
        let ib = b.floats.map { quantize($0, qb) - Int(qb.zeroPoint) }
        var out = [Float](repeating: 0, count: count * m * n)
        for i in 0..<count {
            // Batch index -> operand matrix indices (size-1 dims broadcast).
            var r = i, ai = 0, bi = 0, aStride = 1, bStride = 1
            for d in stride(from: rank - 1, through: 0, by: -1) {
                let idx = r % batch[d]; r /= batch[d]
                ai += (ab[d] == 1 ? 0 : idx) * aStride; bi += (bb[d] == 1 ? 0 : idx) * bStride
                aStride *= ab[d]; bStride *= bb[d]
            }
            for row in 0..<m {
                for col in 0..<n {
                    var s = 0
                    for j in 0..<k { s += ia[(ai * m + row) * k + j] * ib[(bi * k + j) * n + col] }
                    out[(i * m + row) * n + col] = Float(s) * (qa.scale * qb.scale)
                }
            }
        }
        return Tensor(shape: batch + [m, n], floats: out)
    }

    private func random(_ shape: [Int], _ rng: inout Int8TestRNG, _ lo: Float, _ hi: Float) -> Tensor {
        Tensor(shape: shape, floats: (0..<shape.reduce(1, *)).map { _ in rng.float(lo...hi) })
    }

    func testMatchesScalarReferenceExactlyOnEveryPath() throws {
        var rng = Int8TestRNG(seed: 77)
        var shapes: [([Int], [Int])] = [
            ([2, 3, 5, 7], [2, 3, 7, 9]),          // same batch
            ([2, 1, 5, 7], [1, 3, 7, 9]),          // both operands broadcast
            ([5, 7], [4, 7, 3]),                   // A broadcast over B's batch, lower rank
            ([2, 4, 17, 33], [33, 15]),            // one B for every batch: folded into M
            ([1, 2, 1, 64], [1, 2, 64, 65]),
            ([3, 1, 1], [3, 1, 1]),                // K = 1
            ([1, 2, 13, 1], [2, 1, 1, 31]),
            // Enough work to hand matrices out in runs over the cores (>= 2^20 MACs), with A
            // shared by several B matrices (its row sums reused within a run) and without.
            ([2, 6, 64, 32], [2, 6, 32, 64]),
            ([1, 6, 64, 32], [3, 6, 32, 64]),
        ]
        for _ in 0..<12 {
            let m = rng.pick(int8AwkwardSizes), k = rng.pick(int8AwkwardSizes), n = rng.pick(int8AwkwardSizes)
            let b = rng.int(1...2), h = rng.int(1...3)
            shapes.append(([b, h, m, k], [rng.pick([1, b]), h, k, n]))
        }
        let paths = KernelPath.available
        for (sa, sb) in shapes {
            // Ranges not centred on 0 (softmax probabilities are >= 0) and some saturation.
            let a = random(sa, &rng, -1.5, 3), b = random(sb, &rng, -0.2, 1.1)
            let qa = ActivationQuant(min: -1.2, max: 2.5), qb = ActivationQuant(min: 0, max: 1)
            let want = reference(a, b, qa, qb)
            for path in paths {
                let got = try QuantizedActivationMatMul.matmul(a: a, b: b, aQuant: qa, bQuant: qb, path: path)
                XCTAssertEqual(got.shape, want.shape, "\(sa) x \(sb) on \(path)")
                XCTAssertEqual(got.floats, want.floats, "\(sa) x \(sb) on \(path)")
            }
        }
        print("ActivationMatMul paths covered: \(paths.map(\.rawValue).joined(separator: ", "))")
    }

    func testExtremeZeroPointsAreExact() throws {
        // zb = 0 (b' = b - 128 reaches -128) and zb = 255, za = 0 and 255.
        var rng = Int8TestRNG(seed: 5)
        let a = random([2, 9, 70], &rng, -4, 4), b = random([2, 70, 11], &rng, -4, 4)
        for (qa, qb) in [(ActivationQuant(min: 0, max: 4), ActivationQuant(min: 0, max: 4)),
                         (ActivationQuant(min: -4, max: 0), ActivationQuant(min: -4, max: 0)),
                         (ActivationQuant(min: -4, max: 0), ActivationQuant(min: 0, max: 4))] {
            let want = reference(a, b, qa, qb)
            for path in KernelPath.available {
                let got = try QuantizedActivationMatMul.matmul(a: a, b: b, aQuant: qa, bQuant: qb, path: path)
                XCTAssertEqual(got.floats, want.floats, "za \(qa.zeroPoint) zb \(qb.zeroPoint) on \(path)")
            }
        }
    }

    func testRejectsBadOperands() {
        let qa = ActivationQuant(min: -1, max: 1)
        let v = Tensor(shape: [4], floats: [1, 2, 3, 4]), m = Tensor(shape: [4, 2], floats: Array(repeating: 1, count: 8))
        XCTAssertThrowsError(try QuantizedActivationMatMul.matmul(a: v, b: m, aQuant: qa, bQuant: qa, path: .reference))
        XCTAssertThrowsError(try QuantizedActivationMatMul.matmul(a: m, b: m, aQuant: qa, bQuant: qa, path: .reference))
        let b = Tensor(shape: [3, 2, 4], floats: Array(repeating: 1, count: 24)), c = Tensor(shape: [2, 4, 2], floats: Array(repeating: 1, count: 16))
        XCTAssertThrowsError(try QuantizedActivationMatMul.matmul(a: b, b: c, aQuant: qa, bQuant: qa, path: .reference))
    }

    /// x [N, L, D] -> Q, K, V projections (constant-weight MatMuls), scores Q·Kᵀ and
    /// softmax(scores)·V: two activation x activation MatMuls.
    private func attentionGraph(l: Int, d: Int, rng: inout Int8TestRNG) -> Graph {
        func weight(_ name: String) -> Tensor { random([d, d], &rng, -0.5, 0.5) }
        let nodes = [
            Node(name: "q_proj", opType: "MatMul", inputs: ["x", "wq"], outputs: ["q"]),
            Node(name: "k_proj", opType: "MatMul", inputs: ["x", "wk"], outputs: ["k"]),
            Node(name: "v_proj", opType: "MatMul", inputs: ["x", "wv"], outputs: ["v"]),
            Node(name: "k_t", opType: "Transpose", inputs: ["k"], outputs: ["kt"], attributes: ["perm": .ints([0, 2, 1])]),
            Node(name: "scores", opType: "MatMul", inputs: ["q", "kt"], outputs: ["s"]),
            Node(name: "softmax", opType: "Softmax", inputs: ["s"], outputs: ["p"], attributes: ["axis": .int(-1)]),
            Node(name: "context", opType: "MatMul", inputs: ["p", "v"], outputs: ["y"]),
        ]
        return Graph(nodes: nodes, initializers: ["wq": weight("wq"), "wk": weight("wk"), "wv": weight("wv")],
                     inputs: [ValueInfo(name: "x", dtype: .float32, shape: [nil, l, d])],
                     outputs: [ValueInfo(name: "y", dtype: .float32, shape: [nil, l, d])], opsets: ["": 17])
    }

    func testAttentionBlockThroughMixedPrecisionRuntime() throws {
        var rng = Int8TestRNG(seed: 11)
        let (n, l, d) = (3, 7, 12)
        let session = try Session(graph: attentionGraph(l: l, d: d, rng: &rng))
        let x = random([n, l, d], &rng, -2, 2)

        XCTAssertTrue(Layers.isActivationMatMul(session.plan.first { $0.name == "scores" }!, constants: session.constants))
        XCTAssertFalse(Layers.isActivationMatMul(session.plan.first { $0.name == "q_proj" }!, constants: session.constants))
        XCTAssertEqual(MixedPrecisionRuntime.quantizableNodes(session).map(\.name), ["q_proj", "k_proj", "v_proj", "scores", "context"])

        // Min/max ranges from the FP32 run, as minmax calibration computes them.
        let all = try session.fp32Activations(["x": x])
        var ranges: [String: CalibrationTable.Range] = [:]
        for name in ["x", "q", "kt", "p", "v"] {
            let f = all[name]!.floats
            ranges[name] = CalibrationTable.Range(min: f.min()!, max: f.max()!)
        }
        let table = CalibrationTable(method: "minmax", modelDigest: "test", samples: n, ranges: ranges)
        let runtime = try MixedPrecisionRuntime(session: session, calibration: table, path: .auto)
        XCTAssertTrue(runtime.layers["q_proj"] is QuantizedLinear)
        let scores = try XCTUnwrap(runtime.layers["scores"] as? QuantizedActivationMatMul)
        XCTAssertEqual(scores.inputQuant, table.quant(for: "q"))
        XCTAssertEqual(scores.rightQuant, table.quant(for: "kt"))
        XCTAssertTrue(scores.weightScales.isEmpty)

        let fp32 = all["y"]!
        for map in [PrecisionMap(layers: ["scores": .int8, "context": .int8]), runtime.allInt8] {
            try runtime.apply(map)
            let y = try session.run(["x": x])["y"]!
            XCTAssertEqual(y.shape, fp32.shape)
            let maxAbs = fp32.floats.map { abs($0) }.max()!
            let err = zip(y.floats, fp32.floats).map { abs($0 - $1) }.max()!
            XCTAssertLessThan(err, 0.05 * maxAbs, "INT8 \(map.int8Layers) vs FP32")
            XCTAssertGreaterThan(err, 0, "INT8 must differ from FP32 somewhere")
        }

        // The layer alone, against the scalar reference on the recorded operands.
        let direct = try scores.run([all["q"], all["kt"]], path: .reference)[0]
        XCTAssertEqual(direct.floats, reference(all["q"]!, all["kt"]!, scores.inputQuant, scores.rightQuant).floats)

        // A range missing for either operand names the layer and the tensor.
        for missing in ["q", "kt"] {
            var r = ranges; r[missing] = nil
            let t = CalibrationTable(method: "minmax", modelDigest: "test", samples: n, ranges: r)
            XCTAssertThrowsError(try MixedPrecisionRuntime(session: session, calibration: t)) { error in
                XCTAssertEqual(error as? QuantizationError, .missingRange(layer: "scores", tensor: missing))
            }
        }
    }
    /// Under the `ort` scheme the activation MatMuls join the uint8 chains: Q·Kᵀ reads Q and
    /// Kᵀ as codes (from the projections and the Transpose), probabilities·V is requantized
    /// (QLinearMatMul: an INT8 projection reads its output) and writes codes. Chains on and
    /// off give the same bits, and the codes really flowed (the counters).
    func testAttentionUnderOrtSchemeRunsOnCodesBitIdentical() throws {
        var rng = Int8TestRNG(seed: 23)
        let (n, l, d) = (2, 9, 16)
        var graph = attentionGraph(l: l, d: d, rng: &rng)
        graph.nodes.append(Node(name: "o_proj", opType: "MatMul", inputs: ["y", "wo"], outputs: ["out"]))
        graph.initializers["wo"] = random([d, d], &rng, -0.5, 0.5)
        graph.outputs = [ValueInfo(name: "out", dtype: .float32, shape: [nil, l, d])]
        let session = try Session(graph: graph)
        let x = random([n, l, d], &rng, -2, 2)
        let all = try session.fp32Activations(["x": x])
        var ranges: [String: CalibrationTable.Range] = [:]
        for (name, t) in all where t.dtype == .float32 && !t.floats.isEmpty {
            ranges[name] = CalibrationTable.Range(min: t.floats.min()!, max: t.floats.max()!)
        }
        let table = CalibrationTable(method: "minmax", modelDigest: "test", samples: n, ranges: ranges)
        let runtime = try MixedPrecisionRuntime(session: session, calibration: table, path: .auto, scheme: .ort)
        XCTAssertNotNil(runtime.plan(for: runtime.allInt8).requantized["y"], "probabilities·V feeds an INT8 layer: requantized")
        var outputs: [[UInt32]] = []
        for chains in [false, true] {
            runtime.uint8Chains = chains
            try runtime.apply(runtime.allInt8)
            runtime.chainCounters.reset()
            outputs.append(try session.run(["x": x])["out"]!.floats.map(\.bitPattern))
            if chains {
                // q_proj -> scores, kt -> scores (counted on input 0: q), y -> o_proj, p -> context.
                XCTAssertGreaterThanOrEqual(runtime.chainCounters.codesRead, 2, "the activation MatMuls must read codes")
                XCTAssertGreaterThanOrEqual(runtime.chainCounters.codesWritten, 2, "context must write codes for o_proj")
            }
        }
        XCTAssertEqual(outputs[0], outputs[1], "uint8 chains through the attention MatMuls changed output bits")
        let fp32 = all["out"]!.floats
        XCTAssertNotEqual(outputs[1], fp32.map(\.bitPattern), "INT8 must differ from FP32 somewhere")
    }

    /// The text_encoder fixture (BERT-style, 4 activation x activation MatMuls) all-INT8 with
    /// minmax ranges on its calibration split, against ONNX Runtime's `quantize_static` QDQ
    /// model calibrated the same way (Q/DQ on both inputs of every MatMul and Gemm).
    func testTextEncoderAllInt8MatchesOnnxRuntimeQDQ() throws {
        let graph = try ModelLoader.load(path: FixturePaths.path("text_encoder.onnx"))
        let session = try Session(graph: GraphPasses.optimize(graph))
        let calib = try Dataset(path: FixturePaths.path("text_encoder_calib.npz"), graph: graph)
        let holdout = try Dataset(path: FixturePaths.path("text_encoder_holdout.npz"), graph: graph)
        let nodes = MixedPrecisionRuntime.quantizableNodes(session)
        XCTAssertEqual(nodes.count, 18)
        XCTAssertEqual(nodes.filter { Layers.isActivationMatMul($0, constants: session.constants) }.count, 4)

        // Minmax over the calibration split of every operand an INT8 layer quantizes.
        var ranges: [String: CalibrationTable.Range] = [:]
        for r in calib.batches(size: 64) {
            _ = try session.run(calib.batch(r)) { node, ins, _ in
                guard Layers.isQuantizable(node, constants: session.constants) else { return }
                let operands = Layers.isActivationMatMul(node, constants: session.constants) ? 2 : 1
                for i in 0..<operands {
                    guard let name = node.input(i), session.constants[name] == nil, let t = ins[i] else { continue }
                    let f = t.asFloats
                    let old = ranges[name] ?? CalibrationTable.Range(min: .infinity, max: -.infinity)
                    ranges[name] = CalibrationTable.Range(min: Swift.min(old.min, f.min()!), max: Swift.max(old.max, f.max()!))
                }
            }
        }
        let table = CalibrationTable(method: "minmax", modelDigest: graph.digest, samples: calib.count, ranges: ranges)
        // Both operands of the 4 activation MatMuls get ORT's zero point and scale (to an ulp or
        // two: mpq's FP32 activations differ from ORT's in the last bits, so do the ranges).
        let qdqGraph = try ModelLoader.load(path: FixturePaths.path("text_encoder.qdq.onnx"))
        var ortQuant: [String: ActivationQuant] = [:]
        for n in qdqGraph.nodes where n.opType == "QuantizeLinear" {
            guard let s = qdqGraph.initializers[n.inputs[1]], let z = qdqGraph.initializers[n.inputs[2]] else { continue }
            ortQuant[n.inputs[0]] = ActivationQuant(scale: s.floats[0], zeroPoint: UInt8(z.ints[0]))
        }
        var operands = 0
        for n in nodes where Layers.isActivationMatMul(n, constants: session.constants) {
            for i in 0..<2 {
                let name = n.input(i)!
                let mine = try XCTUnwrap(table.quant(for: name)), ort = try XCTUnwrap(ortQuant[name], name)
                XCTAssertEqual(mine.zeroPoint, ort.zeroPoint, "\(n.name) input \(i) '\(name)'")
                XCTAssertEqual(mine.scale, ort.scale, accuracy: 2 * ort.scale.ulp, "\(n.name) input \(i) '\(name)'")
                operands += 1
            }
        }
        XCTAssertEqual(operands, 8)
        let runtime = try MixedPrecisionRuntime(session: session, calibration: table)
        try runtime.apply(runtime.allInt8)
        var logits: [Float] = []
        for r in holdout.batches(size: 64) { logits += try session.run(holdout.batch(r))["logits"]!.floats }

        let expected = try Numpy.readNPZ(path: FixturePaths.path("text_encoder.expected.npz"))
        let qdq = try XCTUnwrap(expected["qdq/logits"]).floats, fp32 = try XCTUnwrap(expected["logits"]).floats
        let diff = zip(logits, qdq).map { abs($0 - $1) }.max()!
        let fpDiff = zip(fp32, qdq).map { abs($0 - $1) }.max()!
        // ORT's QDQ model also quantizes MatMul outputs, Transpose, Reshape and the logits
        // (Q/DQ propagation), mpq only the layers' inputs: its output is not much closer to
        // ORT's QDQ output than FP32 is (mean |diff| 0.0227 against 0.0228, docs/transformers.md).
        let labels = try XCTUnwrap(holdout.labels)
        let argmax = stride(from: 0, to: logits.count, by: 4).map { s in (0..<4).max { logits[s + $0] < logits[s + $1] }! }
        let correct = zip(argmax, labels).filter { $0 == Int($1) }.count
        print("text_encoder all-INT8 (\(runtime.path.resolved)): \(correct)/720 correct (ORT QDQ 629, FP32 627); max |mpq - ORT qdq| = \(diff), max |ORT fp32 - ORT qdq| = \(fpDiff)")
        XCTAssertLessThan(diff, fpDiff, "mpq INT8 should be closer to ORT's QDQ output than FP32 is")
        XCTAssertEqual(Double(correct), 629, accuracy: 4)
    }
}
