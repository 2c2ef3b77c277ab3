import ONNX

/// What the runtime can tell about a node without running it: whether it has a precision
/// choice (INT8 or FP32), its weight count, and its multiply-accumulates for given shapes.
public enum Layers {
    /// Ops with an INT8 implementation (the op types of `Int8Ops.families`).
    public static var quantizableOps: Set<String> { Int8Ops.families.reduce(into: Set<String>()) { $0.formUnion($1.opTypes) } }

    /// True when the node can run in INT8: an INT8 op family accepts it (`Int8Ops`), which
    /// is exactly what `MixedPrecisionRuntime` prepares.
    public static func isQuantizable(_ node: Node, constants: [String: Tensor]) -> Bool {
        Int8Ops.family(for: node, constants: constants) != nil
    }

    /// True for a MatMul of two activations (attention's Q·Kᵀ and probabilities·V): neither
    /// input is a constant. Both are quantized per tensor (`QuantizedActivationMatMul`); the
    /// kernel checks at run time that they are float tensors of rank >= 2.
    public static func isActivationMatMul(_ node: Node, constants: [String: Tensor]) -> Bool {
        node.opType == "MatMul" && ActivationMatMulFamily.accepts(node, constants: constants)
    }

    static let macsCeiling = 1 << 50

    /// Weight values held in constant inputs.
    public static func parameterCount(_ node: Node, constants: [String: Tensor]) -> Int {
        node.inputs.compactMap { $0.isEmpty ? nil : constants[$0]?.count }.reduce(0, +)
    }

    /// Multiply-accumulates of one execution, from the input and output shapes seen (the
    /// INT8 op families know theirs; other ops count 0). Products saturate at
    /// `macsCeiling` (a count no real layer reaches), so a malformed model cannot trap here
    /// and `inspect`'s totals over many nodes cannot overflow either.
    public static func macs(_ node: Node, inputShapes: [[Int]?], outputShapes: [[Int]]) -> Int {
        Int8Ops.macs(node, inputShapes: inputShapes, outputShapes: outputShapes)
    }
}
