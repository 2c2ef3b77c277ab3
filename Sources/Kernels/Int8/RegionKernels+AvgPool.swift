import CKernels
import ONNX

/// INT8 AveragePool and GlobalAveragePool with ONNX Runtime's arithmetic, on uint8 codes
/// (docs/pooling.md, "Average pooling on codes"). ORT fuses `DQ -> AveragePool -> Q` into
/// QLinearAveragePool and `DQ -> GlobalAveragePool -> Q` into QLinearGlobalAveragePool, whose
/// sums are not the float op's: the windowed form sums the dequantized taps in row-major
/// order and rounds `sum / count / s_y + z_y`; the global form sums the codes as integers
/// and scales once (MLAS). mpq's generic form (the FP32 op, then requantize) differs from
/// both in the last step on ties, so under the `ort` scheme these ops run here instead, with
/// the input's codes, whether the chain carries codes or floats on the grid (the bytes do not
/// depend on `uint8Chains`). The `inputs` scheme never runs region ops in INT8, so its
/// numbers do not change.
extension RegionKernels {
    static let averagePoolOps: Set<String> = ["AveragePool", "GlobalAveragePool"]

    /// Whether `node` runs as ORT's quantized average pool: its input is requantized (so it
    /// is on a uint8 grid) and its window is one ORT's kernel computes (1-3 spatial axes, no
    /// dilation: ORT's QLinearAveragePool ignores dilations), as far as the attributes tell.
    static func isOrtAveragePool(_ node: Node, plan: QuantPlan) -> Bool {
        guard averagePoolOps.contains(node.opType), let x = node.input(0), plan.requantized[x] != nil,
              node.outputs.count == 1 else { return false }
        if node.opType == "AveragePool" {
            guard (node.ints("dilations") ?? []).allSatisfy({ $0 == 1 }), let k = node.ints("kernel_shape"), (1...3).contains(k.count) else {
                return false
            }
        }
        return true
    }

    /// The override: codes in (or floats on the input grid `qi`, quantized back exactly),
    /// ORT's pooling, codes out (materialised unless `writeCodes`). A shape the kernels do not
    /// cover takes the generic form.
    static func averagePoolOverride(_ node: Node, session: Session, input qi: ActivationQuant, output q: ActivationQuant,
                                    path: @escaping () -> KernelPath, writeCodes: Bool, counters: Int8ChainCounters?) -> NodeOverride {
        return { inputs in
            guard let t = inputs.first ?? nil, t.dtype.isFloating else { throw OpError("\(node.opType) needs a float input") }
            var codes = t.codes(on: qi)
            let readCodes = codes != nil
            if codes == nil {
                let floats = t.materialized().floats
                codes = floats.withUnsafeBufferPointer { p in uninitializedArray(count: p.count) { quantizeU8(p, qi, path: path(), into: $0) } }
            }
            guard let out = try ortAveragePool(node, t.shape, codes!, qi, q, path: path()) else {
                var outs = try session.runNode(node, inputs: Session.materialized(inputs))
                requantize(&outs[0], q, path: path())
                return outs
            }
            if readCodes { counters?.codesRead += 1 }
            counters?.pooledAsCodes += 1
            if writeCodes { counters?.codesWritten += 1; return [out] }
            return [out.materialized()]
        }
    }

    /// ORT's QLinearAveragePool / QLinearGlobalAveragePool of `codes` (shape `shape`, grid
    /// `qi`) onto grid `q`; nil for what ORT's kernel does not compute (more than 3 spatial
    /// axes, dilations).
    public static func ortAveragePool(_ node: Node, _ shape: [Int], _ codes: [UInt8], _ qi: ActivationQuant, _ q: ActivationQuant,
                                      path: KernelPath) throws -> Tensor? {
        guard shape.count >= 3, codes.count == shape.reduce(1, *) else { return nil }
        let planes = shape[0] * shape[1], image = shape.dropFirst(2).reduce(1, *)
        func global() -> Tensor {
            let y = codes.withUnsafeBufferPointer { x in
                uninitializedArray(count: planes) { mpq_qglobal_avgpool_u8(path.c, x.baseAddress, planes, image, qi.scale, qi.zeroPoint, q.scale, q.zeroPoint, $0) }
            }
            return Tensor(shape: Array(shape.prefix(2)) + [Int](repeating: 1, count: shape.count - 2),
                          codes: QuantizedCodes(values: y, scale: q.scale, zeroPoint: q.zeroPoint))
        }
        if node.opType == "GlobalAveragePool" { return global() }
        guard node.opType == "AveragePool", (node.ints("dilations") ?? []).allSatisfy({ $0 == 1 }) else { return nil }
        let probe = Tensor(shape: shape, codes: QuantizedCodes(values: codes, scale: qi.scale, zeroPoint: qi.zeroPoint))
        let (_, g) = try PoolOps.poolGeometry(probe, "AveragePool", node.string("auto_pad", default: "NOTSET"),
                                              node.int("ceil_mode", default: 0) != 0, node.ints("dilations"),
                                              node.ints("kernel_shape"), node.ints("pads"), node.ints("strides"))
        guard g.rank >= 1, g.rank <= 3, g.input.count == 3 else { return nil }
        // ORT: a kernel over the whole input with no padding falls back to the global kernel.
        if Array(g.kernel.suffix(g.rank)) == Array(shape.dropFirst(2)), g.padHead.allSatisfy({ $0 == 0 }), g.padTail.allSatisfy({ $0 == 0 }) {
            let t = global()
            return Tensor(shape: Array(shape.prefix(2)) + g.outputShape, codes: t.codes!)
        }
        var p = mpq_qavgpool()
        p.planes = planes
        p.in = (Int32(g.input[0]), Int32(g.input[1]), Int32(g.input[2]))
        p.out = (Int32(g.output[0]), Int32(g.output[1]), Int32(g.output[2]))
        p.kernel = (Int32(g.kernel[0]), Int32(g.kernel[1]), Int32(g.kernel[2]))
        p.stride = (Int32(g.stride[0]), Int32(g.stride[1]), Int32(g.stride[2]))
        p.pad = (Int32(g.padHead[0]), Int32(g.padHead[1]), Int32(g.padHead[2]))
        p.count_include_pad = Int32(node.int("count_include_pad", default: 0))
        p.x_scale = qi.scale; p.x_zp = qi.zeroPoint; p.y_scale = q.scale; p.y_zp = q.zeroPoint
        let count = planes * g.outputCount
        let y = codes.withUnsafeBufferPointer { x in
            uninitializedArray(count: count) { mpq_qavgpool_u8(&p, x.baseAddress, $0, rowThreads(count * g.kernelCount / 4)) }
        }
        return Tensor(shape: Array(shape.prefix(2)) + g.outputShape, codes: QuantizedCodes(values: y, scale: q.scale, zeroPoint: q.zeroPoint))
    }
}
