import CKernels
import ONNX

/// INT8 Gemm (transA = 0) and MatMul with a constant 2-D weight: the activation [M, K]
/// (MatMul: any leading dims folded into M) is quantized to uint8, the weight is int8 per
/// output column, one u8 x s8 GEMM with the fused epilogue gives the float output.
/// Gemm's alpha folds into the weight scales, beta * C into the int32 bias.
final class QuantizedLinear: QuantizedLayer {
    let node: Node
    let inputQuant: ActivationQuant
    let weightScales: [Float]
    private let epilogueScales: [Float]
    private let packed: PackedWeights
    private let bias: [Float]?
    private let floatBias: [Float]?    // beta * C as in the model, for requantization
    private let n: Int, k: Int
    private let clamp: (Float, Float)
    /// The int8 weight rows [n][k] (one per output column), kept for the QDQ export.
    private let weightRows: [Int8]
    private let weightShape: [Int]
    private let transB: Bool
    private let beta: Float

    init(node: Node, weight w: Tensor, bias c: Tensor?, inputQuant: ActivationQuant, weightBits: WeightBits = .eight) throws {
        guard w.rank == 2 else {
            throw QuantizationError.notQuantizable(layer: node.name, opType: node.opType, reason: "the weight must be 2-D, it is \(Tensor.describe(w.shape))")
        }
        self.node = node
        self.inputQuant = inputQuant
        let isGemm = node.opType == "Gemm"
        let transB = isGemm && node.int("transB", default: 0) == 1
        let (rows, n, k) = WeightLayout.linearRows(w, transB: transB)
        self.n = n; self.k = k
        let qw = QuantizedWeights(rows: rows, channels: n, bits: weightBits)
        weightScales = qw.scales
        let alpha = isGemm ? node.float("alpha", default: 1) : 1
        epilogueScales = qw.scales.map { $0 * alpha }
        packed = PackedWeights(rows: qw.values, n: n, k: k)
        weightRows = qw.values
        weightShape = w.shape
        self.transB = transB
        self.beta = isGemm ? node.float("beta", default: 1) : 1
        if let c {
            guard c.count == n || c.count == 1 else {
                throw QuantizationError.notQuantizable(layer: node.name, opType: node.opType,
                                                       reason: "bias C \(Tensor.describe(c.shape)) is not per output column (\(n))")
            }
            let beta = node.float("beta", default: 1)
            let full = c.count == n ? c.floats : [Float](repeating: c.floats[0], count: n)
            bias = quantizedBias(full.map { $0 * beta }, inputScale: inputQuant.scale, weightScales: epilogueScales)
            floatBias = full.map { $0 * beta }
        } else {
            bias = nil
            floatBias = nil
        }
        clamp = clampBounds(node)
    }

    func run(_ inputs: [Tensor?], path: KernelPath) throws -> [Tensor] {
        try run(inputs, path: path, requant: nil)
    }

    func run(_ inputs: [Tensor?], path: KernelPath, output: ActivationQuant) throws -> [Tensor] {
        try run(inputs, path: path, requant: requantization(output))
    }

    var readsCodes: Bool { true }

    func runWritingCodes(_ inputs: [Tensor?], path: KernelPath, output: ActivationQuant) throws -> [Tensor] {
        try run(inputs, path: path, requant: requantization(output), writeCodes: true)
    }

    private let engineNote = EngineNote()
    private let requantCache = RequantCache()

    /// The requantizing epilogue for `output` (cached: the same values on every call).
    private func requantization(_ output: ActivationQuant) -> Requantization {
        requantCache.get(output) { Requantization(inputScale: inputQuant.scale, weightScales: epilogueScales, bias: floatBias, output: output) }
    }
    var engine: String? { engineNote.value }

    private func run(_ inputs: [Tensor?], path: KernelPath, requant: Requantization?, writeCodes: Bool = false) throws -> [Tensor] {
        guard let a = inputs.first ?? nil, a.dtype.isFloating, a.rank >= 1, a.shape.last == k else {
            throw OpError("INT8 \(node.opType) needs a float input whose last dimension is \(k)")
        }
        if node.opType == "Gemm" && a.rank != 2 { throw OpError("Gemm input A must be 2-D, got \(Tensor.describe(a.shape))") }
        let m = a.count / k
        // Input codes on this layer's grid are the quantized input itself (docs/int8-chains.md).
        var q = a.codes(on: inputQuant) ?? []
        if q.count != a.count {
            let floats = a.materialized().floats
            // Every code is written by the quantizer: no zero-fill first (a pass over the batch).
            q = uninitializedArray(count: a.count) { py in
                floats.withUnsafeBufferPointer { px in quantizeU8Split(px, inputQuant, path: path, into: py) }
            }
        }
        let codesOut = writeCodes && requant != nil
        // The GEMM writes every output element (or fails and the layer throws), so the
        // outputs are not zero-filled first: at batch 16 that was a single-threaded memset of
        // up to 12 MB per layer.
        var out = uninitializedArray(count: codesOut ? 0 : m * n, of: Float.self)
        var outCodes = uninitializedArray(count: codesOut ? m * n : 0, of: UInt8.self)
        let multipliers = requant?.multipliers ?? [], biasInt = requant?.biasInt ?? []
        let status: Int32 = epilogueScales.withUnsafeBufferPointer { ps in
            multipliers.withUnsafeBufferPointer { pm in
            biasInt.withUnsafeBufferPointer { pbi in
            (bias ?? []).withUnsafeBufferPointer { pb in
                q.withUnsafeBufferPointer { pq in
                    var ep = layerEpilogue(input: inputQuant, scales: ps, bias: bias == nil ? nil : pb, clamp: clamp,
                                           requant: requant, multipliers: pm, biasInt: pbi)
                    if codesOut, let r = requant {
                        return outCodes.withUnsafeMutableBufferPointer { pc in
                            mpq_qgemm_u8s8_u8(path.c, Int32(m), Int32(n), Int32(k), pq.baseAddress, Int32(k), packed.pointer, &ep,
                                              pc.baseAddress, Int32(n), r.output.zeroPoint, 0, gemmThreads(m: m, n: n, k: k))
                        }
                    }
                    return out.withUnsafeMutableBufferPointer { po in
                        mpq_qgemm_u8s8_f32(path.c, Int32(m), Int32(n), Int32(k), pq.baseAddress, Int32(k),
                                           packed.pointer, &ep, po.baseAddress, Int32(n), gemmThreads(m: m, n: n, k: k))
                    }
                }
            }
            }
            }
        }
        if status != 0 { throw OpError("INT8 GEMM kernel rejected its arguments") }
        engineNote.set(EngineNote.current)
        let outShape = Array(a.shape.dropLast()) + [n]
        if codesOut, let r = requant {
            return [Tensor(shape: outShape, codes: QuantizedCodes(values: outCodes, scale: r.output.scale, zeroPoint: r.output.zeroPoint))]
        }
        return [Tensor(shape: outShape, floats: out)]
    }
}

extension QuantizedLinear {
    func qdq() throws -> QDQLayer {
        // The node's input 1 layout: [n][k] with transB (axis 0), else [k][n] (axis 1).
        var values = weightRows
        if !transB {
            values = [Int8](repeating: 0, count: n * k)
            for i in 0..<n { for j in 0..<k { values[j * n + i] = weightRows[i * k + j] } }
        }
        let (biasValues, biasScales) = try qdqBias(floatBias, inputScale: inputQuant.scale, epilogueScales: epilogueScales,
                                                   layer: node.name)
        // beta is folded into the int32 bias: the exported Gemm must not apply it again.
        let attributes: [String: Attribute] = floatBias != nil && beta != 1 ? ["beta": .float(1)] : [:]
        return QDQLayer(node: node.name, activation: node.input(0) ?? "", activationScale: inputQuant.scale,
                        activationZeroPoint: inputQuant.zeroPoint, weightValues: values, weightShape: weightShape,
                        weightScales: weightScales, weightAxis: transB ? 0 : 1, biasValues: biasValues,
                        biasScales: biasScales, attributes: attributes)
    }
}

/// Gemm (transA = 0, bias per output column or scalar) and MatMul with a constant 2-D weight.
public enum LinearFamily: Int8OpFamily {
    public static let opTypes: Set<String> = ["Gemm", "MatMul"]
    /// ORT fuses DQ -> Gemm into QGemm and DQ -> MatMul into MatMulIntegerToFloat without an
    /// output Q, but not with a Relu/Clip after it: ORT first fuses Gemm + Relu into a float
    /// FusedGemm, and MatMul -> Relu stays float, unless a Q follows the activation
    /// (ReluQuantFusion then drops it). Measured with onnxruntime 1.32 (docs/int8-chains.md).
    public static func fusesOnlyWithOutputQuantize(_ node: Node) -> Bool { FusedActivation(node: node) != nil }

    public static func accepts(_ node: Node, constants: [String: Tensor]) -> Bool {
        guard let t = constantWeight(node, constants), t.rank == 2 else { return false }
        guard node.opType == "Gemm" else { return true }
        guard node.int("transA", default: 0) == 0 else { return false }
        let n = node.int("transB", default: 0) == 1 ? t.shape[0] : t.shape[1]
        guard let c = node.input(2) else { return true }
        guard let ct = constants[c] else { return false }
        return ct.count == n || ct.count == 1
    }

    public static func quantizedInputs(_ node: Node, constants: [String: Tensor]) -> [String] {
        node.input(0).map { [$0] } ?? []
    }

    public static func macs(_ node: Node, inputShapes: [[Int]?], outputShapes: [[Int]]) -> Int {
        guard let out = outputShapes.first, let a = inputShapes.first ?? nil else { return 0 }
        if node.opType == "Gemm" {
            guard a.count == 2 else { return 0 }
            return saturatingProduct([saturatingProduct(out), node.int("transA", default: 0) == 1 ? a[0] : a[1]])
        }
        guard let k = a.last else { return 0 }
        return saturatingProduct([saturatingProduct(out), k])
    }

    public static func prepare(_ node: Node, constants: [String: Tensor], inputs: [ActivationQuant],
                               weightBits: WeightBits) throws -> QuantizedLayer {
        try QuantizedLinear(node: node, weight: constantWeight(node, constants)!,
                            bias: node.opType == "Gemm" ? node.input(2).flatMap { constants[$0] } : nil, inputQuant: inputs[0],
                            weightBits: weightBits)
    }
}
