import CKernels
import ONNX

/// Which nodes run in INT8 and which tensors are requantized, for one precision map under
/// the `ort` scheme (docs/quantization.md, "Schemes"). The runtime and the QDQ export both
/// read this one plan, so the export places Q/DQ exactly where the runtime quantized.
///
/// Rules, applied in topological order on the optimised session graph:
/// 1. the map's INT8 layers run in INT8;
/// 2. a region op (`RegionOpKind`) runs in INT8 when every activation input is produced by
///    a node that runs in INT8 (so a region only grows out of INT8 layers);
/// 3. an output of an INT8 node is requantized (Q then DQ, read by every consumer) when at
///    least one consumer runs in INT8 and it is not a graph output;
/// 4. an output of an INT8 layer that ONNX Runtime fuses only with a Q after it (Conv, and a
///    Gemm/MatMul with a fused Relu/Clip: `Int8OpFamily.fusesOnlyWithOutputQuantize`) is
///    requantized whatever reads it (graph outputs aside): an FP32 reader then gets
///    DequantizeLinear of uint8 codes, so ORT runs QLinearConv/QGemm + DequantizeLinear,
///    exactly this runtime's arithmetic, instead of a float Conv on dequantized weights
///    whose last bits differ (docs/int8-chains.md, "FP32 readers");
/// 5. an INT8 Split requantizes every output that has a reader (graph outputs aside), all on
///    its input's grid: ONNX Runtime runs `DQ -> Split -> Q` as a uint8 Split only when each
///    output has a Q with the input's scale and zero point (`SplitQDQRules`), and a value on
///    the grid requantizes to itself, so this changes no value, only where Q/DQ sit.
/// Scales never depend on the map: a tensor's parameters come from the calibrated range of
/// its `source` (itself, or the input of the shared-scale ops that produced it), so INT8
/// layers are prepared once and switching maps only moves Q/DQ.
public struct QuantPlan: Equatable, Sendable {
    /// INT8 layers of the map.
    public var int8Layers: Set<String>
    /// Region ops that run in INT8 (their output is requantized).
    public var int8RegionOps: Set<String>
    /// Tensors requantized right after the node producing them, with their parameters.
    public var requantized: [String: ActivationQuant]

    /// The plan of the `inputs` scheme: INT8 layers only, nothing requantized.
    public init(inputsScheme int8Layers: Set<String>) {
        self.int8Layers = int8Layers; self.int8RegionOps = []; self.requantized = [:]
    }

    /// The plan of the `ort` scheme. `quant` gives the parameters of a (source) tensor;
    /// a tensor without parameters is never requantized.
    public init(session: Session, int8Layers: Set<String>, quant: (String) -> ActivationQuant?) {
        let sources = QuantPlan.sources(session)
        let outputs = Set(session.graph.outputs.map(\.name))
        var producer: [String: String] = [:]
        var readers: [String: [String]] = [:]
        for node in session.plan {
            for o in node.outputs where !o.isEmpty { producer[o] = node.name }
            for i in node.inputs where !i.isEmpty { readers[i, default: []].append(node.name) }
        }
        var int8 = int8Layers
        for node in session.plan where !int8Layers.contains(node.name) && RegionOpKind.of(node) != nil {
            let acts = RegionOpKind.activationInputs(node, constants: session.constants)
            if !acts.isEmpty && acts.allSatisfy({ producer[$0].map(int8.contains) ?? false }) { int8.insert(node.name) }
        }
        var requantized: [String: ActivationQuant] = [:]
        var regionOps = Set<String>()
        let reluNodes = Set(session.plan.filter { $0.opType == "Relu" }.map(\.name))
        // Rule 4: nodes whose output is requantized whatever reads it.
        var alwaysRequantized = Set(session.plan.filter {
            int8Layers.contains($0.name) && Int8Ops.family(for: $0, constants: session.constants)?.fusesOnlyWithOutputQuantize($0) == true
        }.map(\.name))
        for node in session.plan where int8.contains(node.name) {
            if node.opType == "Split" && !int8Layers.contains(node.name) {
                // Rule 5: every output, whoever reads it (no Relu rule: ORT fuses the Split
                // only with a Q on each of its outputs).
                for o in node.outputs where !o.isEmpty && !outputs.contains(o) && !(readers[o] ?? []).isEmpty {
                    guard let q = quant(sources[o] ?? o) else { continue }
                    requantized[o] = q
                    regionOps.insert(node.name)
                }
                continue
            }
            let consumers = readers[node.outputs.first ?? ""] ?? []
            let always = alwaysRequantized.contains(node.name)
            // A value read only by INT8 Relus is requantized after the Relu instead: ORT
            // removes a Relu before a Q with zero point 0 (ReluQuantFusion), so the
            // producer writes the Relu's range directly (and under rule 4 so must the Relus).
            if !consumers.isEmpty && consumers.allSatisfy({ reluNodes.contains($0) && int8.contains($0) }) {
                if always { alwaysRequantized.formUnion(consumers) }
                continue
            }
            guard let o = node.outputs.first, !o.isEmpty, !outputs.contains(o),
                  always ? !consumers.isEmpty : consumers.contains(where: int8.contains),
                  let q = quant(sources[o] ?? o) else { continue }
            requantized[o] = q
            if !int8Layers.contains(node.name) { regionOps.insert(node.name) }
        }
        self.int8Layers = int8Layers
        self.int8RegionOps = regionOps
        self.requantized = requantized
    }

    /// What a node does under this plan; nodes whose behaviour differs between two plans
    /// must be re-executed when switching from one to the other (nil: plain FP32).
    public func behaviour(_ node: Node) -> String? {
        let layer = int8Layers.contains(node.name)
        // Every output's requantization (a Split requantizes several).
        let qs = node.outputs.map { requantized[$0] }
        if !layer && qs.allSatisfy({ $0 == nil }) { return nil }
        return (layer ? "int8" : "fp32") + qs.map { q in q.map { " requant \($0.scale) \($0.zeroPoint)" } ?? " -" }.joined()
    }

    /// Nodes of `session` that execute differently under `self` and `other`.
    public func changedNodes(comparedTo other: QuantPlan, session: Session) -> Set<String> {
        Set(session.plan.filter { behaviour($0) != other.behaviour($0) }.map(\.name))
    }

    /// For every output of a shared-scale region op, the tensor whose range it uses: the
    /// first tensor up the chain of shared-scale ops (a MaxPool of a Reshape of `x` uses `x`'s;
    /// every output of a Split uses its input's).
    public static func sources(_ session: Session) -> [String: String] {
        var source: [String: String] = [:]
        for node in session.plan where RegionOpKind.of(node) == .sharesInputScale {
            guard let x = node.input(0), session.constants[x] == nil else { continue }
            for o in node.outputs where !o.isEmpty { source[o] = source[x] ?? x }
        }
        return source
    }

    /// The tensors the `ort` scheme can quantize, as their sources, in execution order:
    /// inputs and outputs of quantizable layers and the activations around region ops.
    public static func calibratedTensors(_ session: Session) -> [String] {
        let sources = self.sources(session)
        var seen = Set<String>(), out: [String] = []
        func add(_ t: String) {
            guard !t.isEmpty, session.constants[t] == nil else { return }
            let s = sources[t] ?? t
            if seen.insert(s).inserted { out.append(s) }
        }
        for node in session.plan {
            if let family = Int8Ops.family(for: node, constants: session.constants) {
                for x in family.quantizedInputs(node, constants: session.constants) {
                    // The layer's own input too, so an `ort` table also serves `inputs`.
                    if session.constants[x] == nil, seen.insert(x).inserted { out.append(x) }
                    add(x)
                }
                add(node.outputs.first ?? "")
            } else if RegionOpKind.of(node) != nil {
                RegionOpKind.activationInputs(node, constants: session.constants).forEach(add)
                node.outputs.forEach(add)
            }
        }
        return out
    }
}

extension CalibrationTable {
    /// Largest magnitude a requantized tensor's range may reach. Beyond it the tensor is
    /// left in float: a uint8 grid over, say, an attention mask's -3.4e38 would erase the
    /// signal (ORT's quantize_static would quantize it regardless).
    public static let requantizableMagnitude: Float = 1e6

    /// The parameters of a tensor the `ort` scheme may requantize, or nil when its range is
    /// missing, not finite or wider than `requantizableMagnitude`.
    public func requantizable(_ tensor: String) -> ActivationQuant? {
        if let set = recorded?.requantized { return set.contains(tensor) ? quant(for: tensor) : nil }
        guard let r = ranges[tensor], r.min.isFinite, r.max.isFinite,
              max(abs(r.min), abs(r.max)) <= Self.requantizableMagnitude else { return nil }
        return ActivationQuant(min: r.min, max: r.max)
    }
}

/// Quantize then dequantize in place, as an ONNX QuantizeLinear -> DequantizeLinear pair,
/// in one pass: divide, clamp to [-z, 255 - z] (NaN to -z), round half to even, scale.
/// Bit for bit `mpq_quantize_u8` followed by `(q - z) * s` (the clamp bounds are integers,
/// so clamping before rounding is exact, and `q - z` is the rounded value itself; adding 0
/// turns the -0 that rounding a small negative gives into DequantizeLinear's +0).
func requantize(_ t: inout Tensor, _ q: ActivationQuant, path: KernelPath) {
    guard t.dtype.isFloating, !t.floats.isEmpty else { return }
    t.floats.withUnsafeMutableBufferPointer { p in
        mpq_requantize_f32(path.c, p.baseAddress, p.count, q.scale, q.zeroPoint, p.baseAddress)   // + 0 inside: a -0 is DQ's +0
    }
}
