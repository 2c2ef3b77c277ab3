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
/// Both fast forms also run on the uint8 chains (docs/int8-chains.md): inputs held as codes
/// are read as codes, and with `writeCodes` the output is written as codes.
enum RegionKernels {
    static let tableOps: Set<String> = ["Sigmoid", "LeakyRelu", "Relu", "HardSigmoid", "HardSwish", "Tanh"]

    /// Whether `override` gives `node` a fast form, which then reads inputs held as codes.
    static func hasFastForm(_ node: Node, plan: QuantPlan) -> Bool {
        if tableOps.contains(node.opType), let x = node.input(0), plan.requantized[x] != nil { return true }
        return (node.opType == "Add" || node.opType == "Mul") && node.inputs.count == 2
    }

    /// `path()` is read at every run, so changing the runtime's kernel path takes effect
    /// without re-applying the map (as for the INT8 layers). `counters`, when given, hears
    /// of every input read as codes and every output written as codes.
    static func override(_ node: Node, session: Session, plan: QuantPlan, output q: ActivationQuant,
                         path: @escaping () -> KernelPath = { .auto }, writeCodes: Bool = false,
                         counters: Int8ChainCounters? = nil) throws -> NodeOverride? {
        if tableOps.contains(node.opType), let x = node.input(0), let qi = plan.requantized[x] {
            let grid = (0..<256).map { (Float($0) - Float(qi.zeroPoint)) * qi.scale + 0 }
            var ys = try session.runNode(node, inputs: [Tensor(shape: [256], floats: grid)])[0]
            requantize(&ys, q, path: .reference)
            let table = ys.floats
            // The output codes of the table: on the grid, quantizing gives the codes back.
            var codeTable = [UInt8](repeating: 0, count: 256)
            table.withUnsafeBufferPointer { p in codeTable.withUnsafeMutableBufferPointer { quantizeU8(p, q, path: .reference, into: $0.baseAddress!) } }
            return { inputs in
                guard let t = inputs.first ?? nil, t.dtype.isFloating else { throw OpError("\(node.opType) needs a float input") }
                if let xs = t.codes(on: qi) {
                    counters?.codesRead += 1
                    if writeCodes {
                        counters?.codesWritten += 1
                        var ys = [UInt8](repeating: 0, count: xs.count)
                        xs.withUnsafeBufferPointer { px in codeTable.withUnsafeBufferPointer { pt in ys.withUnsafeMutableBufferPointer { py in
                            mpq_lookup_u8(px.baseAddress, px.count, pt.baseAddress, py.baseAddress)
                        } } }
                        return [Tensor(shape: t.shape, codes: QuantizedCodes(values: ys, scale: q.scale, zeroPoint: q.zeroPoint))]
                    }
                    return [Tensor(shape: t.shape, floats: xs.map { table[Int($0)] }, dtype: t.dtype)]
                }
                return [lookup(t.materialized(), table, qi, path: path())]
            }
        }
        if node.opType == "Add" || node.opType == "Mul", node.inputs.count == 2 {
            let isAdd = node.opType == "Add"
            return { inputs in
                guard let a = inputs[0], let b = inputs[1], a.dtype.isFloating, b.dtype.isFloating, a.shape == b.shape else {
                    var outs = try session.runNode(node, inputs: Session.materialized(inputs))
                    requantize(&outs[0], q, path: path())
                    return outs
                }
                if let ca = a.codes, let cb = b.codes, a.isCodesOnly, b.isCodesOnly {
                    counters?.codesRead += 2
                    let out = binary(ca, cb, isAdd: isAdd, q)
                    let t = Tensor(shape: a.shape, codes: out)
                    if writeCodes { counters?.codesWritten += 1; return [t] }
                    return [t.materialized()]
                }
                return [binary(a.materialized(), b.materialized(), isAdd: isAdd, q, path: path())]
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

    /// `binary` on inputs held as codes, writing codes (`mpq_requantize_binary_u8`: each
    /// input dequantized as its producer would have written it, then the same float
    /// operation and requantization).
    static func binary(_ a: QuantizedCodes, _ b: QuantizedCodes, isAdd: Bool, _ q: ActivationQuant) -> QuantizedCodes {
        var out = [UInt8](repeating: 0, count: a.values.count)
        a.values.withUnsafeBufferPointer { pa in
            b.values.withUnsafeBufferPointer { pb in
                out.withUnsafeMutableBufferPointer { y in
                    mpq_requantize_binary_u8(isAdd ? 0 : 1, pa.baseAddress, a.scale, a.zeroPoint, pb.baseAddress, b.scale, b.zeroPoint,
                                             pa.count, q.scale, q.zeroPoint, y.baseAddress)
                }
            }
        }
        return QuantizedCodes(values: out, scale: q.scale, zeroPoint: q.zeroPoint)
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
