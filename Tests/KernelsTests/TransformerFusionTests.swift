import CKernels
import XCTest
@testable import Kernels
import ONNX

/// The run-time transformer fusions (`TransformerFusion`, mpq_fused.h): found where the
/// chain is, bit for bit the unfused run on every kernel path, off when an intermediate is
/// asked for, and applied between the INT8 runtime's layers too.
final class TransformerFusionTests: XCTestCase {
    /// An encoder-like block with widths that are no multiple of 8 (the kernels' tails):
    /// bias + erf GELU, bias + residual + LayerNorm, scale + broadcast mask + Softmax.
    func blockGraph(d: Int, f: Int) -> Graph {
        var rng = TestRNG(seed: 5)
        func t(_ shape: [Int], _ s: Float) -> Tensor {
            Tensor(shape: shape, floats: (0..<shape.reduce(1, *)).map { _ in rng.float(-s...s) })
        }
        func c(_ v: Float) -> Tensor { Tensor(shape: [], floats: [v]) }
        return Graph(nodes: [
            Node(name: "fc1", opType: "MatMul", inputs: ["x", "w1"], outputs: ["m1"]),
            Node(name: "fc1_bias", opType: "Add", inputs: ["b1", "m1"], outputs: ["h"]),
            Node(name: "gelu_div", opType: "Div", inputs: ["h", "sqrt2"], outputs: ["d"]),
            Node(name: "gelu_erf", opType: "Erf", inputs: ["d"], outputs: ["e"]),
            Node(name: "gelu_add", opType: "Add", inputs: ["e", "one"], outputs: ["a"]),
            Node(name: "gelu_mul", opType: "Mul", inputs: ["h", "a"], outputs: ["g"]),
            Node(name: "gelu_half", opType: "Mul", inputs: ["g", "half"], outputs: ["act"]),
            Node(name: "fc2", opType: "MatMul", inputs: ["act", "w2"], outputs: ["m2"]),
            Node(name: "fc2_bias", opType: "Add", inputs: ["m2", "b2"], outputs: ["h2"]),
            Node(name: "residual", opType: "Add", inputs: ["h2", "x"], outputs: ["r"]),
            Node(name: "ln", opType: "LayerNormalization", inputs: ["r", "gamma", "beta"], outputs: ["n"],
                 attributes: ["axis": .int(-1), "epsilon": .float(1e-12)]),
            Node(name: "kt", opType: "Transpose", inputs: ["n"], outputs: ["nt"], attributes: ["perm": .ints([0, 2, 1])]),
            Node(name: "scores", opType: "MatMul", inputs: ["n", "nt"], outputs: ["s"]),
            Node(name: "scale", opType: "Mul", inputs: ["s", "inv_sqrt_d"], outputs: ["ss"]),
            Node(name: "masked", opType: "Add", inputs: ["ss", "mask"], outputs: ["sm"]),
            Node(name: "softmax", opType: "Softmax", inputs: ["sm"], outputs: ["p"], attributes: ["axis": .int(-1)]),
            Node(name: "context", opType: "MatMul", inputs: ["p", "n"], outputs: ["y"]),
        ], initializers: ["w1": t([d, f], 0.5), "b1": t([f], 1), "sqrt2": c(1.4142135), "one": c(1), "half": c(0.5),
                          "w2": t([f, d], 0.3), "b2": t([d], 0.5), "gamma": t([d], 1.5), "beta": t([d], 0.2),
                          "inv_sqrt_d": c(1 / Float(d).squareRoot())],
           inputs: [ValueInfo(name: "x", dtype: .float32, shape: [nil, nil, d]),
                    ValueInfo(name: "mask", dtype: .float32, shape: [nil, 1, nil])],
           outputs: [ValueInfo(name: "y", dtype: .float32, shape: nil)], opsets: ["": 17])
    }

    func feeds(n: Int, l: Int, d: Int, seed: UInt64) -> [String: Tensor] {
        var rng = TestRNG(seed: seed)
        let x = Tensor(shape: [n, l, d], floats: (0..<n * l * d).map { _ in rng.float(-3...3) })
        // The PyTorch export's additive mask: 0 where attended, finfo(float32).min on padding.
        let mask = Tensor(shape: [n, 1, l], floats: (0..<n * l).map { i in i % l < l - (i / l) % 3 ? 0 : -Float.greatestFiniteMagnitude })
        return ["x": x, "mask": mask]
    }

    func testFindsTheThreeChains() throws {
        let session = try Session(graph: blockGraph(d: 20, f: 44))
        let kinds = session.transformerFusions.values.sorted { $0.nodes[0] < $1.nodes[0] }.map(\.kind)
        XCTAssertEqual(kinds, [.gelu(bias: "b1", div: 1.4142135, add: 1, mul: 0.5),
                               .layerNorm(bias: "b2", residual: "x", scale: "gamma", beta: "beta", epsilon: 1e-12),
                               .softmax(scale: 1 / Float(20).squareRoot(), divide: false, mask: "mask")])
        XCTAssertEqual(session.transformerFusions.values.map(\.names.count).sorted(), [3, 3, 6])
    }

    func testFusedRunIsTheUnfusedRunBitForBit() throws {
        let (d, f) = (20, 44)
        let session = try Session(graph: blockGraph(d: d, f: f))
        // Batch 1 of 5 tokens runs on one thread; 3 x 40 tokens splits rows over the cores.
        for (n, l) in [(1, 5), (3, 40), (2, 9)] {
            let x = feeds(n: n, l: l, d: d, seed: UInt64(n * 100 + l))
            for path in [MPQ_PATH_REFERENCE, MPQ_PATH_AUTO] {
                XCTAssertEqual(mpq_set_kernel_path(path), 0)
                defer { mpq_set_kernel_path(MPQ_PATH_AUTO) }
                let before = session.fusedChainsRun
                let fused = try session.run(x)["y"]!
                XCTAssertEqual(session.fusedChainsRun - before, 3, "n \(n) l \(l)")
                let plain = try session.run(x, keep: [], fusing: false, observer: nil)["y"]!
                XCTAssertEqual(session.fusedChainsRun - before, 3, "an unfused run fuses nothing")
                XCTAssertEqual(fused.shape, [n, l, d])
                XCTAssertEqual(fused.floats.map(\.bitPattern), plain.floats.map(\.bitPattern), "n \(n) l \(l) path \(path.rawValue)")
                XCTAssertFalse(fused.floats.contains { !$0.isFinite })
                // Asking for an intermediate turns that chain off, with the same values.
                let kept = try session.run(x, keep: ["e", "r"])
                XCTAssertEqual(session.fusedChainsRun - before, 4, "only the softmax chain fuses")
                XCTAssertNotNil(kept["e"]); XCTAssertNotNil(kept["r"])
                XCTAssertEqual(kept["y"]!.floats.map(\.bitPattern), plain.floats.map(\.bitPattern))
            }
        }
    }

    /// The profiler runs the chains fused and puts their time on the anchor node.
    func testProfileTimesTheChainOnItsAnchor() throws {
        let session = try Session(graph: blockGraph(d: 20, f: 44))
        let profile = try session.profile(feeds(n: 2, l: 9, d: 20, seed: 1), runs: 1)
        let timed = Set(profile.filter { $0.seconds > 0 }.map(\.name))
        XCTAssertTrue(timed.isSuperset(of: ["gelu_erf", "ln", "softmax"]))
        XCTAssertTrue(timed.isDisjoint(with: ["fc1_bias", "gelu_div", "gelu_add", "gelu_mul", "gelu_half", "fc2_bias",
                                              "residual", "scale", "masked"]), "\(timed)")
    }

    /// The ORT-recorded text encoder fixture (optimized as the CLI loads it): the chains are
    /// found per layer (GELU; attention with Div scaling and the mask broadcast over heads and
    /// query rows), the fused run is the unfused run bit for bit, in FP32 and all-INT8
    /// under the `ort` scheme (the chains run between INT8 MatMuls).
    func testTextEncoderFP32AndInt8() throws {
        let graph = GraphPasses.optimize(try ModelLoader.load(path: FixturePaths.path("text_encoder.onnx")))
        let session = try Session(graph: graph)
        let kinds = session.transformerFusions.values.map { f -> String in
            switch f.kind { case .gelu: "gelu"; case .softmax: "softmax"; case .layerNorm: "layernorm" }
        }
        let count = Dictionary(kinds.map { ($0, 1) }, uniquingKeysWith: +)
        let layers = graph.nodes.filter { $0.opType == "Softmax" }.count
        XCTAssertGreaterThan(layers, 0)
        XCTAssertEqual(count["gelu"], layers, "\(count)")
        XCTAssertEqual(count["softmax"], layers, "\(count)")
        XCTAssertNil(count["layernorm"], "the fixture's LayerNorms are decomposed (ReduceMean, Sub, Pow...)")
        // Q, K, V, and the attention-output and FFN-output projections (whose residual Adds
        // feed decomposed LayerNorms here).
        XCTAssertEqual(session.biasAddFusions.count, 5 * layers)
        let chains = kinds.count + session.biasAddFusions.count

        let data = try Dataset(path: FixturePaths.path("text_encoder_holdout.npz"), graph: graph)
        let batch = data.batch(0..<min(16, data.count))
        let before = session.fusedChainsRun
        let fused = try session.run(batch)["logits"]!
        XCTAssertEqual(session.fusedChainsRun - before, chains)
        let plain = try session.run(batch, keep: [], fusing: false, observer: nil)["logits"]!
        XCTAssertEqual(fused.floats.map(\.bitPattern), plain.floats.map(\.bitPattern))

        var ranges: [String: CalibrationTable.Range] = [:]
        for (name, t) in try session.fp32Activations(batch) where t.dtype.isFloating && !t.floats.isEmpty {
            ranges[name] = CalibrationTable.Range(min: t.floats.min()!, max: t.floats.max()!)
        }
        let table = CalibrationTable(method: "minmax", modelDigest: "test", samples: 16, ranges: ranges)
        let runtime = try MixedPrecisionRuntime(session: session, calibration: table, scheme: .ort)
        try runtime.apply(runtime.allInt8)
        XCTAssertFalse(session.overrides.isEmpty)
        let int8Before = session.fusedChainsRun
        let int8 = try session.run(batch)["logits"]!
        XCTAssertEqual(session.fusedChainsRun - int8Before, chains, "every chain fuses under INT8 too")
        let int8Plain = try session.run(batch, keep: [], fusing: false, observer: nil)["logits"]!
        XCTAssertEqual(int8.floats.map(\.bitPattern), int8Plain.floats.map(\.bitPattern))
        XCTAssertNotEqual(int8.floats, fused.floats, "INT8 differs from FP32")
    }

    /// The one-pass GELU row kernel against the unfused ops it stands for (float Add of the
    /// bias, Div, the Erf kernel mpq_erf_f32, Add, Mul, Mul), bit for bit, on the reference and
    /// the AVX2 path, and the AVX-512 row on the VNNI path: every width from 1 to 40 (the 16-
    /// and 32-wide steps, the 8-wide step and each tail), widths around the AVX2 row's blocks of
    /// 128 (its five passes, then whole vectors, then the tail) and MiniLM's 1536, with and
    /// without a bias, on both erf branches, +-inf and NaN.
    func testGeluRowKernelIsTheUnfusedOpsAtEveryWidth() {
        var rng = TestRNG(seed: 43)
        let (div, add, mul): (Float, Float, Float) = (1.4142135, 1, 0.5)
        for path in [MPQ_PATH_REFERENCE, MPQ_PATH_AVX2, MPQ_PATH_VNNI] where mpq_kernel_path_available(path) != 0 {
            for cols in Array(1...40) + [127, 128, 143, 263, 1536] {
                let rows = 3
                var x = (0..<rows * cols).map { _ in rng.float(-7...7) }
                if cols > 5 { x[1] = .infinity; x[2] = -.infinity; x[4] = .nan }
                let bias = (0..<cols).map { _ in rng.float(-1...1) }
                for b in [bias, nil] {
                    var y = [Float](repeating: 0, count: x.count)
                    (b ?? []).withUnsafeBufferPointer { pb in
                        mpq_bias_gelu_f32(path, x, rows, cols, b == nil ? nil : pb.baseAddress, div, add, mul, &y, 2)
                    }
                    let h = x.indices.map { b == nil ? x[$0] : x[$0] + b![$0 % cols] }
                    let q = h.map { $0 / div }
                    var e = [Float](repeating: 0, count: q.count)
                    mpq_erf_f32(path, q, q.count, &e, 1)
                    let want = h.indices.map { i -> UInt32 in
                        let s = e[i] + add
                        let p = h[i] * s
                        return (p * mul).bitPattern
                    }
                    XCTAssertEqual(y.map(\.bitPattern), want, "path \(path.rawValue) cols \(cols) bias \(b != nil)")
                }
            }
        }
    }
}

/// A Q/K/V-style projection (MatMul with a constant weight, bias Add, Reshape reading it):
/// in FP32 the bias goes into the packed GEMM's epilogue, with the bits of MatMul then Add.
final class BiasEpilogueTests: XCTestCase {
    func projectionGraph(d: Int, n: Int, biasFirst: Bool) -> Graph {
        var rng = TestRNG(seed: 11)
        func t(_ shape: [Int], _ s: Float) -> Tensor {
            Tensor(shape: shape, floats: (0..<shape.reduce(1, *)).map { _ in rng.float(-s...s) })
        }
        return Graph(nodes: [
            Node(name: "proj", opType: "MatMul", inputs: ["x", "w"], outputs: ["m"]),
            Node(name: "proj_bias", opType: "Add", inputs: biasFirst ? ["b", "m"] : ["m", "b"], outputs: ["h"]),
            Node(name: "heads", opType: "Reshape", inputs: ["h", "shape"], outputs: ["y"]),
        ], initializers: ["w": t([d, n], 0.5), "b": t([n], 2), "shape": Tensor(shape: [3], ints: [0, 0, -1])],
           inputs: [ValueInfo(name: "x", dtype: .float32, shape: [nil, nil, d])],
           outputs: [ValueInfo(name: "y", dtype: .float32, shape: nil)], opsets: ["": 17])
    }

    func testBiasInTheEpilogueIsMatMulThenAddBitForBit() throws {
        // 384 x 200 weights (76,800 elements) run on the packed GEMM at any row count; 200
        // columns end in a partial 64-column panel and a partial vector.
        for biasFirst in [true, false] {
            let session = try Session(graph: projectionGraph(d: 384, n: 200, biasFirst: biasFirst))
            XCTAssertEqual(session.biasAddFusions.count, 1)
            for (batch, tokens) in [(1, 1), (2, 7), (4, 128)] {
                var rng = TestRNG(seed: UInt64(batch * 1000 + tokens))
                let x = Tensor(shape: [batch, tokens, 384], floats: (0..<batch * tokens * 384).map { _ in rng.float(-2...2) })
                for path in [MPQ_PATH_REFERENCE, MPQ_PATH_AUTO] {
                    XCTAssertEqual(mpq_set_kernel_path(path), 0)
                    defer { mpq_set_kernel_path(MPQ_PATH_AUTO) }
                    let before = session.biasEpilogueRuns
                    let fused = try session.run(["x": x])["y"]!
                    XCTAssertEqual(session.biasEpilogueRuns - before, 1, "batch \(batch) tokens \(tokens)")
                    let plain = try session.run(["x": x], keep: [], fusing: false, observer: nil)["y"]!
                    XCTAssertEqual(session.biasEpilogueRuns - before, 1, "an unfused run adds the bias as an Add")
                    XCTAssertEqual(fused.shape, [batch, tokens, 200])
                    XCTAssertEqual(fused.floats.map(\.bitPattern), plain.floats.map(\.bitPattern),
                                   "batch \(batch) tokens \(tokens) path \(path.rawValue) bias first \(biasFirst)")
                    // Asking for the product itself leaves the Add to run on its own.
                    let kept = try session.run(["x": x], keep: ["m"])
                    XCTAssertEqual(session.biasEpilogueRuns - before, 1)
                    XCTAssertEqual(kept["y"]!.floats.map(\.bitPattern), plain.floats.map(\.bitPattern))
                }
            }
        }
    }
}
