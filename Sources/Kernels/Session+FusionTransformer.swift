import CKernels
import ONNX

/// Transformer-encoder chains run at run time as one row pass each (`mpq_fused.h`):
/// - GELU: [bias Add] -> Div(c) -> Erf -> Add(c) -> Mul(h, ·) -> Mul(c), BERT's erf form;
/// - attention probabilities: Mul(c) or Div(c) -> [Add(mask)] -> Softmax over the last axis;
/// - normalisation: [bias Add] -> Add(residual) -> LayerNormalization over the last axis.
/// Unfused these are one pass over the whole tensor per op, most of them single-threaded
/// Swift loops, each allocating its output; fused, each row is read once, transformed in
/// cache and split over the cores. As with `SiluFusion` the graph is not rewritten (every
/// node stays a layer for calibration, search and export) and the fusion applies only when
/// nobody can tell: no observer (the profiler excepted: it times the chain as its anchor
/// node), no intermediate kept or a graph output, float32 inputs, no override on any of the
/// nodes. The values are the unfused ones bit for bit (the same IEEE operations in the same
/// order and the same row kernels, mpq_fused.h). Under INT8 the chains stay FP32 ops between
/// INT8 layers: the `ort` scheme requantizes a region op's output only when its inputs come
/// from INT8 nodes, and a chain's inner nodes are plain FP32 ops, so none of its nodes has an
/// override (the INT8 MatMuls before and after quantize on their own).
struct TransformerFusion {
    enum Kind: Equatable {
        /// `bias` names a constant 1-D tensor or is nil; y = (h * (erf(h / div) + add)) * mul.
        case gelu(bias: String?, div: Float, add: Float, mul: Float)
        /// y = softmax(x * scale + mask) (`divide`: x / scale); `mask` names a value or is nil.
        case softmax(scale: Float, divide: Bool, mask: String?)
        /// y = LayerNorm((x + bias) + residual).
        case layerNorm(bias: String?, residual: String, scale: String, beta: String?, epsilon: Float)
    }

    let kind: Kind
    /// Plan indices of the chain, ascending; it runs at the first.
    let nodes: [Int]
    /// Node names, the last one's output is the chain's.
    let names: [String]
    /// What the run sees: the anchor node's name and op type (the Erf, Softmax or
    /// LayerNormalization: where `mpq profile` puts the chain's time), reading the chain's
    /// external inputs (x first) and writing the last node's output.
    let node: Node
    /// Values that exist only unfused.
    let intermediates: [String]

    func applies(keep: Set<String>, overrides: [String: NodeOverride]) -> Bool {
        intermediates.allSatisfy { !keep.contains($0) } && names.allSatisfy { overrides[$0] == nil }
    }

    /// The chain's output from `inputs` (resolved `node.inputs`), or nil when the shapes at
    /// hand are not the fused kernel's (a broadcast it does not do): the nodes then run unfused.
    /// `codes`: a GELU or a Softmax writes its output as uint8 codes on that grid, quantized on
    /// that path (`Session.chainOutputCodes`); the LayerNormalization chain ignores it.
    func run(_ inputs: [Tensor?], constants: [String: Tensor], codes: (ActivationQuant, KernelPath)? = nil) -> Tensor? {
        let ins = Session.materialized(inputs)
        guard let x = ins.first ?? nil, x.dtype == .float32, x.rank >= 1, let cols = x.shape.last, cols > 0 else { return nil }
        let rows = x.count / cols
        if case let .gelu(biasName, div, add, mul) = kind, let grid = codes {
            let (q, path) = grid
            let bias = biasName.flatMap { constants[$0] }
            if biasName != nil { guard let b = bias, Self.isRow(b, cols) else { return nil } }
            // Every code is written by the kernel.
            let values: [UInt8] = x.floats.withUnsafeBufferPointer { px in
                (bias?.floats ?? []).withUnsafeBufferPointer { pb in
                    uninitializedArray(count: x.count) { py in
                        mpq_bias_gelu_u8(MPQ_PATH_AUTO, px.baseAddress, rows, cols, bias == nil ? nil : pb.baseAddress,
                                         div, add, mul, path.c, q.scale, q.zeroPoint, py, rowThreads(x.count))
                    }
                }
            }
            return Tensor(shape: x.shape, codes: QuantizedCodes(values: values, scale: q.scale, zeroPoint: q.zeroPoint))
        }
        // Every row kernel below writes all of y (or a guard returns nil and y is dropped).
        var y = uninitializedArray(count: x.count, of: Float.self)
        switch kind {
        case let .gelu(biasName, div, add, mul):
            let bias = biasName.flatMap { constants[$0] }
            if biasName != nil { guard let b = bias, Self.isRow(b, cols) else { return nil } }
            x.floats.withUnsafeBufferPointer { px in
                (bias?.floats ?? []).withUnsafeBufferPointer { pb in
                    y.withUnsafeMutableBufferPointer { py in
                        mpq_bias_gelu_f32(MPQ_PATH_AUTO, px.baseAddress, rows, cols, bias == nil ? nil : pb.baseAddress,
                                          div, add, mul, py.baseAddress, rowThreads(x.count))
                    }
                }
            }
        case let .softmax(scale, divide, maskName):
            var offsets: [Int] = []
            var mask: Tensor?
            if maskName != nil {
                guard let m = ins.count > 1 ? ins[1] : nil, m.dtype == .float32,
                      let o = Self.rowOffsets(mask: m.shape, x: x.shape) else { return nil }
                offsets = o; mask = m
            }
            // The rows, mask and its offsets as the kernels take them, for either output.
            let args = { (body: (UnsafePointer<Float>?, UnsafePointer<Float>?, UnsafePointer<Int>?) -> Void) in
                x.floats.withUnsafeBufferPointer { px in
                    (mask?.floats ?? []).withUnsafeBufferPointer { pm in
                        offsets.withUnsafeBufferPointer { po in body(px.baseAddress, mask == nil ? nil : pm.baseAddress, po.baseAddress) }
                    }
                }
            }
            if let (q, path) = codes {
                var values = [UInt8]()
                args { px, pm, po in
                    // Every code is written by the kernel.
                    values = uninitializedArray(count: x.count) { py in
                        mpq_scaled_masked_softmax_u8(MPQ_PATH_AUTO, px, rows, cols, scale, divide ? 1 : 0, pm, po, path.c,
                                                     q.scale, q.zeroPoint, py, rowThreads(x.count))
                    }
                }
                return Tensor(shape: x.shape, codes: QuantizedCodes(values: values, scale: q.scale, zeroPoint: q.zeroPoint))
            }
            args { px, pm, po in
                y.withUnsafeMutableBufferPointer { py in
                    mpq_scaled_masked_softmax_f32(MPQ_PATH_AUTO, px, rows, cols, scale, divide ? 1 : 0, pm, po, py.baseAddress,
                                                  rowThreads(x.count))
                }
            }
        case let .layerNorm(biasName, _, scaleName, betaName, epsilon):
            guard ins.count > 1, let r = ins[1], r.dtype == .float32, r.shape == x.shape,
                  let scale = constants[scaleName], Self.isRow(scale, cols) else { return nil }
            let bias = biasName.flatMap { constants[$0] }
            if biasName != nil { guard let b = bias, Self.isRow(b, cols) else { return nil } }
            let beta = betaName.flatMap { constants[$0] }
            if betaName != nil { guard let b = beta, Self.isRow(b, cols) else { return nil } }
            // LayerNormalization without B adds zeros, as the op does.
            let betaValues = beta?.floats ?? [Float](repeating: 0, count: cols)
            x.floats.withUnsafeBufferPointer { px in
                r.floats.withUnsafeBufferPointer { pr in
                    (bias?.floats ?? []).withUnsafeBufferPointer { pb in
                        scale.floats.withUnsafeBufferPointer { ps in
                            betaValues.withUnsafeBufferPointer { pbeta in
                                y.withUnsafeMutableBufferPointer { py in
                                    mpq_add_layernorm_f32(MPQ_PATH_AUTO, px.baseAddress, bias == nil ? nil : pb.baseAddress,
                                                          pr.baseAddress, rows, cols, ps.baseAddress, pbeta.baseAddress,
                                                          epsilon, py.baseAddress, normThreads(x.count))
                                }
                            }
                        }
                    }
                }
            }
        }
        return Tensor(shape: x.shape, floats: y)
    }

    /// A float32 constant of exactly `cols` values along one axis (a per-column bias, scale).
    static func isRow(_ t: Tensor, _ cols: Int) -> Bool { t.dtype == .float32 && t.rank == 1 && t.shape[0] == cols }

    /// Per row of `x` (all axes but the last), the offset of the mask row added to it, when
    /// the mask broadcasts to `x` without enlarging it and has `x`'s last dimension.
    static func rowOffsets(mask: [Int], x: [Int]) -> [Int]? {
        guard mask.count <= x.count, let n = x.last, mask.last == n else { return nil }
        let m = [Int](repeating: 1, count: x.count - mask.count) + mask
        for (a, b) in zip(m, x) where a != b && a != 1 { return nil }
        // Element strides of the mask, 0 along broadcast axes.
        var strides = [Int](repeating: 0, count: m.count)
        var s = 1
        for d in stride(from: m.count - 1, through: 0, by: -1) { strides[d] = m[d] == 1 ? 0 : s; s *= m[d] }
        let lead = Array(x.dropLast())
        let rows = lead.reduce(1, *)
        var offsets = [Int](repeating: 0, count: rows)
        var idx = [Int](repeating: 0, count: lead.count)
        for r in 0..<rows {
            var o = 0
            for d in 0..<lead.count { o += idx[d] * strides[d] }
            offsets[r] = o
            var d = lead.count - 1
            while d >= 0 { idx[d] += 1; if idx[d] < lead[d] { break }; idx[d] = 0; d -= 1 }
        }
        return offsets
    }
}

// MARK: - Finding the chains

extension TransformerFusion {
    /// Every chain in `plan`, keyed by the plan index it runs at (its first node's).
    static func find(plan: [Node], constants: [String: Tensor], graphOutputs: Set<String>, opset: Int) -> [Int: TransformerFusion] {
        let g = PlanView(plan: plan, constants: constants, graphOutputs: graphOutputs)
        var found: [Int: TransformerFusion] = [:]
        var used = Set<Int>()
        for (i, n) in plan.enumerated() where SiluFusion.isDefaultDomain(n) && n.attributes[FusedActivation.attributeKey] == nil {
            let f: TransformerFusion?
            switch n.opType {
            case "Div": f = g.gelu(div: i)
            case "Softmax": f = opset >= 13 ? g.softmax(i) : nil
            case "LayerNormalization": f = g.layerNorm(i)
            default: f = nil
            }
            guard let f, f.nodes.allSatisfy({ !used.contains($0) }) else { continue }
            used.formUnion(f.nodes)
            found[f.nodes[0]] = f
        }
        return found
    }
}

/// Readers, producers and constants of a plan, for matching chains.
struct PlanView {
    let plan: [Node]
    let constants: [String: Tensor]
    let graphOutputs: Set<String>
    var readers: [String: [Int]] = [:]
    var producer: [String: Int] = [:]

    init(plan: [Node], constants: [String: Tensor], graphOutputs: Set<String>) {
        self.plan = plan; self.constants = constants; self.graphOutputs = graphOutputs
        for (i, n) in plan.enumerated() {
            for v in n.inputs where !v.isEmpty { readers[v, default: []].append(i) }
            for v in n.outputs where !v.isEmpty { producer[v] = i }
        }
    }

    /// A plain default-domain node of `op` with one output.
    func node(_ i: Int, _ op: String) -> Node? {
        let n = plan[i]
        guard n.opType == op, SiluFusion.isDefaultDomain(n), n.attributes[FusedActivation.attributeKey] == nil,
              n.outputs.count == 1, !n.outputs[0].isEmpty else { return nil }
        return n
    }

    /// An intermediate only `reader` reads (and no graph output): what a fusion may drop.
    func onlyFeeds(_ v: String, _ reader: Int) -> Bool { readers[v] == [reader] && !graphOutputs.contains(v) }

    /// The value of a float32 constant holding one number.
    func scalar(_ v: String) -> Float? {
        guard let t = constants[v], t.dtype == .float32, t.count == 1, t.rank <= 1 else { return nil }
        return t.floats[0]
    }

    /// The single reader of `v`, when it has exactly one and `v` is no graph output.
    func soleReader(_ v: String) -> Int? {
        guard let r = readers[v], r.count == 1, !graphOutputs.contains(v) else { return nil }
        return r[0]
    }

    /// For a binary node with operands {`v`, other}, the other one.
    func other(_ n: Node, than v: String) -> String? {
        guard n.inputs.count == 2 else { return nil }
        if n.inputs[0] == v { return n.inputs[1] }
        if n.inputs[1] == v { return n.inputs[0] }
        return nil
    }

    /// A bias Add producing `h` (Add(bias, x) or Add(x, bias), bias a constant 1-D tensor,
    /// x computed) whose output only `readersOfH` read: (its index, x, bias).
    func biasAdd(producing h: String, readersOfH: [Int]) -> (Int, String, String)? {
        guard let pi = producer[h], let add = node(pi, "Add"), add.inputs.count == 2,
              readers[h]?.sorted() == readersOfH.sorted(), !graphOutputs.contains(h) else { return nil }
        let (a, b) = (add.inputs[0], add.inputs[1])
        for (bias, x) in [(a, b), (b, a)] {
            if let t = constants[bias], t.rank == 1, t.dtype == .float32, constants[x] == nil, !x.isEmpty { return (pi, x, bias) }
        }
        return nil
    }

    func gelu(div di: Int) -> TransformerFusion? {
        guard let div = node(di, "Div"), div.inputs.count == 2, constants[div.inputs[0]] == nil,
              let c1 = scalar(div.inputs[1]) else { return nil }
        let h = div.inputs[0], d = div.outputs[0]
        guard let ei = soleReader(d), let erf = node(ei, "Erf"), erf.inputs == [d],
              let ai = soleReader(erf.outputs[0]), let add = node(ai, "Add"),
              let c2Name = other(add, than: erf.outputs[0]), let c2 = scalar(c2Name),
              let mi = soleReader(add.outputs[0]), let mul = node(mi, "Mul"), other(mul, than: add.outputs[0]) == h,
              let m2i = soleReader(mul.outputs[0]), let mul2 = node(m2i, "Mul"),
              let c3Name = other(mul2, than: mul.outputs[0]), let c3 = scalar(c3Name),
              let hReaders = readers[h], hReaders.sorted() == [di, mi].sorted(), !graphOutputs.contains(h) else { return nil }
        var indices = [di, ei, ai, mi, m2i]
        var intermediates = [d, erf.outputs[0], add.outputs[0], mul.outputs[0]]
        var x = h
        var bias: String?
        if let (bi, bx, b) = biasAdd(producing: h, readersOfH: [di, mi]) {
            indices.insert(bi, at: 0); intermediates.append(h); x = bx; bias = b
        }
        guard indices == indices.sorted() else { return nil }
        let names = indices.map { plan[$0].name }
        let fused = Node(name: erf.name, opType: "Erf", inputs: [x] + (bias.map { [$0] } ?? []), outputs: mul2.outputs)
        return TransformerFusion(kind: .gelu(bias: bias, div: c1, add: c2, mul: c3), nodes: indices, names: names,
                                 node: fused, intermediates: intermediates)
    }

    func softmax(_ si: Int) -> TransformerFusion? {
        guard let sm = node(si, "Softmax"), sm.inputs.count == 1, sm.int("axis", default: -1) == -1 else { return nil }
        var indices = [si]
        var intermediates: [String] = []
        var v = sm.inputs[0]
        var mask: String?
        // Add(mask): the other operand is any value computed before the chain starts.
        if let ai = producer[v], let add = node(ai, "Add"), onlyFeeds(v, si), add.inputs.count == 2 {
            let (a, b) = (add.inputs[0], add.inputs[1])
            // The scaled scores are the operand a Mul/Div produces; else the first.
            let scoresFirst = producer[a].map { ["Mul", "Div"].contains(plan[$0].opType) } ?? false
            let (s, m) = scoresFirst || !(producer[b].map { ["Mul", "Div"].contains(plan[$0].opType) } ?? false) ? (a, b) : (b, a)
            guard !s.isEmpty, !m.isEmpty, s != m else { return nil }
            indices.insert(ai, at: 0); intermediates.append(v); mask = m; v = s
        }
        var scale: Float = 1, divide = false
        if let pi = producer[v], let op = plan[pi].outputs.first, op == v, onlyFeeds(v, indices[0]),
           let n = node(pi, plan[pi].opType), ["Mul", "Div"].contains(n.opType), n.inputs.count == 2 {
            let isDiv = n.opType == "Div"
            var found: (String, Float)?
            if let c = scalar(n.inputs[1]), constants[n.inputs[0]] == nil { found = (n.inputs[0], c) }
            else if !isDiv, let c = scalar(n.inputs[0]), constants[n.inputs[1]] == nil { found = (n.inputs[1], c) }
            if let (x, c) = found {
                indices.insert(pi, at: 0); intermediates.append(v); v = x; scale = c; divide = isDiv
            }
        }
        guard indices.count > 1, indices == indices.sorted() else { return nil }
        // The mask must exist when the chain runs (at its first node).
        if let m = mask, let p = producer[m], p >= indices[0] { return nil }
        let fused = Node(name: sm.name, opType: "Softmax", inputs: [v] + (mask.map { [$0] } ?? []), outputs: sm.outputs)
        return TransformerFusion(kind: .softmax(scale: scale, divide: divide, mask: mask), nodes: indices,
                                 names: indices.map { plan[$0].name }, node: fused, intermediates: intermediates)
    }

    func layerNorm(_ li: Int) -> TransformerFusion? {
        guard let ln = plan[li].opType == "LayerNormalization" ? plan[li] : nil, SiluFusion.isDefaultDomain(ln),
              ln.attributes[FusedActivation.attributeKey] == nil,
              ln.outputs.count == 1 || ln.outputs.dropFirst().allSatisfy(\.isEmpty),
              ln.int("axis", default: -1) == -1, ln.inputs.count >= 2, let scale = ln.input(1), constants[scale] != nil else { return nil }
        let beta = ln.input(2)
        if let b = beta, constants[b] == nil { return nil }
        let r = ln.inputs[0]
        guard let ri = producer[r], let add = node(ri, "Add"), add.inputs.count == 2, onlyFeeds(r, li) else { return nil }
        var indices = [ri, li]
        var intermediates = [r]
        var (x, residual) = (add.inputs[0], add.inputs[1])
        var bias: String?
        for (h, res) in [(add.inputs[0], add.inputs[1]), (add.inputs[1], add.inputs[0])] {
            if let (bi, bx, b) = biasAdd(producing: h, readersOfH: [ri]) {
                indices.insert(bi, at: 0); intermediates.append(h); x = bx; residual = res; bias = b
                break
            }
        }
        guard !x.isEmpty, !residual.isEmpty, constants[x] == nil, constants[residual] == nil,
              indices == indices.sorted() else { return nil }
        // The residual must exist when the chain runs (at its first node).
        if let p = producer[residual], p >= indices[0] { return nil }
        let fused = Node(name: ln.name, opType: "LayerNormalization", inputs: [x, residual] + (bias.map { [$0] } ?? []),
                         outputs: [ln.outputs[0]])
        return TransformerFusion(kind: .layerNorm(bias: bias, residual: residual, scale: scale, beta: beta,
                                                  epsilon: ln.float("epsilon", default: 1e-5)),
                                 nodes: indices, names: indices.map { plan[$0].name }, node: fused, intermediates: intermediates)
    }
}

/// A bias Add after a MatMul with a constant [K, N] weight (the Q, K, V projections, whose
/// output goes to a Reshape): the MatMul runs as it would (its INT8 override included), then
/// the bias is added in place, split over the cores, instead of a single-threaded broadcast
/// Add into a new tensor. One float add per element either way: bit for bit the unfused Add.
struct BiasAddFusion {
    /// Plan indices of the MatMul and the Add.
    let matmul: Int, add: Int
    let bias: String
    /// The MatMul's output (gone when fused) and the Add's.
    let intermediate: String, output: String
    let addName: String

    func applies(keep: Set<String>, overrides: [String: NodeOverride]) -> Bool {
        !keep.contains(intermediate) && overrides[addName] == nil
    }

    /// The MatMul and the Add in one call for an FP32 MatMul (`inputs` its A and B) that runs
    /// on the packed GEMM: the bias added in the GEMM's epilogue, no second pass over the
    /// product, the same bits (`LinearOps.MatMulAddingBias`). Nil where it does not run there;
    /// the MatMul then runs as it is and `apply` adds the bias.
    func productAddingBias(_ inputs: [Tensor?], constants: [String: Tensor], packWeights: LinearWeightPacker?) -> Tensor? {
        guard inputs.count == 2, let a = inputs[0], let b = inputs[1], let bias = constants[bias] else { return nil }
        return LinearOps.MatMulAddingBias(a: a, b: b, bias: bias, packWeights: packWeights)
    }

    /// Adds the bias to the MatMul's output `y` (shape [..., N], N the bias length).
    func apply(_ y: Tensor, constants: [String: Tensor]) -> Tensor? {
        let y = y.materialized()
        // float32 only: an Add of a float16-tagged product and a float32 bias would tag its output differently.
        guard y.dtype == .float32, let b = constants[bias], let n = y.shape.last, b.count == n, n > 0 else { return nil }
        // Into a new array: the caller still holds the product, so adding in place made Swift
        // copy it first (a single-threaded copy of the whole output, then the add).
        let sum: [Float] = y.floats.withUnsafeBufferPointer { px in
            b.floats.withUnsafeBufferPointer { pb in
                uninitializedArray(count: px.count) {
                    mpq_add_bias_rows_into_f32(px.baseAddress, px.count / n, n, pb.baseAddress, $0, rowThreads(px.count))
                }
            }
        }
        return Tensor(shape: y.shape, floats: sum)
    }

    /// Every MatMul -> bias Add pair not already inside a `TransformerFusion`, by the MatMul's index.
    static func find(plan: [Node], constants: [String: Tensor], graphOutputs: Set<String>,
                     taken: Set<Int>) -> [Int: BiasAddFusion] {
        var readers: [String: [Int]] = [:]
        for (i, n) in plan.enumerated() { for v in n.inputs where !v.isEmpty { readers[v, default: []].append(i) } }
        var found: [Int: BiasAddFusion] = [:]
        for (mi, mm) in plan.enumerated() where mm.opType == "MatMul" && SiluFusion.isDefaultDomain(mm) && !taken.contains(mi) {
            guard mm.inputs.count == 2, mm.outputs.count == 1, mm.attributes[FusedActivation.attributeKey] == nil,
                  let w = constants[mm.inputs[1]], w.rank == 2, constants[mm.inputs[0]] == nil,
                  let v = mm.outputs.first, !v.isEmpty, !graphOutputs.contains(v),
                  let r = readers[v], r.count == 1, !taken.contains(r[0]) else { continue }
            let add = plan[r[0]]
            guard add.opType == "Add", SiluFusion.isDefaultDomain(add), add.inputs.count == 2, add.outputs.count == 1,
                  add.attributes[FusedActivation.attributeKey] == nil, !add.outputs[0].isEmpty else { continue }
            let bias = add.inputs[0] == v ? add.inputs[1] : add.inputs[0]
            guard bias != v, let b = constants[bias], b.rank == 1, b.dtype == .float32, b.count == w.shape[1] else { continue }
            found[mi] = BiasAddFusion(matmul: mi, add: r[0], bias: bias, intermediate: v, output: add.outputs[0], addName: add.name)
        }
        return found
    }
}
