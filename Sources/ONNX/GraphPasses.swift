import Foundation

/// Rewrites applied before execution. They change results by float rounding at most:
/// - `foldBatchNorm`: BatchNormalization after a Conv or Gemm becomes part of its weights;
/// - `fuseActivations`: a Relu/Clip after a Conv/Gemm/MatMul becomes an attribute of that
///   node, so the pair is one layer (one precision choice, one fused kernel epilogue).
/// Pure graph surgery with weight arithmetic; nothing is executed.
public enum GraphPasses {
    /// All passes, in the order they must run.
    public static func optimize(_ g: Graph) -> Graph {
        fuseActivations(foldBatchNorm(g))
    }

    /// Values read by more than one node, or that are graph outputs, must keep existing.
    static func isPrivate(_ value: String, in g: Graph, consumers: [String: [Int]]) -> Bool {
        consumers[value]?.count == 1 && !g.outputs.contains { $0.name == value }
    }

    public static func foldBatchNorm(_ g: Graph) -> Graph {
        var g = g
        var removed = Set<Int>()
        let producers = g.producers
        let consumers = g.consumers
        /// An initializer, or the value of a Constant node (exporters that keep weights in
        /// Constant nodes, e.g. at opset 11): both fold the same way. Also through an Identity
        /// of one: torch.onnx.export stores bit-identical parameters once and gives the other
        /// name an Identity node. A trained ResNet hits this: the bias of a block's last
        /// BatchNorm and of its downsample BatchNorm get equal gradients (their outputs meet
        /// in one Add), so they start at 0 and stay equal.
        func constant(_ name: String) -> Tensor? {
            if let t = g.initializers[name] { return t }
            guard let i = producers[name] else { return nil }
            switch g.nodes[i].opType {
            case "Constant": return g.nodes[i].tensor("value")
            case "Identity": return g.nodes[i].input(0).flatMap(constant)
            default: return nil
            }
        }
        var folded = Set<String>()          // values the folds read: their Constant/Identity nodes may be dead now
        for (bi, bn) in g.nodes.enumerated() where bn.opType == "BatchNormalization" && bn.outputs.filter({ !$0.isEmpty }).count == 1 {
            guard let x = bn.input(0), let pi = producers[x], !removed.contains(pi),
                  isPrivate(x, in: g, consumers: consumers),
                  bn.int("training_mode", default: 0) == 0,
                  let scale = bn.input(1).flatMap(constant), let shift = bn.input(2).flatMap(constant),
                  let mean = bn.input(3).flatMap(constant), let variance = bn.input(4).flatMap(constant)
            else { continue }
            let eps = bn.float("epsilon", default: 1e-5)
            let channels = scale.count
            guard [shift.count, mean.count, variance.count].allSatisfy({ $0 == channels }),
                  // Integer parameters (a malformed file) have no `floats`: leave the node
                  // to the BatchNormalization op, which reports them.
                  [scale, shift, mean, variance].allSatisfy({ $0.dtype.isFloating }) else { continue }
            let s = (0..<channels).map { scale.floats[$0] / (variance.floats[$0] + eps).squareRoot() }
            let t = (0..<channels).map { shift.floats[$0] - mean.floats[$0] * s[$0] }
            var p = g.nodes[pi]
            guard let wName = p.input(1), let w = constant(wName), w.dtype == .float32 else { continue }
            let oldBias = p.input(2).flatMap(constant)
            if let oldBias, !oldBias.dtype.isFloating { continue }
            var newW = w
            var newB: [Float]
            switch p.opType {
            case "Conv":
                guard w.shape.first == channels, oldBias == nil || oldBias!.count == channels else { continue }
                let per = w.count / channels
                for c in 0..<channels { for k in 0..<per { newW.floats[c * per + k] *= s[c] } }
                newB = (0..<channels).map { c in (oldBias?.floats[c] ?? 0) * s[c] + t[c] }
            case "Gemm":
                // Y = alpha*A*B' + beta*C, BN over Y's columns (BatchNorm1d on [N, C]).
                guard p.int("transA", default: 0) == 0, w.rank == 2 else { continue }
                let transB = p.int("transB", default: 0) == 1
                let n = transB ? w.shape[0] : w.shape[1]
                guard n == channels else { continue }
                let beta = p.float("beta", default: 1)
                let c: [Float]
                if let b = oldBias {
                    if b.count == channels && (b.rank == 1 || b.shape.first == 1) { c = b.floats }
                    else if b.count == 1 { c = [Float](repeating: b.floats[0], count: channels) }
                    else { continue }
                } else { c = [Float](repeating: 0, count: channels) }
                for i in 0..<w.shape[0] { for j in 0..<w.shape[1] { newW.floats[i * w.shape[1] + j] *= s[transB ? i : j] } }
                newB = (0..<channels).map { beta * c[$0] * s[$0] + t[$0] }
                p.attributes["beta"] = .float(1)
            default:
                continue
            }
            let wNew = "\(p.name)__bnfold_W", bNew = "\(p.name)__bnfold_B"
            g.initializers[wNew] = newW
            g.initializers[bNew] = Tensor(shape: [channels], floats: newB)
            while p.inputs.count < 3 { p.inputs.append("") }
            folded.formUnion(bn.inputs.dropFirst() + p.inputs.dropFirst())
            p.inputs[1] = wNew; p.inputs[2] = bNew
            p.outputs[0] = bn.outputs[0]
            g.nodes[pi] = p
            removed.insert(bi)
        }
        g.nodes = g.nodes.enumerated().filter { !removed.contains($0.offset) }.map(\.element)
        let read = Set(g.nodes.flatMap(\.inputs)).union(g.outputs.map(\.name))
        g.nodes.removeAll { ["Constant", "Identity"].contains($0.opType) && $0.outputs.allSatisfy { folded.contains($0) && !read.contains($0) } }
        return g.droppingUnusedInitializers()
    }

    public static func fuseActivations(_ g: Graph) -> Graph {
        var g = g
        var removed = Set<Int>()
        let producers = g.producers
        let consumers = g.consumers
        let fusable: Set<String> = ["Conv", "Gemm", "MatMul", "ConvTranspose"]
        for (ai, act) in g.nodes.enumerated() where act.opType == "Relu" || act.opType == "Clip" {
            guard let x = act.input(0), let pi = producers[x], !removed.contains(pi),
                  fusable.contains(g.nodes[pi].opType), g.nodes[pi].attributes[FusedActivation.attributeKey] == nil,
                  isPrivate(x, in: g, consumers: consumers) else { continue }
            var p = g.nodes[pi]
            if act.opType == "Relu" {
                p.attributes[FusedActivation.attributeKey] = .string("Relu")
            } else {
                var lo = act.float("min", default: -Float.greatestFiniteMagnitude)
                var hi = act.float("max", default: Float.greatestFiniteMagnitude)
                // Opset 11+: bounds are inputs; fuse only when they are known constants.
                if let name = act.input(1) { guard let v = constantScalar(name, g, producers) else { continue }; lo = v }
                if let name = act.input(2) { guard let v = constantScalar(name, g, producers) else { continue }; hi = v }
                p.attributes[FusedActivation.attributeKey] = .string("Clip")
                p.attributes["mpq_clip_min"] = .float(lo)
                p.attributes["mpq_clip_max"] = .float(hi)
            }
            p.outputs[0] = act.outputs[0]
            g.nodes[pi] = p
            removed.insert(ai)
        }
        g.nodes = g.nodes.enumerated().filter { !removed.contains($0.offset) }.map(\.element)
        return g
    }

    /// A scalar from an initializer or a Constant node, if the value is one.
    static func constantScalar(_ name: String, _ g: Graph, _ producers: [String: Int]) -> Float? {
        if let t = g.initializers[name] { return t.count == 1 ? t.asFloats[0] : nil }
        if let i = producers[name], g.nodes[i].opType == "Constant" {
            if let t = g.nodes[i].tensor("value"), t.count == 1 { return t.asFloats[0] }
            if let f = g.nodes[i].float("value_float") { return f }
        }
        return nil
    }
}

extension Graph {
    /// The graph without initializers no node reads.
    public func droppingUnusedInitializers() -> Graph {
        var g = self
        let read = Set(nodes.flatMap(\.inputs)).union(outputs.map(\.name))
        g.initializers = initializers.filter { read.contains($0.key) }
        return g
    }
}
