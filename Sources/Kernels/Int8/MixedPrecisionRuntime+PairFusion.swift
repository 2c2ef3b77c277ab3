import CKernels
import ONNX

/// A `PairFusion` the `ort` plan can run on uint8 codes:
/// - residual Add -> Relu whose Add reads two requantized tensors: the Add's output is not
///   requantized (ORT drops a Relu before a Q with zero point 0, `QuantPlan`), the Relu's
///   is. Unfused, the Add dequantizes both inputs and adds in float, the Relu clamps, then
///   a requantization: three float passes. Fused: `mpq_binary_u8` with its Relu, one pass
///   over the codes;
/// - Sigmoid -> Mul (SiLU) on a requantized x: both outputs are functions of x's code, so
///   the pair is one 256-entry table built by running the two nodes' own overrides on the
///   256 codes (the unfused arithmetic by construction).
struct FusedCodesPair {
    let fusion: PairFusion
    /// The second node's output parameters.
    let output: ActivationQuant
}

extension MixedPrecisionRuntime {
    /// The pairs of `plan` that have a codes form.
    func codesPairs(_ plan: QuantPlan) -> [FusedCodesPair] {
        session.pairFusions.values.sorted { $0.first < $1.first }.compactMap { f in
            let first = session.plan[f.first], second = session.plan[f.second]
            guard let y = second.outputs.first, let q = plan.requantized[y] else { return nil }
            switch f.kind {
            case .residualRelu:
                guard plan.requantized[f.intermediate] == nil,
                      first.inputs.allSatisfy({ plan.requantized[$0] != nil }) else { return nil }
            case .silu:
                guard plan.requantized[f.intermediate] != nil, plan.requantized[first.inputs[0]] != nil else { return nil }
            }
            return FusedCodesPair(fusion: f, output: q)
        }
    }

    /// Nodes the pairs add to those reading codes: the residual Adds (the SiLUs' Sigmoid and
    /// Mul read codes already, as table and binary fast forms).
    func codesPairReaders(_ pairs: [FusedCodesPair]) -> [String] {
        pairs.filter { $0.fusion.kind == .residualRelu }.map(\.fusion.firstName)
    }

    /// Sets what the pairs need among the overrides and returns their fused forms for
    /// `Session.fusedOverrides`. Call after the region ops' overrides are set.
    func codesPairOverrides(_ pairs: [FusedCodesPair], plan: QuantPlan, writesCodes: (String) -> Bool,
                            counters: Int8ChainCounters) throws -> [String: FusedPairOverride] {
        var fused: [String: FusedPairOverride] = [:]
        for pair in pairs {
            let f = pair.fusion
            let first = session.plan[f.first], second = session.plan[f.second]
            let writes = writesCodes(second.outputs[0])
            switch f.kind {
            case .residualRelu:
                guard session.overrides[first.name] == nil else { continue }
                let addOverride: NodeOverride = { [unowned self] inputs in
                    try self.session.runNode(first, inputs: Session.materialized(inputs))
                }
                // Set even when the pair cannot fuse: the Add is among the nodes reading codes.
                session.overrides[first.name] = addOverride
                guard let reluOverride = session.overrides[second.name] else { continue }
                fused[first.name] = residualForm(addOverride, reluOverride, output: pair.output, writes: writes, counters: counters)
            case .silu:
                guard let sigmoid = session.overrides[first.name], let mul = session.overrides[second.name],
                      let qx = plan.requantized[first.inputs[0]] else { continue }
                let xFirst = second.inputs[0] == first.inputs[0]
                let unfused: NodeOverride = { inputs in
                    let s = try sigmoid(inputs)[0]
                    return try mul(xFirst ? [inputs[0], s] : [s, inputs[0]])
                }
                let table = try codeTable(unfused, input: qx, output: pair.output, counters: counters)
                fused[first.name] = { inputs in
                    guard let t = inputs.first ?? nil, let xs = t.codes(on: qx) else { return try unfused(inputs) }
                    counters.codesRead += 1
                    var ys = [UInt8].uninitialized(count: xs.count)
                    xs.withUnsafeBufferPointer { px in table.withUnsafeBufferPointer { pt in ys.withUnsafeMutableBufferPointer { py in
                        mpq_lookup_u8_threads(px.baseAddress, px.count, pt.baseAddress, py.baseAddress, lookupThreads(px.count))
                    } } }
                    let y = Tensor(shape: t.shape, codes: QuantizedCodes(values: ys, scale: pair.output.scale, zeroPoint: pair.output.zeroPoint))
                    if writes { counters.codesWritten += 1; return [y] }
                    return [y.materialized()]
                }
            }
        }
        return fused
    }

    private func residualForm(_ addOverride: @escaping NodeOverride, _ reluOverride: @escaping NodeOverride,
                              output q: ActivationQuant, writes: Bool, counters: Int8ChainCounters) -> FusedPairOverride {
        { [unowned self] inputs in
            guard inputs.count == 2, let a = inputs[0], let b = inputs[1], a.shape == b.shape,
                  let ca = a.codes, let cb = b.codes, a.isCodesOnly, b.isCodesOnly else {
                return try reluOverride([try addOverride(inputs)[0]])
            }
            counters.codesRead += 2
            var out = [UInt8].uninitialized(count: ca.values.count)
            ca.values.withUnsafeBufferPointer { pa in
                cb.values.withUnsafeBufferPointer { pb in
                    out.withUnsafeMutableBufferPointer { y in
                        mpq_binary_u8(self.path.c, 0, 1, pa.baseAddress, ca.scale, ca.zeroPoint, pb.baseAddress, cb.scale,
                                      cb.zeroPoint, pa.count, q.scale, q.zeroPoint, y.baseAddress, rowThreads(pa.count))
                    }
                }
            }
            let t = Tensor(shape: a.shape, codes: QuantizedCodes(values: out, scale: q.scale, zeroPoint: q.zeroPoint))
            if writes { counters.codesWritten += 1; return [t] }
            return [t.materialized()]
        }
    }

    /// The output code of an elementwise chain for each of the 256 input codes on `input`,
    /// computed by the chain itself (its overrides' counting undone).
    private func codeTable(_ chain: NodeOverride, input qx: ActivationQuant, output q: ActivationQuant,
                           counters: Int8ChainCounters) throws -> [UInt8] {
        let (read, written) = (counters.codesRead, counters.codesWritten)
        defer { counters.codesRead = read; counters.codesWritten = written }
        let grid = Tensor(shape: [256], codes: QuantizedCodes(values: (0...255).map(UInt8.init), scale: qx.scale, zeroPoint: qx.zeroPoint))
        let y = try chain([grid])[0]
        if let codes = y.codes(on: q) { return codes }
        // Floats on q's grid quantize back to their codes exactly (docs/int8-chains.md).
        var table = [UInt8](repeating: 0, count: 256)
        y.materialized().floats.withUnsafeBufferPointer { p in table.withUnsafeMutableBufferPointer { quantizeU8(p, q, path: .reference, into: $0.baseAddress!) } }
        return table
    }
}
