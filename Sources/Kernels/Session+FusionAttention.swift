import CKernels
import Foundation
import ONNX

/// Attention's scores-to-context span as one pass per (batch, head) matrix: Q·Kᵀ, the scale +
/// mask + Softmax chain (`TransformerFusion.Kind.softmax`), probabilities·V, and, where the
/// context goes to a head merge Transpose(0, 2, 1, 3), that Transpose folded into where each
/// context row is written.
///
/// Why: unfused, the scores and the probabilities ([batch, heads, L, L] floats: 12.6 MB per
/// MiniLM layer at batch 16) go to memory and back twice, and the merge copies the context
/// once more. Here a matrix's scores stay in one scratch that fits in L2 from its product to
/// its use (`benchmarks/fp32_attention_fused.c`, one thread: 0.88x the three passes at
/// 192 matrices, 0.92x at 12).
///
/// Bits: each product is the one the unfused batched MatMul computes (`mpq_slinear_f32_rows`
/// or a packed B and `mpq_slinear_f32`: the FMA chain over k in order from +0, whatever the
/// split), and the rows go through the softmax chain's row kernel; so the fusion applies only
/// where both unfused MatMuls would run on mpq's batched GEMM (`usesBatchedPackedGemm`, not
/// OpenBLAS), with Q, Kᵀ and V of one batch shape (no broadcast), and, as the other fusions,
/// only when nobody can tell (no observer but the profiler, no kept intermediate, no override).
/// Where it does not apply, the MatMuls run as they are and the Softmax chain fuses on its own.
struct AttentionFusion {
    /// The chain in the middle (kind `.softmax`).
    let softmax: TransformerFusion
    /// Plan indices: the Q·Kᵀ MatMul (where it runs), the softmax chain's, the context MatMul,
    /// the merge Transpose if any.
    let nodes: [Int]
    /// Their names and the head-split Transposes' (`splits`): an override on any turns the span off.
    let names: [String]
    /// What the run sees: named as the Softmax (where `mpq profile` puts the time), reading
    /// [Q, Kᵀ, V] and the mask if any, writing the last node's output.
    let node: Node
    /// Values that exist only unfused.
    let intermediates: [String]
    /// The context is written as [batch, L, heads, Dv] (the merge Transpose's output).
    let mergeHeads: Bool
    /// The head-split Transposes the span reads through, by plan index: which operand (0 Q,
    /// 1 Kᵀ, 2 V) each writes. In a run where the span applies, such a Transpose moves its
    /// [batch, L, heads, D] input into its output's slot untouched (`Session.run`), and the
    /// span reads that operand as `raw`: rows at a stride of heads·D (Q, V), Kᵀ transposed per
    /// matrix in the chunk's scratch. Where the span then cannot run, the run transposes them
    /// after all (the same bytes as the Transpose: a copy).
    let splits: [Int: Int]
    /// The head-split Transposes' perms, per operand (Q, Kᵀ, V).
    static let splitPerms = [[0, 2, 1, 3], [0, 2, 3, 1], [0, 2, 1, 3]]

    func applies(keep: Set<String>, overrides: [String: NodeOverride]) -> Bool {
        intermediates.allSatisfy { !keep.contains($0) } && names.allSatisfy { overrides[$0] == nil }
    }

    /// The context from `inputs` (resolved `node.inputs`), or nil where the unfused nodes would
    /// not compute these bits (shapes, types, a product on OpenBLAS): they then run unfused.
    /// `raw`: per operand (Q, Kᵀ, V), whether it is a head-split Transpose's input ([batch, L,
    /// heads, D]; `splits`) rather than its output.
    func run(_ inputs: [Tensor?], raw: [Bool] = [false, false, false],
             choice: FP32GemmChoice = FP32GemmChoice.environment) -> Tensor? {
        guard case let .softmax(scale, divide, maskName) = softmax.kind, inputs.count == (maskName == nil ? 3 : 4) else { return nil }
        let ins = Session.materialized(inputs)
        guard let q = ins[0], let kt = ins[1], let v = ins[2], [q, kt, v].allSatisfy({ $0.dtype == .float32 }),
              q.rank >= 3, kt.rank == q.rank, v.rank == q.rank, !raw.contains(true) || q.rank == 4 else { return nil }
        // Batch dims and matrix dims of each operand as the MatMuls see it.
        func split(_ t: Tensor, _ isRaw: Bool) -> (batch: [Int], rows: Int, cols: Int) {
            isRaw ? ([t.shape[0], t.shape[2]], t.shape[1], t.shape[3]) : (Array(t.shape.dropLast(2)), t.shape[t.rank - 2], t.shape[t.rank - 1])
        }
        let (qs, ks, vs) = (split(q, raw[0]), split(kt, raw[1]), split(v, raw[2]))
        let batch = qs.batch
        guard ks.batch == batch, vs.batch == batch else { return nil }
        // A raw K is [batch, S, heads, D]: its transpose has D rows of S.
        let (l, d, s, dv) = (qs.rows, qs.cols, raw[1] ? ks.rows : ks.cols, vs.cols)
        guard (raw[1] ? ks.cols : ks.rows) == d else { return nil }
        // A raw V is read in place only (its rows at a stride): whole vectors.
        if raw[2], dv % 16 != 0 { return nil }
        let count = batch.reduce(1, *)
        guard vs.rows == s, count >= 2, l > 0, d > 0, s > 0, dv > 0,
              LinearOps.usesBatchedPackedGemm(batchCount: count, m: l, k: d, n: s, choice: choice),
              LinearOps.usesBatchedPackedGemm(batchCount: count, m: l, k: s, n: dv, choice: choice) else { return nil }
        if mergeHeads { guard q.rank == 4 else { return nil } }
        var offsets: [Int] = []
        var mask: Tensor?
        if maskName != nil {
            guard let m = ins[3], m.dtype == .float32, let o = TransformerFusion.rowOffsets(mask: m.shape, x: batch + [l, s])
            else { return nil }
            offsets = o; mask = m
        }
        let heads = mergeHeads || raw.contains(true) ? batch[1] : 1
        let outShape = mergeHeads ? [batch[0], l, heads, dv] : batch + [l, dv]
        let total = count * l * dv
        let out = [Float](unsafeUninitializedCapacity: total) { po, written in
            q.floats.withUnsafeBufferPointer { pq in
                kt.floats.withUnsafeBufferPointer { pk in
                    v.floats.withUnsafeBufferPointer { pv in
                        (mask?.floats ?? []).withUnsafeBufferPointer { pm in
                            offsets.withUnsafeBufferPointer { poff in
                                Self.products(q: pq.baseAddress!, kt: pk.baseAddress!, v: pv.baseAddress!,
                                              mask: mask == nil ? nil : pm.baseAddress, offsets: poff.baseAddress,
                                              scale: scale, divide: divide, count: count, heads: heads, l: l, d: d, s: s, dv: dv,
                                              raw: raw, mergeHeads: mergeHeads, out: po.baseAddress!)
                            }
                        }
                    }
                }
            }
            written = total
        }
        return Tensor(shape: outShape, floats: out)
    }

    /// Matrix i: scores = Q[i]·Kᵀ[i] into a per-chunk scratch, the softmax chain's rows in
    /// place, context = probabilities·V[i] into `out` (row stride dv, or heads·dv at
    /// [b, ·, h, ·] when merging heads). Chunks of matrices over the pool, as
    /// `batchedPackedProduct` splits them.
    private static func products(q: UnsafePointer<Float>, kt: UnsafePointer<Float>, v: UnsafePointer<Float>,
                                 mask: UnsafePointer<Float>?, offsets: UnsafePointer<Int>?, scale: Float, divide: Bool,
                                 count: Int, heads: Int, l: Int, d: Int, s: Int, dv: Int, raw: [Bool], mergeHeads: Bool,
                                 out: UnsafeMutablePointer<Float>) {
        let threads = min(Int(LinearOps.packedGemmThreads(macs: count * l * d * s)), count)
        let chunks = threads > 1 ? min(count, 4 * threads) : 1
        // B read in place where its rows are whole vectors, else packed (as the unfused product).
        let packScores = s % 16 != 0, packContext = dv % 16 != 0
        let packBytes = max(packScores ? mpq_slinear_pack_weights_size(Int32(d), Int32(s)) : 0,
                            packContext ? mpq_slinear_pack_weights_size(Int32(s), Int32(dv)) : 0)
        poolPerform(threads: threads, chunks: chunks) { chunk in
            let scores = UnsafeMutablePointer<Float>.allocate(capacity: l * s)
            let keys = raw[1] ? UnsafeMutablePointer<Float>.allocate(capacity: d * s) : nil
            // One pack scratch for both products (each packs its B into it when its rows are no whole vectors).
            let pack = packBytes > 0 ? UnsafeMutableRawPointer.allocate(byteCount: packBytes, alignment: 64) : nil
            defer { scores.deallocate(); keys?.deallocate(); pack?.deallocate() }
            for i in (count * chunk / chunks)..<(count * (chunk + 1) / chunks) {
                let (b, h) = (i / heads, i % heads)
                // Q rows, and V rows, at their place in [batch, L, heads, D] when raw.
                let (qi, lda) = raw[0] ? (q + (b * l * heads + h) * d, heads * d) : (q + i * l * d, d)
                var ki = kt + i * d * s
                if let keys {
                    // Kᵀ of this matrix: [D x S] from [S, heads, D] rows (the Transpose's bytes).
                    let dims: [UInt] = [UInt(d), UInt(s)], strides = [1, heads * d]
                    precondition(mpq_strided_copy(4, kt, (b * s * heads + h) * d, 2, dims, strides, keys, 1) == 0)
                    ki = UnsafePointer(keys)
                }
                LinearOps.matrixProduct(qi, m: l, k: d, lda: lda, ki, n: s, ldb: s, pack: packScores ? pack : nil, scores, ldy: s)
                mpq_scaled_masked_softmax_f32(MPQ_PATH_AUTO, scores, l, s, scale, divide ? 1 : 0, mask,
                                              offsets.map { $0 + i * l }, scores, 1)
                let (vi, ldb) = raw[2] ? (v + (b * s * heads + h) * dv, heads * dv) : (v + i * s * dv, dv)
                let y = mergeHeads ? out + (b * l * heads + h) * dv : out + i * l * dv
                LinearOps.matrixProduct(scores, m: l, k: s, lda: s, vi, n: dv, ldb: ldb, pack: packContext ? pack : nil, y,
                                        ldy: mergeHeads ? heads * dv : dv)
            }
        }
    }
}

// MARK: - Finding the spans

extension AttentionFusion {
    /// `MPQ_FP32_ATTENTION_SPAN=0`: no spans (the three passes, for an A/B).
    static let enabled = ProcessInfo.processInfo.environment["MPQ_FP32_ATTENTION_SPAN"] != "0"

    /// Every span around a softmax chain of `softmaxChains`, keyed by the plan index of its
    /// Q·Kᵀ MatMul (where it runs).
    static func find(plan: [Node], constants: [String: Tensor], graphOutputs: Set<String>,
                     softmaxChains: [TransformerFusion]) -> [Int: AttentionFusion] {
        guard enabled else { return [:] }
        let g = PlanView(plan: plan, constants: constants, graphOutputs: graphOutputs)
        var found: [Int: AttentionFusion] = [:]
        for f in softmaxChains {
            guard case let .softmax(_, _, mask) = f.kind, let scores = f.node.inputs.first, let probs = f.node.outputs.first,
                  let qi = g.producer[scores], let qk = g.node(qi, "MatMul"), qk.inputs.count == 2,
                  g.onlyFeeds(scores, f.nodes[0]),
                  let pi = g.soleReader(probs), let pv = g.node(pi, "MatMul"), pv.inputs.count == 2, pv.inputs[0] == probs,
                  pv.inputs[1] != probs else { continue }
            let (q, kt, v) = (qk.inputs[0], qk.inputs[1], pv.inputs[1])
            guard [q, kt, v].allSatisfy({ !$0.isEmpty && constants[$0] == nil }) else { continue }
            var indices = [qi] + f.nodes + [pi]
            var intermediates = [scores] + f.intermediates + [probs]
            var output = pv.outputs[0]
            var merge = false
            if let ti = g.soleReader(output), let t = g.node(ti, "Transpose"), t.ints("perm") == [0, 2, 1, 3] {
                indices.append(ti); intermediates.append(output); output = t.outputs[0]; merge = true
            }
            guard indices == indices.sorted() else { continue }
            // Head-split Transposes read only by the span's MatMuls.
            var splits: [Int: Int] = [:]
            for (k, (operand, reader)) in [(q, qi), (kt, qi), (v, pi)].enumerated() {
                if let ti = g.producer[operand], let t = g.node(ti, "Transpose"), t.inputs.count == 1, !t.inputs[0].isEmpty,
                   t.ints("perm") == splitPerms[k], g.onlyFeeds(operand, reader), constants[t.inputs[0]] == nil, ti < qi {
                    splits[ti] = k
                    intermediates.append(operand)
                }
            }
            // V and the mask must exist when the span runs (at the Q·Kᵀ MatMul).
            if let p = g.producer[v], p >= qi { continue }
            if let m = mask, let p = g.producer[m], p >= qi { continue }
            let node = Node(name: f.node.name, opType: "Softmax", inputs: [q, kt, v] + (mask.map { [$0] } ?? []), outputs: [output])
            let names = (indices + splits.keys.sorted()).map { plan[$0].name }
            found[qi] = AttentionFusion(softmax: f, nodes: indices, names: names, node: node,
                                        intermediates: intermediates, mergeHeads: merge, splits: splits)
        }
        return found
    }
}
