import Foundation
import ONNX

/// A ResNet block's end, Conv -> Add(conv, shortcut) [-> Relu], run as one Conv whose output
/// blocks get the residual Add (and Relu) right after their tiles, while in cache
/// (`mpq_sconv2d_f32_residual`): no separate pass over the tensor and no output allocation
/// for the Add. The values are those of the unfused nodes bit for bit: the Conv's output
/// is complete (bias, its own activation) before the same `mpq_binary_f32` add (+ Relu),
/// operands in the Add's order, runs on it. As `SiluFusion`, the graph is not rewritten
/// (the three nodes stay layers for calibration, search and export), and the fusion applies
/// only when nobody can tell: no observer (so `mpq profile`, which observes, times the Add ->
/// Relu pair instead, as it times no image chains), no intermediate kept, no override on any
/// node, float32 inputs.
struct ResidualFusion {
    /// On unless the environment sets `MPQ_FP32_CONV_RESIDUAL=0` (read once): an A/B switch;
    /// off, the Add (and the Add + Relu pair) run as their own nodes, with the same bits.
    static let residualFusionsEnabled = ProcessInfo.processInfo.environment["MPQ_FP32_CONV_RESIDUAL"] != "0"

    /// Plan indices; `relu` nil when the Add's output is read by something else than one Relu.
    let conv: Int, add: Int, relu: Int?
    /// The Conv with `ConvResidual.runtimeKey` set, its inputs padded to three plus the
    /// shortcut, writing the last fused node's output.
    let node: Node
    let shortcut: String
    /// The intermediates that no longer exist when fused.
    let intermediates: [String]
    let names: [String]

    func applies(keep: Set<String>, overrides: [String: NodeOverride]) -> Bool {
        intermediates.allSatisfy { !keep.contains($0) } && names.allSatisfy { overrides[$0] == nil }
    }

    var fusedAway: [Int] { [add] + (relu.map { [$0] } ?? []) }

    /// Every Conv -> residual Add [-> Relu] in `plan`, keyed by the Conv's index.
    static func find(plan: [Node], graphOutputs: Set<String>) -> [Int: ResidualFusion] {
        var readers: [String: [Int]] = [:]
        for (i, n) in plan.enumerated() { for v in n.inputs where !v.isEmpty { readers[v, default: []].append(i) } }
        var found: [Int: ResidualFusion] = [:]
        for (ci, conv) in plan.enumerated() where conv.opType == "Conv" && SiluFusion.isDefaultDomain(conv) {
            guard conv.outputs.count == 1, let x = conv.outputs.first, !x.isEmpty, !graphOutputs.contains(x),
                  conv.inputs.count >= 2, conv.inputs.count <= 3, conv.attributes[ConvEpilogue.runtimeKey] == nil,
                  let r = readers[x], r.count == 1, r[0] > ci else { continue }
            let ai = r[0], add = plan[ai]
            guard add.opType == "Add", SiluFusion.isDefaultDomain(add), add.inputs.count == 2, add.outputs.count == 1,
                  FusedActivation(node: add) == nil, let t = add.outputs.first, !t.isEmpty else { continue }
            let shortcutFirst: Bool
            if add.inputs[1] == x && add.inputs[0] != x && !add.inputs[0].isEmpty { shortcutFirst = true }
            else if add.inputs[0] == x && add.inputs[1] != x && !add.inputs[1].isEmpty { shortcutFirst = false }
            else { continue }
            let shortcut = add.inputs[shortcutFirst ? 0 : 1]
            var reluIndex: Int? = nil
            if !graphOutputs.contains(t), let tr = readers[t], tr.count == 1, tr[0] > ai {
                let relu = plan[tr[0]]
                if relu.opType == "Relu", SiluFusion.isDefaultDomain(relu), relu.inputs == [t], relu.outputs.count == 1,
                   let y = relu.outputs.first, !y.isEmpty, FusedActivation(node: relu) == nil {
                    reluIndex = tr[0]
                }
            }
            var fused = conv
            var inputs = conv.inputs
            while inputs.count < 3 { inputs.append("") }
            fused.inputs = inputs + [shortcut]
            fused.attributes[ConvResidual.runtimeKey] = .string(shortcutFirst ? "first" : "second")
            if let ri = reluIndex { fused.attributes[ConvResidual.reluKey] = .string("Relu"); fused.outputs = plan[ri].outputs }
            else { fused.outputs = [t] }
            found[ci] = ResidualFusion(conv: ci, add: ai, relu: reluIndex, node: fused, shortcut: shortcut,
                                       intermediates: reluIndex == nil ? [x] : [x, t],
                                       names: [conv.name, add.name] + (reluIndex.map { [plan[$0].name] } ?? []))
        }
        return found
    }
}
