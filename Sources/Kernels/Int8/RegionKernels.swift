import CKernels
import ONNX

/// Fast forms of the `ort` scheme's region ops, bit for bit what the generic form (the FP32
/// op, then `requantize`) gives:
/// - a unary elementwise op whose input is requantized sees at most 256 distinct values, so
///   it is a 256-entry table, computed once per map by running the op itself on the grid
///   and requantizing (ONNX Runtime's QLinearSigmoid/QLinearLeakyRelu are tables too);
/// - Add and Mul of two same-shape tensors compute and requantize in one pass, without the
///   FP32 op's intermediate tensor.
/// Anything else (broadcasting, other ops, an input not on a grid) takes the generic form.
enum RegionKernels {
    static let tableOps: Set<String> = ["Sigmoid", "LeakyRelu", "Relu", "HardSigmoid", "HardSwish", "Tanh"]

    /// `path()` is read at every run, so changing the runtime's kernel path takes effect
    /// without re-applying the map (as for the INT8 layers).
    static func override(_ node: Node, session: Session, plan: QuantPlan, output q: ActivationQuant,
                         path: @escaping () -> KernelPath = { .auto }) throws -> NodeOverride? {
        if tableOps.contains(node.opType), let x = node.input(0), let qi = plan.requantized[x] {
            let grid = (0..<256).map { (Float($0) - Float(qi.zeroPoint)) * qi.scale + 0 }
            var ys = try session.runNode(node, inputs: [Tensor(shape: [256], floats: grid)])[0]
            requantize(&ys, q, path: .reference)
            let table = ys.floats
            return { inputs in
                guard let t = inputs.first ?? nil, t.dtype.isFloating else { throw OpError("\(node.opType) needs a float input") }
                return [lookup(t, table, qi, path: path())]
            }
        }
        if node.opType == "Add" || node.opType == "Mul", node.inputs.count == 2 {
            let isAdd = node.opType == "Add"
            return { inputs in
                guard let a = inputs[0], let b = inputs[1], a.dtype.isFloating, b.dtype.isFloating, a.shape == b.shape else {
                    var outs = try session.runNode(node, inputs: inputs)
                    requantize(&outs[0], q, path: path())
                    return outs
                }
                return [binary(a, b, isAdd: isAdd, q, path: path())]
            }
        }
        return nil
    }

    /// `table[q]` for every element, `q` recovered from the value on its input's grid
    /// (`mpq_lookup_u8grid_f32`: on the grid x = (q - z) * s exactly, so x / s rounds back to q - z).
    static func lookup(_ t: Tensor, _ table: [Float], _ qi: ActivationQuant, path: KernelPath) -> Tensor {
        var out = [Float](repeating: 0, count: t.floats.count)
        t.floats.withUnsafeBufferPointer { x in
            table.withUnsafeBufferPointer { tab in
                out.withUnsafeMutableBufferPointer { y in
                    mpq_lookup_u8grid_f32(path.c, x.baseAddress, x.count, qi.scale, qi.zeroPoint, tab.baseAddress, y.baseAddress)
                }
            }
        }
        return Tensor(shape: t.shape, floats: out, dtype: t.dtype)
    }

    /// `requantize(a op b)` in one pass (the same float operation as the FP32 op),
    /// `mpq_requantize_binary_f32`.
    static func binary(_ a: Tensor, _ b: Tensor, isAdd: Bool, _ q: ActivationQuant, path: KernelPath) -> Tensor {
        var out = [Float](repeating: 0, count: a.floats.count)
        a.floats.withUnsafeBufferPointer { pa in
            b.floats.withUnsafeBufferPointer { pb in
                out.withUnsafeMutableBufferPointer { y in
                    mpq_requantize_binary_f32(path.c, isAdd ? 0 : 1, pa.baseAddress, pb.baseAddress, pa.count, q.scale, q.zeroPoint,
                                              y.baseAddress)
                }
            }
        }
        return Tensor(shape: a.shape, floats: out, dtype: a.dtype)
    }
}
