import ONNX

/// What the runtime can tell about a node without running it: whether it has a precision
/// choice (INT8 or FP32), its weight count, and its multiply-accumulates for given shapes.
public enum Layers {
    /// Ops with an INT8 implementation when their weight operand is constant.
    public static let quantizableOps: Set<String> = ["Conv", "ConvTranspose", "Gemm", "MatMul"]

    /// True when the node can run in INT8: a quantizable op with a constant float weight
    /// (input 1) in a form the INT8 kernels implement. Must agree with what
    /// `MixedPrecisionRuntime` prepares.
    public static func isQuantizable(_ node: Node, constants: [String: Tensor]) -> Bool {
        if isActivationMatMul(node, constants: constants) { return true }
        guard quantizableOps.contains(node.opType), let w = node.input(1), let t = constants[w],
              t.dtype == .float32 else { return false }
        switch node.opType {
        case "Conv":
            return t.rank == 3 || t.rank == 4
        case "ConvTranspose":
            return t.rank >= 3 && t.rank <= 5
        case "Gemm":
            guard node.int("transA", default: 0) == 0, t.rank == 2 else { return false }
            let n = node.int("transB", default: 0) == 1 ? t.shape[0] : t.shape[1]
            guard let c = node.input(2) else { return true }
            guard let ct = constants[c] else { return false }
            return ct.count == n || ct.count == 1
        case "MatMul":
            return t.rank == 2
        default:
            return false
        }
    }

    /// True for a MatMul of two activations (attention's Q·Kᵀ and probabilities·V): neither
    /// input is a constant. Both are quantized per tensor (`QuantizedActivationMatMul`); the
    /// kernel checks at run time that they are float tensors of rank >= 2.
    public static func isActivationMatMul(_ node: Node, constants: [String: Tensor]) -> Bool {
        guard node.opType == "MatMul", let a = node.input(0), let b = node.input(1) else { return false }
        return constants[a] == nil && constants[b] == nil
    }

    static let macsCeiling = 1 << 50

    /// Weight values held in constant inputs.
    public static func parameterCount(_ node: Node, constants: [String: Tensor]) -> Int {
        node.inputs.compactMap { $0.isEmpty ? nil : constants[$0]?.count }.reduce(0, +)
    }

    /// Multiply-accumulates of one execution, from the input and output shapes seen.
    /// Products saturate at 2^50 (a count no real layer reaches), so a malformed model
    /// cannot trap here and `inspect`'s totals over many nodes cannot overflow either.
    public static func macs(_ node: Node, inputShapes: [[Int]?], outputShapes: [[Int]]) -> Int {
        guard let out = outputShapes.first else { return 0 }
        func product<C: Collection>(_ dims: C) -> Int where C.Element == Int {
            dims.reduce(1) { acc, d in
                let (p, overflow) = acc.multipliedReportingOverflow(by: Swift.max(d, 0))
                return overflow ? Layers.macsCeiling : Swift.min(p, Layers.macsCeiling)
            }
        }
        let outCount = product(out)
        func times(_ a: Int, _ b: Int) -> Int { product([a, b]) }
        switch node.opType {
        case "Conv":
            guard inputShapes.count > 1, let w = inputShapes[1], w.count >= 2 else { return 0 }
            return times(outCount, product(w.dropFirst()))          // Cin/group * prod(kernel)
        case "ConvTranspose":
            guard let x = inputShapes[0], inputShapes.count > 1, let w = inputShapes[1], w.count >= 2 else { return 0 }
            return times(product(x), product(w.dropFirst()))      // each input pixel scatters Cout/group * prod(kernel)
        case "Gemm":
            guard let a = inputShapes[0], a.count == 2 else { return 0 }
            let k = node.int("transA", default: 0) == 1 ? a[0] : a[1]
            return times(outCount, k)
        case "MatMul":
            guard let a = inputShapes[0], let k = a.last else { return 0 }
            return times(outCount, k)
        default:
            return 0
        }
    }
}
