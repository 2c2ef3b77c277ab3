import CKernels
import XCTest
@testable import Kernels
import ONNX

/// The INT8 transformer's codes shortcuts, each against the run without it, bit for bit:
/// Q, K and V quantizing their common input once (`SharedInputCodes`), the fused GELU
/// writing the FFN output projection's codes itself (`mpq_bias_gelu_u8`), and the fused
/// Softmax writing the probabilities · V MatMul's (`mpq_scaled_masked_softmax_u8`).
final class TransformerCodesTests: XCTestCase {
    func textEncoder() throws -> (Graph, Session, Dataset, CalibrationTable, Int) {
        let graph = GraphPasses.optimize(try ModelLoader.load(path: FixturePaths.path("text_encoder.onnx")))
        let session = try Session(graph: graph)
        let layers = graph.nodes.filter { $0.opType == "Softmax" }.count
        XCTAssertGreaterThan(layers, 0)
        let data = try Dataset(path: FixturePaths.path("text_encoder_holdout.npz"), graph: graph)
        var ranges: [String: CalibrationTable.Range] = [:]
        for (name, t) in try session.fp32Activations(data.batch(0..<min(16, data.count))) where t.dtype.isFloating && !t.floats.isEmpty {
            ranges[name] = CalibrationTable.Range(min: t.floats.min()!, max: t.floats.max()!)
        }
        let table = CalibrationTable(method: "minmax", modelDigest: "test", samples: 16, ranges: ranges)
        return (graph, session, data, table, layers)
    }

    /// Shared Q/K/V input codes == each layer quantizing its own, under both schemes and on
    /// every kernel path; two of the three quantize passes per attention layer are saved.
    func testSharedQuantizeIsTheUnsharedRunBitForBit() throws {
        let (_, session, data, table, layers) = try textEncoder()
        // Batch 1 stays on one thread; 16 rows split the quantizer over the cores.
        let batches = [data.batch(0..<1), data.batch(0..<min(16, data.count))]
        for scheme in [ExecutionScheme.ort, .inputs] {
            let runtime = try MixedPrecisionRuntime(session: session, calibration: table, scheme: scheme)
            for path in KernelPath.available {
                runtime.path = path
                for batch in batches {
                    runtime.geluWritesCodes = false
                    runtime.shareInputCodes = false
                    try runtime.apply(runtime.allInt8)
                    let plain = try session.run(batch)["logits"]!
                    XCTAssertEqual(runtime.sharedQuantizesSaved, 0)
                    runtime.shareInputCodes = true
                    try runtime.apply(runtime.allInt8)
                    runtime.resetSharedCount()
                    let shared = try session.run(batch)["logits"]!
                    XCTAssertEqual(runtime.sharedQuantizesSaved, 2 * layers, "\(scheme) \(path): K and V reuse Q's codes")
                    XCTAssertEqual(shared.floats.map(\.bitPattern), plain.floats.map(\.bitPattern), "\(scheme) \(path)")
                    // A second run (new activations, same names) does not reuse the first run's codes.
                    let again = try session.run(batch)["logits"]!
                    XCTAssertEqual(again.floats.map(\.bitPattern), plain.floats.map(\.bitPattern))
                }
            }
        }
    }

    /// The GELU writing its reader's codes == the GELU writing floats that the FFN output
    /// MatMul quantizes, on every kernel path, at batch 1 and 16; a kept GELU output (or the
    /// `inputs` scheme, or the chains off) writes floats as before.
    func testGeluWritingCodesIsTheFloatRunBitForBit() throws {
        let (graph, session, data, table, layers) = try textEncoder()
        let batches = [data.batch(0..<1), data.batch(0..<min(16, data.count))]
        let runtime = try MixedPrecisionRuntime(session: session, calibration: table, scheme: .ort)
        runtime.shareInputCodes = false
        runtime.softmaxWritesCodes = false    // the GELUs alone (the Softmaxes: the next test)
        for path in KernelPath.available {
            runtime.path = path
            for batch in batches {
                runtime.geluWritesCodes = false
                try runtime.apply(runtime.allInt8)
                XCTAssertTrue(session.chainOutputCodes.isEmpty)
                let plain = try session.run(batch)["logits"]!
                runtime.geluWritesCodes = true
                try runtime.apply(runtime.allInt8)
                XCTAssertEqual(session.chainOutputCodes.count, layers, "every FFN's GELU writes codes")
                let coded = try session.run(batch)["logits"]!
                XCTAssertEqual(coded.floats.map(\.bitPattern), plain.floats.map(\.bitPattern), "\(path)")
                // Keeping a GELU output: that chain writes floats, the value is the float GELU.
                let gelu = session.chainOutputCodes.keys.sorted()[0]
                let kept = try session.run(batch, keep: [gelu])
                XCTAssertEqual(kept["logits"]!.floats.map(\.bitPattern), plain.floats.map(\.bitPattern))
                XCTAssertNil(kept[gelu]!.codes, "a kept GELU output is floats")
            }
        }
        let inputs = try MixedPrecisionRuntime(session: session, calibration: table, scheme: .inputs)
        try inputs.apply(inputs.allInt8)
        XCTAssertTrue(session.chainOutputCodes.isEmpty, "the inputs scheme has no uint8 chains")
        _ = graph
    }

    /// mpq_bias_gelu_u8 == mpq_bias_gelu_f32 then mpq_quantize_u8, byte for byte: GELU on the
    /// reference and AVX2 paths, quantize on every path, widths 1-40 and MiniLM's 1536, with and
    /// without a bias, split over 1-3 threads, NaN and infinities among the inputs.
    func testGeluCodesKernelIsGeluThenQuantize() {
        var rng = TestRNG(seed: 41)
        let gelus = [MPQ_PATH_REFERENCE, MPQ_PATH_AUTO]
        let quantizers = [MPQ_PATH_REFERENCE, MPQ_PATH_AVX2, MPQ_PATH_VNNI].filter { mpq_kernel_path_available($0) != 0 }
        for cols in Array(1...40) + [1536] {
            let rows = cols == 1536 ? 64 : 7
            var x = (0..<rows * cols).map { _ in rng.float(-6...6) }
            x[0] = .nan; if x.count > 3 { x[1] = .infinity; x[2] = -.infinity }
            let bias = (0..<cols).map { _ in rng.float(-1...1) }
            for withBias in [false, true] {
                for g in gelus {
                    var y = [Float](repeating: 0, count: x.count)
                    bias.withUnsafeBufferPointer { pb in
                        mpq_bias_gelu_f32(g, x, rows, cols, withBias ? pb.baseAddress : nil, 1.4142135, 1, 0.5, &y, 1)
                    }
                    for q in quantizers {
                        var want = [UInt8](repeating: 0, count: x.count)
                        mpq_quantize_u8(q, y, y.count, 0.021, 3, &want)
                        for threads in [1, 2, 3] {
                            var got = [UInt8](repeating: 0xEE, count: x.count)
                            bias.withUnsafeBufferPointer { pb in
                                mpq_bias_gelu_u8(g, x, rows, cols, withBias ? pb.baseAddress : nil, 1.4142135, 1, 0.5,
                                                 q, 0.021, 3, &got, Int32(threads))
                            }
                            XCTAssertEqual(got, want, "cols \(cols) bias \(withBias) gelu \(g.rawValue) quantize \(q.rawValue) threads \(threads)")
                        }
                    }
                }
            }
        }
    }

    /// The Softmax writing its reader's codes (attention probabilities into the INT8 MatMul
    /// with V) == the Softmax writing floats that the MatMul quantizes, on every kernel path,
    /// at batch 1 and 16, with the GELUs on codes or not; a kept Softmax output is floats.
    func testSoftmaxWritingCodesIsTheFloatRunBitForBit() throws {
        let (_, session, data, table, layers) = try textEncoder()
        let batches = [data.batch(0..<1), data.batch(0..<min(16, data.count))]
        let runtime = try MixedPrecisionRuntime(session: session, calibration: table, scheme: .ort)
        let softmaxOutputs = Set(session.plan.filter { $0.opType == "Softmax" }.flatMap(\.outputs))
        XCTAssertEqual(softmaxOutputs.count, layers)
        for path in KernelPath.available {
            runtime.path = path
            for gelu in [false, true] {
                runtime.geluWritesCodes = gelu
                for batch in batches {
                    runtime.softmaxWritesCodes = false
                    try runtime.apply(runtime.allInt8)
                    XCTAssertTrue(softmaxOutputs.isDisjoint(with: session.chainOutputCodes.keys))
                    let plain = try session.run(batch)["logits"]!
                    runtime.softmaxWritesCodes = true
                    try runtime.apply(runtime.allInt8)
                    XCTAssertEqual(Set(session.chainOutputCodes.keys).intersection(softmaxOutputs), softmaxOutputs,
                                   "every attention Softmax writes its MatMul's codes")
                    let coded = try session.run(batch)["logits"]!
                    XCTAssertEqual(coded.floats.map(\.bitPattern), plain.floats.map(\.bitPattern), "\(path) gelu \(gelu)")
                    let probabilities = softmaxOutputs.sorted()[0]
                    let kept = try session.run(batch, keep: [probabilities])
                    XCTAssertEqual(kept["logits"]!.floats.map(\.bitPattern), plain.floats.map(\.bitPattern))
                    XCTAssertNil(kept[probabilities]!.codes, "a kept Softmax output is floats")
                }
            }
        }
        // With the attention MatMuls in FP32 the probabilities have no INT8 reader: floats.
        let noAttention = PrecisionMap(layers: Dictionary(uniqueKeysWithValues: runtime.layerNames.map { name in
            (name, runtime.layers[name] is QuantizedActivationMatMul ? Precision.fp32 : .int8)
        }))
        try runtime.apply(noAttention)
        XCTAssertTrue(softmaxOutputs.isDisjoint(with: session.chainOutputCodes.keys))
    }

    /// mpq_scaled_masked_softmax_u8 == mpq_scaled_masked_softmax_f32 then mpq_quantize_u8, byte
    /// for byte: the Softmax on the reference and AVX2 paths, quantize on every path, widths 1-40
    /// and MiniLM's 128, multiplied or divided, with and without a per-row mask, split over 1-3
    /// threads, NaN, infinities and the -3.4e38 of exported masks among the inputs.
    func testSoftmaxCodesKernelIsSoftmaxThenQuantize() {
        var rng = TestRNG(seed: 43)
        let softmaxes = [MPQ_PATH_REFERENCE, MPQ_PATH_AUTO]
        let quantizers = [MPQ_PATH_REFERENCE, MPQ_PATH_AVX2, MPQ_PATH_VNNI].filter { mpq_kernel_path_available($0) != 0 }
        for cols in Array(1...40) + [128] {
            let rows = cols == 128 ? 48 : 6
            var x = (0..<rows * cols).map { _ in rng.float(-8...8) }
            if cols > 3 { x[0] = .nan; x[cols + 1] = .infinity; x[2 * cols + 2] = -.infinity }
            // One mask row per 3 rows (a batch's key mask over its heads' rows), offsets per row.
            var mask = (0..<((rows + 2) / 3) * cols).map { _ in rng.float(0...1) < 0.2 ? Float(-3.4e38) : 0 }
            if !mask.isEmpty { mask[mask.count - 1] = -.infinity }
            let offsets = (0..<rows).map { ($0 / 3) * cols }
            for (scale, divide) in [(Float(0.125), Int32(0)), (Float(2.828427), Int32(1))] {
                for masked in [false, true] {
                    for s in softmaxes {
                        var y = [Float](repeating: 0, count: x.count)
                        mask.withUnsafeBufferPointer { pm in offsets.withUnsafeBufferPointer { po in
                            mpq_scaled_masked_softmax_f32(s, x, rows, cols, scale, divide, masked ? pm.baseAddress : nil,
                                                          po.baseAddress, &y, 1)
                        } }
                        for q in quantizers {
                            var want = [UInt8](repeating: 0, count: x.count)
                            mpq_quantize_u8(q, y, y.count, 0.0039, 2, &want)
                            for threads in [1, 2, 3] {
                                var got = [UInt8](repeating: 0xEE, count: x.count)
                                mask.withUnsafeBufferPointer { pm in offsets.withUnsafeBufferPointer { po in
                                    mpq_scaled_masked_softmax_u8(s, x, rows, cols, scale, divide, masked ? pm.baseAddress : nil,
                                                                 po.baseAddress, q, 0.0039, 2, &got, Int32(threads))
                                } }
                                XCTAssertEqual(got, want, "cols \(cols) divide \(divide) mask \(masked) softmax \(s.rawValue) quantize \(q.rawValue) threads \(threads)")
                            }
                        }
                    }
                }
            }
        }
    }
}
