import ONNX

/// One INT8 op family: everything mpq knows about running a node of it in INT8, in one
/// place (ONNX Runtime keeps the same kind of table in `quantization/registry.py`). The
/// runtime prepares layers through it, calibration asks it which tensors to calibrate,
/// `inspect` and the objectives ask it for MACs, and the QDQ export writes the numbers the
/// prepared layer itself computed (`QuantizedLayer.qdq`), so export equals runtime by
/// construction. A new INT8 op is one file with its layer and its family, plus one entry
/// in `Int8Ops.families`.
public protocol Int8OpFamily {
    /// ONNX op types the family covers.
    static var opTypes: Set<String> { get }
    /// Whether this node fits the family's kernels (a constant float weight of a supported
    /// shape, for the weighted layers).
    static func accepts(_ node: Node, constants: [String: Tensor]) -> Bool
    /// Whether ONNX Runtime fuses this node's QDQ form only when a QuantizeLinear follows it
    /// (DQ -> Conv -> Q becomes QLinearConv; DQ -> Conv alone stays a float Conv on
    /// dequantized weights). Under the `ort` scheme such a layer requantizes its output
    /// whatever reads it (`QuantPlan`, rule 4), so its FP32 readers get DequantizeLinear of
    /// uint8 codes and ORT runs exactly mpq's arithmetic. False where ORT fuses without an
    /// output Q (a plain Gemm -> QGemm with a float output, MatMul -> MatMulIntegerToFloat)
    /// and where it never fuses (ConvTranspose): those keep a float output for float readers.
    static func fusesOnlyWithOutputQuantize(_ node: Node) -> Bool
    /// The activation inputs the layer quantizes on entry, in input order.
    static func quantizedInputs(_ node: Node, constants: [String: Tensor]) -> [String]
    /// Multiply-accumulates of one execution, from the shapes seen.
    static func macs(_ node: Node, inputShapes: [[Int]?], outputShapes: [[Int]]) -> Int
    /// The layer prepared once: weights quantized to `weightBits` and packed, bias quantized.
    /// `inputs` are the parameters of `quantizedInputs`, in the same order.
    static func prepare(_ node: Node, constants: [String: Tensor], inputs: [ActivationQuant],
                        weightBits: WeightBits) throws -> QuantizedLayer
}

/// The registry of INT8 op families.
public enum Int8Ops {
    /// In match order: a MatMul of two activations before a MatMul with a weight.
    public static let families: [Int8OpFamily.Type] = [
        ActivationMatMulFamily.self, ConvFamily.self, ConvTransposeFamily.self, LinearFamily.self,
    ]

    /// The family that runs `node` in INT8, if any.
    public static func family(for node: Node, constants: [String: Tensor]) -> Int8OpFamily.Type? {
        guard node.input(0) != nil else { return nil }
        return families.first { $0.opTypes.contains(node.opType) && $0.accepts(node, constants: constants) }
    }

    /// MACs of any node (0 for ops no family covers).
    public static func macs(_ node: Node, inputShapes: [[Int]?], outputShapes: [[Int]]) -> Int {
        guard let f = families.first(where: { $0.opTypes.contains(node.opType) }) else { return 0 }
        return f.macs(node, inputShapes: inputShapes, outputShapes: outputShapes)
    }
}

/// The product of `dims`, saturating at `Layers.macsCeiling` (negative dims count as 0):
/// MAC counts of malformed shapes can neither trap nor overflow a total.
func saturatingProduct<C: Collection>(_ dims: C) -> Int where C.Element == Int {
    dims.reduce(1) { acc, d in
        let (p, overflow) = acc.multipliedReportingOverflow(by: Swift.max(d, 0))
        return overflow ? Layers.macsCeiling : Swift.min(p, Layers.macsCeiling)
    }
}

/// A constant float weight in input 1, when there is one.
func constantWeight(_ node: Node, _ constants: [String: Tensor]) -> Tensor? {
    guard let w = node.input(1), let t = constants[w], t.dtype == .float32 else { return nil }
    return t
}

/// The int32 bias of a QDQ export and its scales, `s_x * s_w[c]` (the same numbers the
/// layer's epilogue uses).
func qdqBias(_ bias: [Float]?, inputScale: Float, epilogueScales: [Float], layer: String) throws -> ([Int32]?, [Float]?) {
    guard let bias else { return (nil, nil) }
    guard bias.count == epilogueScales.count else {
        throw QuantizationError.notQuantizable(layer: layer, opType: "", reason: "\(bias.count) bias values for \(epilogueScales.count) output channels")
    }
    let scales = epilogueScales.map { inputScale * $0 }
    guard scales.allSatisfy({ $0 > 0 }) else {
        throw QuantizationError.notQuantizable(layer: layer, opType: "", reason: "bias scale s_x * s_w is zero")
    }
    return (quantizedBiasInt32(bias, inputScale: inputScale, weightScales: epilogueScales), scales)
}
