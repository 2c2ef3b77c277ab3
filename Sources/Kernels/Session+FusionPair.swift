import CKernels
import ONNX

/// How a fused pair executes under an override (the INT8 runtime's codes forms): it gets
/// the first node's inputs, as the first node's override would, and returns the second
/// node's outputs.
public typealias FusedPairOverride = (_ firstInputs: [Tensor?]) throws -> [Tensor]

/// Two nodes run as one pass at run time, the first node's output never materialised:
/// - a residual Add and the Relu that alone reads it (`y = relu(x + shortcut)`, what every
///   ResNet block ends with): in FP32 (no override on either node, same-shape float32
///   inputs) `mpq_binary_f32` adds then applies `r < 0 ? 0 : r` as the Relu op does; under
///   the INT8 `ort` scheme the runtime's codes form (`mpq_binary_u8` with its Relu);
/// - a Sigmoid and the Mul that alone reads it with the Sigmoid's input (`x * sigmoid(x)`,
///   SiLU): only the INT8 codes form, one 256-entry table (FP32 SiLUs after a Conv fuse
///   into its epilogue instead, `SiluFusion`).
/// As `SiluFusion`, the graph is not rewritten (both nodes stay layers for calibration,
/// search and export), and the fusion applies only when nobody can tell: no observer, the
/// intermediate not kept. Otherwise both nodes run as usual, with the same bits.
struct PairFusion {
    enum Kind { case residualRelu, silu }
    let kind: Kind
    /// Plan indices.
    let first: Int, second: Int
    /// The first node writing the second's outputs.
    let node: Node
    /// The first node's output, which no longer exists when fused.
    let intermediate: String
    let firstName: String, secondName: String

    /// Every pair in `plan`, keyed by the first node's index.
    static func find(plan: [Node], graphOutputs: Set<String>) -> [Int: PairFusion] {
        var readers: [String: [Int]] = [:]
        for (i, n) in plan.enumerated() { for v in n.inputs where !v.isEmpty { readers[v, default: []].append(i) } }
        var found: [Int: PairFusion] = [:]
        for (fi, first) in plan.enumerated() where SiluFusion.isDefaultDomain(first) {
            let kind: Kind
            switch first.opType {
            case "Add" where first.inputs.count == 2: kind = .residualRelu
            case "Sigmoid" where first.inputs.count == 1 && !first.inputs[0].isEmpty: kind = .silu
            default: continue
            }
            guard first.outputs.count == 1, let t = first.outputs.first, !t.isEmpty, !graphOutputs.contains(t),
                  FusedActivation(node: first) == nil, let r = readers[t], r.count == 1, r[0] > fi else { continue }
            let second = plan[r[0]]
            guard SiluFusion.isDefaultDomain(second), second.outputs.count == 1, let y = second.outputs.first, !y.isEmpty,
                  FusedActivation(node: second) == nil else { continue }
            switch kind {
            case .residualRelu:
                guard second.opType == "Relu", second.inputs == [t] else { continue }
            case .silu:
                let x = first.inputs[0]
                guard second.opType == "Mul", second.inputs == [x, t] || second.inputs == [t, x] else { continue }
            }
            var fused = first
            fused.outputs = [y]
            found[fi] = PairFusion(kind: kind, first: fi, second: r[0], node: fused, intermediate: t,
                                   firstName: first.name, secondName: second.name)
        }
        return found
    }

    /// The second node's outputs computed from the first node's inputs, or nil when the
    /// fusion does not apply to this run (then both nodes run as usual).
    func run(_ inputs: [Tensor?], keep: Set<String>, overrides: [String: NodeOverride],
             fused: [String: FusedPairOverride]) throws -> [Tensor]? {
        guard !keep.contains(intermediate) else { return nil }
        if overrides[firstName] == nil && overrides[secondName] == nil {
            guard kind == .residualRelu else { return nil }
            return Self.addRelu(Session.materialized(inputs)).map { [$0] }
        }
        if let f = fused[firstName] { return try f(inputs) }
        return nil
    }

    /// relu(a + b) for same-shape float32 tensors, nil otherwise (broadcasting takes the ops).
    static func addRelu(_ inputs: [Tensor?]) -> Tensor? {
        guard inputs.count == 2, let a = inputs[0], let b = inputs[1], a.dtype == .float32, b.dtype == .float32,
              a.shape == b.shape, !a.floats.isEmpty else { return nil }
        return ElementwiseOps.binaryFloats(a, b, multiply: false, relu: true)
    }
}
