import ONNX

/// Split under the `ort` scheme: a region op with several outputs, each on its input's grid
/// (QuantPlan rule 5), as ONNX Runtime runs `DQ -> Split -> Q...` (a uint8 Split,
/// `SplitQDQRules`). Splitting selects elements, so the split of the codes is the codes of
/// the split: on a chain the op moves bytes (`Tensor.strided` on codes), otherwise it splits
/// the floats and requantizes each requantized output (the generic form, the reference).
extension RegionKernels {
    /// `writeCodes[k]`: output `k` is handed on as codes (one of its readers reads codes);
    /// other outputs are materialised, `(q - z) * s + 0`, what DequantizeLinear gives.
    static func splitOverride(_ node: Node, session: Session, plan: QuantPlan, path: @escaping () -> KernelPath,
                              writeCodes: [Bool], counters: Int8ChainCounters?) -> NodeOverride {
        let quants = node.outputs.map { plan.requantized[$0] }
        return { inputs in
            if let x = inputs.first ?? nil, x.isCodesOnly, let c = x.codes,
               quants.allSatisfy({ q in q.map { $0.scale == c.scale && $0.zeroPoint == c.zeroPoint } ?? true }) {
                let outs = try session.runNode(node, inputs: inputs)
                counters?.codesRead += 1
                counters?.movedAsCodes += 1
                return outs.indices.map { k in
                    if k < quants.count, quants[k] != nil, k < writeCodes.count, writeCodes[k], outs[k].codes != nil {
                        counters?.codesWritten += 1
                        return outs[k]
                    }
                    return outs[k].materialized()
                }
            }
            var outs = try session.runNode(node, inputs: Session.materialized(inputs))
            for k in outs.indices where k < quants.count {
                if let q = quants[k] { requantize(&outs[k], q, path: path()) }
            }
            return outs
        }
    }
}
