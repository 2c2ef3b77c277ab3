import ONNX

/// SiLU (Conv -> Sigmoid -> Mul(x, sigmoid(x)), what YOLO-style exports write) fused at run
/// time into the Conv's per-image epilogue: one pass over each image's output while it is
/// in cache instead of two passes over the batch and two output allocations. The graph is
/// not rewritten: Sigmoid and Mul stay nodes (layers of their own for calibration, search
/// and export), and the fusion applies only when nobody can tell: no observer, neither
/// intermediate kept, no override on any of the three nodes, float32 input. The values
/// are the unfused ones bit for bit (`mpq_conv_epilogue_f32` calls the Sigmoid op's
/// per-element function and multiplies as Mul does).
struct SiluFusion {
    /// Plan indices.
    let conv: Int, sigmoid: Int, mul: Int
    /// The Conv with `ConvEpilogue.runtimeKey` set, writing the Mul's output.
    let node: Node
    /// The intermediates that no longer exist when fused.
    let convOutput: String, sigmoidOutput: String
    let names: [String]

    func applies(keep: Set<String>, overrides: [String: NodeOverride]) -> Bool {
        !keep.contains(convOutput) && !keep.contains(sigmoidOutput) && names.allSatisfy { overrides[$0] == nil }
    }

    /// Every SiLU after a Conv in `plan`, keyed by the Conv's index.
    static func find(plan: [Node], graphOutputs: Set<String>) -> [Int: SiluFusion] {
        var readers: [String: [Int]] = [:]
        for (i, n) in plan.enumerated() { for v in n.inputs where !v.isEmpty { readers[v, default: []].append(i) } }
        var found: [Int: SiluFusion] = [:]
        for (ci, conv) in plan.enumerated() where conv.opType == "Conv" && isDefaultDomain(conv) {
            guard conv.outputs.count == 1, let x = conv.outputs.first, !x.isEmpty, !graphOutputs.contains(x),
                  conv.attributes[FusedActivation.attributeKey] == nil,
                  let r = readers[x], r.count == 2 else { continue }
            let sorted = r.sorted()
            let (si, mi) = (sorted[0], sorted[1])
            let sig = plan[si], mul = plan[mi]
            guard sig.opType == "Sigmoid", isDefaultDomain(sig), sig.inputs == [x], sig.outputs.count == 1,
                  let s = sig.outputs.first, !s.isEmpty, !graphOutputs.contains(s), readers[s] == [mi],
                  mul.opType == "Mul", isDefaultDomain(mul), mul.inputs == [x, s] || mul.inputs == [s, x],
                  mul.outputs.count == 1, let y = mul.outputs.first, !y.isEmpty else { continue }
            var fused = conv
            fused.attributes[ConvEpilogue.runtimeKey] = .string("SiLU")
            fused.outputs = [y]
            found[ci] = SiluFusion(conv: ci, sigmoid: si, mul: mi, node: fused, convOutput: x, sigmoidOutput: s,
                                   names: [conv.name, sig.name, mul.name])
        }
        return found
    }

    static func isDefaultDomain(_ n: Node) -> Bool { n.domain.isEmpty || n.domain == "ai.onnx" }
}
