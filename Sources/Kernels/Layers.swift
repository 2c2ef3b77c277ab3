import ONNX

/// What the runtime can tell about a node without running it: whether it has a precision
/// choice (INT8 or FP32), its weight count, and its multiply-accumulates for given shapes.
public enum Layers {
    /// Ops with an INT8 implementation when their weight operand is constant.
    public static let quantizableOps: Set<String> = ["Conv", "ConvTranspose", "Gemm", "MatMul"]

    /// True when the node can run in INT8: a quantizable op with a constant weight (input 1).
    public static func isQuantizable(_ node: Node, constants: [String: Tensor]) -> Bool {
        guard quantizableOps.contains(node.opType), let w = node.input(1), let t = constants[w] else { return false }
        if node.opType == "Gemm" && node.int("transA", default: 0) != 0 { return false }
        if node.opType == "MatMul" && t.rank != 2 { return false }
        return t.dtype == .float32
    }

    /// Weight values held in constant inputs.
    public static func parameterCount(_ node: Node, constants: [String: Tensor]) -> Int {
        node.inputs.compactMap { $0.isEmpty ? nil : constants[$0]?.count }.reduce(0, +)
    }

    /// Multiply-accumulates of one execution, from the input and output shapes seen.
    public static func macs(_ node: Node, inputShapes: [[Int]?], outputShapes: [[Int]]) -> Int {
        guard let out = outputShapes.first else { return 0 }
        let outCount = out.reduce(1, *)
        switch node.opType {
        case "Conv":
            guard inputShapes.count > 1, let w = inputShapes[1], w.count >= 2 else { return 0 }
            return outCount * w.dropFirst().reduce(1, *)          // Cin/group * prod(kernel)
        case "ConvTranspose":
            guard let x = inputShapes[0], inputShapes.count > 1, let w = inputShapes[1], w.count >= 2 else { return 0 }
            return x.reduce(1, *) * w.dropFirst().reduce(1, *)      // each input pixel scatters Cout/group * prod(kernel)
        case "Gemm":
            guard let a = inputShapes[0], a.count == 2 else { return 0 }
            let k = node.int("transA", default: 0) == 1 ? a[0] : a[1]
            return outCount * k
        case "MatMul":
            guard let a = inputShapes[0], let k = a.last else { return 0 }
            return outCount * k
        default:
            return 0
        }
    }
}
