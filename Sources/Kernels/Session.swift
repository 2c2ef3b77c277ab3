import Foundation
import ONNX

/// Replaces how one node executes (an INT8 layer, for example). The session hands it the
/// node's resolved inputs, as it would an op function.
public typealias NodeOverride = (_ inputs: [Tensor?]) throws -> [Tensor]

/// Executes a graph. Built once per model: ops are resolved (unsupported ones fail here,
/// naming the node), constant subgraphs are folded, and each value's last reader is known
/// so intermediates are freed as soon as possible: memory is bounded by the batch.
public final class Session {
    public let graph: Graph
    /// Nodes left to execute per run, in topological order (constant-folded ones removed).
    public let plan: [Node]
    /// Initializers plus folded constants.
    public let constants: [String: Tensor]
    let entries: [OpEntry]
    let lastUse: [String: Int]
    /// Per plan index, the values that node is the last to read (graph outputs excepted):
    /// the run loop frees them after it without a lookup per input.
    let lastReads: [[String]]
    /// The run loop's value store is an array: every graph input and every plan node's input
    /// and output has a slot, so a run resolves and frees by index, not by hashing names.
    let slotOf: [String: Int]
    /// Per plan index: each input's slot (-1 for an absent optional input) and the constant it
    /// reads when nothing is stored there (a feed for a graph input overrides its initializer).
    let inputSlots: [[Int]]
    let inputConstants: [[Tensor?]]
    /// Per plan index: each output's slot, and the slots of `lastReads`.
    let outputSlots: [[Int]]
    let lastReadSlots: [[Int]]
    /// Per plan index and input: whether the run loop may move the value out of its slot
    /// instead of copying it (`takeInputs`): the node is its last reader (not a graph output)
    /// and this is its last position among the node's inputs.
    let movableInputs: [[Bool]]
    /// Per slot: whether the value is a graph output (the run returns it).
    let slotIsGraphOutput: [Bool]
    let planIndex: [String: Int]
    private let outputNames: Set<String>
    /// SiLUs after a Conv, by the Conv's plan index (`SiluFusion`).
    let siluFusions: [Int: SiluFusion]
    /// Residual Add -> Relu and Sigmoid -> Mul (SiLU) pairs, by the first node's plan index (`PairFusion`).
    let pairFusions: [Int: PairFusion]
    /// Conv -> residual Add [-> Relu], by the Conv's plan index (`ResidualFusion`).
    let residualFusions: [Int: ResidualFusion]
    /// How a pair runs fused when its nodes have overrides, keyed by the first node's name
    /// (set by the INT8 runtime; cleared with `overrides`).
    public var fusedOverrides: [String: FusedPairOverride] = [:]
    /// FP32 weights prepared once from the constants (Conv weights packed for the GEMM).
    let preparedWeights: PreparedWeights
    /// GELU, attention-softmax and residual-LayerNorm chains, by their first plan index
    /// (`TransformerFusion`).
    let transformerFusions: [Int: TransformerFusion]
    /// Q·Kᵀ -> softmax chain -> ·V [-> head merge] spans, by the Q·Kᵀ MatMul's plan index
    /// (`AttentionFusion`); where one does not apply, its softmax chain still may.
    let attentionFusions: [Int: AttentionFusion]
    /// The head-split Transposes those spans read through (`AttentionFusion.splits`), by plan
    /// index: the span's.
    let spanSplits: [Int: Int]
    /// MatMul -> bias Add pairs outside those chains, by the MatMul's plan index (`BiasAddFusion`).
    let biasAddFusions: [Int: BiasAddFusion]
    /// Transformer chains run fused since the session was made (tests check fusions happen).
    private(set) var fusedChainsRun = 0
    /// Of those, attention spans (`AttentionFusion`; each counts once, for its softmax chain).
    private(set) var attentionSpansRun = 0
    /// Of those, bias Adds taken into an FP32 MatMul's GEMM epilogue (`LinearOps.MatMulAddingBias`).
    private(set) var biasEpilogueRuns = 0
    /// Runs of per-image nodes executed image by image at batch > 1, by their first plan
    /// index (`ImageChain`, docs/image-chains.md).
    let imageChains: [Int: ImageChain]
    /// Convs that chains run in the channel-blocked layout (`findBlockedConvs`,
    /// docs/fp32-blocked-layout.md), by plan index.
    let blockedConvs: Set<Int>
    /// MaxPool / AveragePool nodes that chains run blocked between blocked Convs
    /// (`findBlockedPassThrough`, `runBlockedPool`), by plan index.
    let blockedPools: Set<Int>
    /// Their attributes, read once (`runBlockedPool`).
    let blockedPoolBindings: [Int: BlockedPoolBinding]
    /// Resize and channel Concat nodes that chains run blocked between blocked Convs (a YOLO
    /// neck; `runBlockedMove`), by plan index, each with its Resize index maps.
    let blockedMoveBindings: [Int: BlockedMoveBinding]
    /// Per plan index, for the blocked Convs: their attributes read once, as planned and as
    /// their SiLU / residual fusions rewrite them, and their packed weights remembered
    /// (`runBlockedConv`; nil elsewhere). A blocked Conv read ~8 attributes and two dictionary
    /// entries by name per run.
    let blockedBindings: [BlockedConvBinding?]
    /// Whether they do (`MPQ_FP32_BLOCKED=0` turns it off by default; the bytes are the same).
    public var runsBlockedConvs = Session.blockedDefault
    /// Per plan index: whether any fusion or image chain above starts there, so the run loop
    /// hashes into those tables only where one does.
    let startsFusion: [Bool]
    /// Per plan index: the node as the run loop may execute it (as planned, or as a SiLU or
    /// residual fusion rewrote it), each with its op bound once (`Session.bind`): a run finds
    /// its runner by the node's identity instead of reading attributes and hashing op types.
    let bound: [[(node: Node, run: BoundOp)]]
    /// Whether `run` uses `imageChains` (`MPQ_IMAGE_CHAINS=0` turns it off by default).
    public var runsImageChains = Session.imageChainsDefault
    /// Whether a chain whose Convs mostly run INT8 kernels (overrides) runs image by image:
    /// nil (the default) decides by the images' size (`chainRunsImageByImage`); true or false
    /// always or never (environment `MPQ_INT8_IMAGE_CHAINS=1|0`). docs/image-chains.md, "INT8".
    public var int8ImageChains: Bool? = Session.int8ImageChainsDefault
    /// The same for every other chain (`chainRunsImageByImage`; environment
    /// `MPQ_FP32_IMAGE_CHAINS=1|0`).
    public var fp32ImageChains: Bool? = Session.fp32ImageChainsDefault
    /// Image chains run since the session was made (tests check they happen).
    private(set) var imageChainsRun = 0
    /// Convs run with their residual Add fused since the session was made (tests check the
    /// fusion happens; image chains count from several threads, hence the lock).
    var residualFusionsRun: Int { residualRunLock.lock(); defer { residualRunLock.unlock() }; return residualRuns }
    private var residualRuns = 0
    private let residualRunLock = NSLock()
    /// Convs run blocked since the session was made (tests check they happen; same lock).
    var blockedConvsRun: Int { residualRunLock.lock(); defer { residualRunLock.unlock() }; return blockedRuns }
    private var blockedRuns = 0
    func countBlockedConv(residual: Bool) {
        residualRunLock.lock(); blockedRuns += 1; if residual { residualRuns += 1 }; residualRunLock.unlock()
    }
    /// Pools run blocked since the session was made (tests check they happen; same lock).
    var blockedPoolsRun: Int { residualRunLock.lock(); defer { residualRunLock.unlock() }; return blockedPoolRuns }
    private var blockedPoolRuns = 0
    func countBlockedPool() { residualRunLock.lock(); blockedPoolRuns += 1; residualRunLock.unlock() }
    /// Resize / Concat nodes run blocked since the session was made (tests check they happen; same lock).
    var blockedMovesRun: Int { residualRunLock.lock(); defer { residualRunLock.unlock() }; return blockedMoveRuns }
    private var blockedMoveRuns = 0
    func countBlockedMove() { residualRunLock.lock(); blockedMoveRuns += 1; residualRunLock.unlock() }
    /// Chains run over the whole batch for their blocked Convs (`runBlockedChain`).
    private(set) var blockedChainsRun = 0
    /// Where `profile` collects each node's time in the runs it times (nil otherwise: one nil
    /// check per node).
    var runTimer: RunTimer?

    /// Per-node replacements, keyed by node name. Set by the mixed-precision layer.
    /// Changing them forgets `codesInputNodes` (an override set later may need floats).
    public var overrides: [String: NodeOverride] = [:] {
        didSet { codesInputNodes = []; fusedOverrides = [:]; chainOutputCodes = [:] }
    }
    /// Fused GELU chains whose output only INT8 linear layers read, all on one grid (set by
    /// the INT8 runtime under its uint8 chains; cleared with `overrides`): the chain writes
    /// that grid's codes instead of floats (`mpq_bias_gelu_u8`, the same codes the readers
    /// would compute). Not where the output is kept, a graph output or seen by an observer
    /// (the profiler, which sees codes, excepted).
    var chainOutputCodes: [String: ActivationQuant] = [:]
    /// The INT8 path those codes are quantized on (the runtime's `path`, read at run time).
    var chainCodesPath: () -> KernelPath = { .auto }
    /// Nodes whose override reads inputs held as uint8 codes (`Tensor.codes`, the INT8
    /// runtime's chains, docs/int8-chains.md). Every other node, every graph output, kept
    /// value and observer sees floats: the session materialises codes for them.
    public var codesInputNodes: Set<String> = []

    public init(graph: Graph, foldConstants: Bool = true) throws {
        _ = HeapReuse.configured
        self.graph = graph
        self.outputNames = Set(graph.outputs.map(\.name))
        var consts = graph.initializers
        var plan: [Node] = []
        var entries: [OpEntry] = []
        // Resolve every op first: an unsupported op fails before anything runs.
        let resolved = try graph.nodes.map { try OpRegistry.entry(for: $0, opset: graph.opset(forDomain: $0.domain)) }
        let graphInputs = Set(graph.inputs.map(\.name))
        for (node, entry) in zip(graph.nodes, resolved) {
            let foldable = foldConstants && !Session.neverFold.contains(node.opType)
                && node.inputs.allSatisfy { $0.isEmpty || (consts[$0] != nil && !graphInputs.contains($0)) }
            if foldable {
                let ins = node.inputs.map { $0.isEmpty ? nil : consts[$0] }
                let outs = try Session.execute(node, entry, ins, opset: graph.opset(forDomain: node.domain))
                for (name, t) in zip(node.outputs, outs) where !name.isEmpty { consts[name] = t }
            } else {
                plan.append(node); entries.append(entry)
            }
        }
        self.plan = plan
        self.entries = entries
        self.constants = consts
        var lastUse: [String: Int] = [:]
        for (i, n) in plan.enumerated() { for v in n.inputs where !v.isEmpty { lastUse[v] = i } }
        let outputNames = self.outputNames
        lastReads = plan.enumerated().map { i, n in
            var seen = Set<String>()
            return n.inputs.filter { !$0.isEmpty && lastUse[$0] == i && !outputNames.contains($0) && seen.insert($0).inserted }
        }
        self.lastUse = lastUse
        var slotOf: [String: Int] = [:]
        for name in graph.inputs.map(\.name) + plan.flatMap({ $0.inputs + $0.outputs }) where !name.isEmpty && slotOf[name] == nil {
            slotOf[name] = slotOf.count
        }
        self.slotOf = slotOf
        inputSlots = plan.map { $0.inputs.map { $0.isEmpty ? -1 : slotOf[$0]! } }
        inputConstants = plan.map { $0.inputs.map { $0.isEmpty ? nil : consts[$0] } }
        outputSlots = plan.map { $0.outputs.map { $0.isEmpty ? -1 : slotOf[$0]! } }
        lastReadSlots = lastReads.map { $0.map { slotOf[$0]! } }
        let reads = lastReads
        movableInputs = plan.enumerated().map { i, n in
            n.inputs.enumerated().map { k, v in reads[i].contains(v) && n.inputs[(k + 1)...].allSatisfy { $0 != v } }
        }
        var isOutput = [Bool](repeating: false, count: slotOf.count)
        for (name, s) in slotOf where outputNames.contains(name) { isOutput[s] = true }
        slotIsGraphOutput = isOutput
        var planIndex: [String: Int] = [:]
        for (i, n) in plan.enumerated() { planIndex[n.name] = i }
        self.planIndex = planIndex
        siluFusions = SiluFusion.find(plan: plan, graphOutputs: outputNames)
        pairFusions = PairFusion.find(plan: plan, graphOutputs: outputNames)
        residualFusions = ResidualFusion.residualFusionsEnabled ? ResidualFusion.find(plan: plan, graphOutputs: outputNames) : [:]
        // Graph inputs are left out: a feed may replace their initializer.
        preparedWeights = PreparedWeights(constants: consts.filter { !graphInputs.contains($0.key) })
        transformerFusions = TransformerFusion.find(plan: plan, constants: consts, graphOutputs: outputNames,
                                                    opset: graph.opset(forDomain: ""))
        attentionFusions = AttentionFusion.find(plan: plan, constants: consts, graphOutputs: outputNames,
                                                softmaxChains: transformerFusions.values.filter {
                                                    if case .softmax = $0.kind { return true } else { return false }
                                                })
        var splits: [Int: Int] = [:]
        for (anchor, a) in attentionFusions { for t in a.splits.keys { splits[t] = anchor } }
        spanSplits = splits
        biasAddFusions = BiasAddFusion.find(plan: plan, constants: consts, graphOutputs: outputNames,
                                            taken: Set(transformerFusions.values.flatMap(\.nodes)))
        let groups = siluFusions.values.map { [$0.conv, $0.sigmoid, $0.mul] } + pairFusions.values.map { [$0.first, $0.second] }
            + transformerFusions.map { [$0.key] + Array($0.value.nodes) } + attentionFusions.values.map(\.nodes)
            + biasAddFusions.map { [$0.key, $0.value.add] }
            + residualFusions.values.map { [$0.conv] + $0.fusedAway }
        imageChains = ImageChain.find(plan: plan, constants: consts, graphInputs: graphInputs, graphOutputs: outputNames,
                                      groups: groups, slotOf: slotOf)
        blockedConvs = Session.findBlockedConvs(plan: plan, constants: consts, graphInputs: graphInputs, chains: imageChains,
                                                silu: siluFusions, residual: residualFusions)
        let passing = Session.findBlockedPassThrough(plan: plan, chains: imageChains, blockedConvs: blockedConvs,
                                                     silu: siluFusions, residual: residualFusions)
        blockedPools = passing.filter { Session.isBlockedCapablePool(plan[$0]) }
        blockedPoolBindings = Dictionary(uniqueKeysWithValues: blockedPools.map { ($0, BlockedPoolBinding(plan[$0])) })
        blockedMoveBindings = Dictionary(uniqueKeysWithValues: passing.subtracting(blockedPools).map { ($0, BlockedMoveBinding()) })
        var blockedBindings = [BlockedConvBinding?](repeating: nil, count: plan.count)
        for i in blockedConvs {
            blockedBindings[i] = BlockedConvBinding(plain: ConvOps.ConvAttributes(plan[i]), silu: siluFusions[i].map { ConvOps.ConvAttributes($0.node) },
                                                    residual: residualFusions[i].map { ConvOps.ConvAttributes($0.node) }, weights: ConvRunMemo())
        }
        self.blockedBindings = blockedBindings
        var starts = [Bool](repeating: false, count: plan.count)
        for k in [Array(siluFusions.keys), Array(pairFusions.keys), Array(residualFusions.keys), Array(transformerFusions.keys),
                  Array(attentionFusions.keys), Array(spanSplits.keys), Array(biasAddFusions.keys), Array(imageChains.keys)].joined() {
            starts[k] = true
        }
        startsFusion = starts
        let opsets = plan.map { graph.opset(forDomain: $0.domain) }
        let (silu, residual) = (siluFusions, residualFusions)
        bound = plan.indices.map { i in
            let variants = [plan[i]] + [silu[i]?.node, residual[i]?.node].compactMap { $0 }
            return variants.map { ($0, Session.bind($0, entries[i], opset: opsets[i])) }
        }
    }

    /// `node`'s op as `Session.execute` runs it, with what it reads from the node's attributes
    /// read now: the op's own `bind` where it has one, and the activation a graph pass fused
    /// into a non-epilogue op.
    static func bind(_ node: Node, _ entry: OpEntry, opset: Int) -> BoundOp {
        let act = !node.attributes.isEmpty && !epilogueOps.contains(node.opType) ? FusedActivation(node: node) : nil
        let op: BoundOp = entry.bind?(node, opset) ?? { @Sendable inputs, prepared in
            if let prepared, let runPrepared = entry.runPrepared { return try runPrepared(node, inputs, opset, prepared) }
            return try entry.run(node, inputs, opset)
        }
        guard let act else { return op }
        return { @Sendable inputs, prepared in
            var outs = try op(inputs, prepared)
            if !outs.isEmpty { act.apply(&outs[0].floats) }
            return outs
        }
    }

    /// Ops whose kernel applies a fused Relu/Clip itself, in its per-image epilogue.
    static let epilogueOps: Set<String> = ["Conv"]

    /// Ops never folded even with constant inputs (none yet: every supported op is pure).
    static let neverFold: Set<String> = []

    /// Runs the graph. `observer` sees every executed node with its outputs (calibration,
    /// per-layer comparisons); `keep` names intermediate values to return besides the outputs.
    /// With `observeCodes` the observer may see tensors held as codes (`isCodesOnly`, only
    /// their shapes are meaningful then): the profiler, which must not time materialisation.
    public func run(_ feeds: [String: Tensor], keep: Set<String> = [], observeCodes: Bool = false,
                    observer: ((Node, [Tensor?], [Tensor]) -> Void)? = nil) throws -> [String: Tensor] {
        try run(feeds, keep: keep, fusing: observer == nil, observeCodes: observeCodes, observer: observer)
    }

    /// `fusing`: run each Conv -> Sigmoid -> Mul SiLU as one node (`SiluFusion`), and each
    /// residual Add -> Relu and INT8 Sigmoid -> Mul pair (`PairFusion`); the observer then
    /// sees the fused Conv (Add, Sigmoid) writing the Mul's (Relu's) output, and no second node.
    func run(_ feeds: [String: Tensor], keep: Set<String>, fusing: Bool, observeCodes: Bool = false,
             observer: ((Node, [Tensor?], [Tensor]) -> Void)?) throws -> [String: Tensor] {
        var values = [Tensor?](repeating: nil, count: slotOf.count)
        let mayHoldCodes = valuesMayBeCodes(feedsHoldCodes: feeds.values.contains { $0.codes != nil })
        for input in graph.inputs where constants[input.name] == nil || feeds[input.name] != nil {
            guard let t = feeds[input.name] else { throw RuntimeError.missingFeed(input: input.name) }
            values[slotOf[input.name]!] = t
        }
        func value(_ name: String) -> Tensor? { slotOf[name].flatMap { values[$0] } }
        var result: [String: Tensor] = [:]
        var fusedAway = Set<Int>()
        var rawSplits = Set<Int>()  // slots holding a head-split Transpose's input, for its span
        func free(_ slots: [Int], _ names: [String]) {
            for (s, v) in zip(slots, names) {
                if !keep.isEmpty && keep.contains(v) { result[v] = values[s]?.materialized() }
                values[s] = nil
            }
        }
        // Plan node `k`'s last reads, by slot (without a kept value to save, no name is read).
        func free(planned k: Int) {
            if !keep.isEmpty { return free(lastReadSlots[k], lastReads[k]) }
            for s in lastReadSlots[k] { values[s] = nil }
        }
        // A fused node's inputs, by name.
        func resolve(_ node: Node) throws -> [Tensor?] {
            try node.inputs.map { name in
                if name.isEmpty { return nil }
                if let t = value(name) ?? constants[name] { return t }
                throw RuntimeError.missingValue(name: name, node: node.name)
            }
        }
        func resolve(planned i: Int) throws -> [Tensor?] { try resolveInputs(planned: i, values) }
        var chainEnd = 0
        let timer = runTimer
        var mark = timer == nil ? 0 : DispatchTime.now().uptimeNanoseconds
        for (i, planned) in plan.enumerated() {
            if i < chainEnd { continue }    // run in an image chain, which freed what it read
            let fuses = fusing && startsFusion[i]
            // A chain runs image by image, or else (batch 1, small images) over the whole batch
            // where it has Convs to run blocked (`runBlockedChain`), or else node by node below.
            if fuses, observer == nil, keep.isEmpty, let found = imageChains[i], case let c = chainToRun(found),
               let ran = try runChainWhole(c, values: values) {
                for (s, t) in ran.outs {
                    values[s] = t
                    if slotIsGraphOutput[s], let name = slotOf.first(where: { $0.value == s })?.key { result[name] = t.materialized() }
                }
                for k in c.range { free(planned: k) }
                if ran.byImage { imageChainsRun += 1 } else { blockedChainsRun += 1 }
                chainEnd = c.range.upperBound
                timer?.closeChain(c.range, &mark)
                continue
            }
            if !fusedAway.isEmpty, fusedAway.contains(i) {
                // Part of a chain already run: free what it was the last to read (timed, if
                // at all, with the next node: a fused node shows 0).
                free(planned: i)
                continue
            }
            // A head-split Transpose whose span will run moves its input along untouched.
            if fuses, observer == nil, let anchor = spanSplits[i], let a = attentionFusions[anchor],
               a.applies(keep: keep, overrides: overrides), let inSlot = inputSlots[i].first, inSlot >= 0,
               let x = values[inSlot], x.dtype == .float32, !x.isCodesOnly, x.rank == 4,
               let outSlot = outputSlots[i].first, outSlot >= 0 {
                values[outSlot] = x
                rawSplits.insert(outSlot)
                free(planned: i)
                timer?.lap(i, &mark)
                continue
            }
            var node = planned
            let ins: [Tensor?]
            let outs: [Tensor]
            var span: (AttentionFusion, [Tensor?], Tensor)?
            if fuses, let a = attentionFusions[i] {
                let raw = a.node.inputs.prefix(3).map { slotOf[$0].map { rawSplits.contains($0) } ?? false }
                if a.applies(keep: keep, overrides: overrides) {
                    let spanIns = try resolve(a.node)
                    if let y = a.run(spanIns, raw: raw) { span = (a, spanIns, y) }
                }
                if span == nil {
                    // The span did not run after all: its operands as the Transposes write them.
                    for k in raw.indices where raw[k] {
                        let slot = slotOf[a.node.inputs[k]]!
                        values[slot] = try ShapeOps.Transpose(values[slot]!, perm: AttentionFusion.splitPerms[k])
                        rawSplits.remove(slot)
                    }
                }
            }
            if let (a, spanIns, y) = span {
                node = a.node; ins = spanIns; outs = [y]
                fusedChainsRun += 1
                attentionSpansRun += 1
                fusedAway.formUnion(a.nodes.dropFirst())
            } else if fuses, let f = transformerFusions[i], f.applies(keep: keep, overrides: overrides),
               case let fusedIns = try resolve(f.node),
               let y = f.run(fusedIns, constants: constants, codes: chainCodes(f, keep: keep, observed: observer != nil && !observeCodes)) {
                node = f.node; ins = fusedIns; outs = [y]
                fusedChainsRun += 1
                fusedAway.formUnion(f.nodes.dropFirst())
            } else {
                // Unobserved and keeping nothing, a value this node reads last moves into its
                // inputs (no copy, and its slot is empty as `free` would leave it).
                ins = observer == nil && keep.isEmpty ? try takeInputs(planned: i, &values) : try resolve(planned: i)
                // A residual Add fuses into its Conv only in unobserved runs (as image chains):
                // an observer (profile, calibration with fusing) sees the Add -> Relu pair as before.
                let ran = try step(i, inputs: ins, keep: keep, fusing: fusing, fusedAway: &fusedAway, mayHoldCodes: mayHoldCodes,
                                   lookup: { observer == nil ? value($0) ?? self.constants[$0] : nil })
                node = ran.0; outs = ran.1
            }
            if let observer {
                if observeCodes { observer(node, ins, outs) } else { observer(node, Self.materialized(ins), Self.materialized(outs)) }
            }
            let asPlanned = node.isSameNode(planned)
            let outSlots = asPlanned || node.outputs == planned.outputs ? outputSlots[i] : node.outputs.map { $0.isEmpty ? -1 : slotOf[$0]! }
            // Each output moves from `outs` into its slot (popped from the back: no copy).
            var moving = consume outs
            for k in stride(from: min(outSlots.count, moving.count) - 1, through: 0, by: -1) {
                moving.removeLast(moving.count - k - 1)
                let t = moving.removeLast()
                let s = outSlots[k]
                guard s >= 0 else { continue }
                if slotIsGraphOutput[s] || (!keep.isEmpty && keep.contains(node.outputs[k])) { result[node.outputs[k]] = t.materialized() }
                values[s] = consume t
            }
            // Free what no later node reads (a fused node may read other values than the plan's).
            if asPlanned || node.inputs == planned.inputs {
                free(planned: i)
            } else {
                let names = node.inputs.filter { !$0.isEmpty && lastUse[$0] == i && !outputNames.contains($0) }
                free(names.map { slotOf[$0]! }, names)
            }
            // On the node as run: a fused chain's time goes to its anchor (the node it runs as).
            timer?.lap(planIndex[node.name] ?? i, &mark)
        }
        for o in graph.outputs where result[o.name] == nil {
            guard let t = value(o.name) ?? constants[o.name] ?? feeds[o.name] else {
                throw RuntimeError.missingValue(name: o.name, node: "graph output")
            }
            result[o.name] = t.materialized()
        }
        try checkDeclaredOutputTypes(result)
        for k in keep where result[k] == nil { result[k] = (value(k) ?? constants[k])?.materialized() }
        return result
    }

    /// The grid and path a fused chain writes its output as codes on, if the INT8 runtime
    /// asked for it and nobody but its INT8 readers can see the output.
    func chainCodes(_ f: TransformerFusion, keep: Set<String>, observed: Bool) -> (ActivationQuant, KernelPath)? {
        guard !chainOutputCodes.isEmpty, !observed, let o = f.node.outputs.first, let q = chainOutputCodes[o],
              !keep.contains(o), !outputNames.contains(o) else { return nil }
        return (q, chainCodesPath())
    }

    /// Whether any value of a run can be held as codes (`Tensor.codes`): only with the INT8
    /// runtime's overrides or chains, or a feed given as codes. Otherwise a node's inputs go to
    /// its op as they are, without the per-input check (and its copies).
    func valuesMayBeCodes(feedsHoldCodes: Bool) -> Bool {
        feedsHoldCodes || !overrides.isEmpty || !fusedOverrides.isEmpty || !chainOutputCodes.isEmpty
    }

    /// `resolveInputs`, moving each value this node is the last to read out of `values`
    /// (`movableInputs`) instead of copying it: the caller keeps no value and frees those
    /// slots after the node anyway.
    /// `keeping`: slots never moved (an image chain's outputs).
    func takeInputs(planned i: Int, _ values: inout [Tensor?], keeping: [Int] = []) throws -> [Tensor?] {
        let slots = inputSlots[i], consts = inputConstants[i], movable = movableInputs[i]
        var ins: [Tensor?] = []
        ins.reserveCapacity(slots.count)
        for k in slots.indices {
            let s = slots[k]
            if s < 0 { ins.append(nil); continue }
            if movable[k], values[s] != nil, keeping.isEmpty || !keeping.contains(s) {
                ins.append(values[s].take())
                continue
            }
            guard let t = values[s] ?? consts[k] else {
                throw RuntimeError.missingValue(name: plan[i].inputs[k], node: plan[i].name)
            }
            ins.append(t)
        }
        return ins
    }

    /// Plan node `i`'s inputs, by slot, from a run loop's `values`.
    func resolveInputs(planned i: Int, _ values: [Tensor?]) throws -> [Tensor?] {
        let slots = inputSlots[i], consts = inputConstants[i]
        var ins: [Tensor?] = []
        ins.reserveCapacity(slots.count)
        for k in slots.indices {
            let s = slots[k]
            if s < 0 { ins.append(nil); continue }
            guard let t = values[s] ?? consts[k] else {
                throw RuntimeError.missingValue(name: plan[i].inputs[k], node: plan[i].name)
            }
            ins.append(t)
        }
        return ins
    }

    /// Runs plan node `i` on `ins` with the fusions that start at it (`fusing`): a SiLU into
    /// its Conv, a pair, a bias Add into its MatMul. Returns the node as run (a fused node
    /// writes the last fused node's output) and its outputs; the nodes it ran are added to
    /// `fusedAway`, for the caller to skip.
    /// `lookup` finds a value by name (a fused residual's shortcut; nil when not computed yet).
    /// `mayHoldCodes`: false when no input can be held as codes (`run`'s check), so none is
    /// materialised.
    func step(_ i: Int, inputs ins: [Tensor?], keep: Set<String>, fusing: Bool,
              fusedAway: inout Set<Int>, mayHoldCodes: Bool = true, lookup: (String) -> Tensor?) throws -> (Node, [Tensor]) {
        var node = plan[i]
        let fusing = fusing && startsFusion[i]
        if fusing, let f = siluFusions[i], ins.first??.dtype == .float32, f.applies(keep: keep, overrides: overrides) {
            node = f.node
            fusedAway.formUnion([f.sigmoid, f.mul])
        }
        var produced: [Tensor]
        var biasInEpilogue = false  // an FP32 MatMul's product came with its bias Add (`BiasAddFusion`)
        if fusing, let f = residualFusions[i], ins.first??.dtype == .float32, f.applies(keep: keep, overrides: overrides),
           let shortcut = lookup(f.shortcut), shortcut.dtype == .float32 {
            // The Conv with the shortcut as a fourth input (`ConvResidual`); the Add and Relu
            // are skipped by the caller, where what they last read is freed.
            node = f.node
            var fusedIns = ins
            while fusedIns.count < 3 { fusedIns.append(nil) }
            fusedIns.append(shortcut)
            produced = try execute(node: node, index: i, inputs: fusedIns, mayHoldCodes: mayHoldCodes)
            fusedAway.formUnion(f.fusedAway)
            residualRunLock.lock(); residualRuns += 1; residualRunLock.unlock()
        } else if fusing, let f = pairFusions[i],
           let fused = try f.run(ins, keep: keep, overrides: overrides, fused: fusedOverrides) {
            // The pair's second node is skipped by the caller, where what it last read is freed.
            node = f.node
            fusedAway.insert(f.second)
            produced = fused
        } else if fusing, let b = biasAddFusions[i], overrides[node.name] == nil, b.applies(keep: keep, overrides: overrides),
                  let y = b.productAddingBias(ins, constants: constants, packWeights: LinearOps.sessionPacker(node, preparedWeights)) {
            produced = [y]
            biasInEpilogue = true
            biasEpilogueRuns += 1
        } else {
            produced = try execute(node: node, index: i, inputs: ins, mayHoldCodes: mayHoldCodes)
        }
        if fusing, let b = biasAddFusions[i], b.applies(keep: keep, overrides: overrides), let first = produced.first,
           let y = biasInEpilogue ? first : b.apply(first, constants: constants) {
            node.outputs = [b.output]; produced = [y]
            fusedAway.insert(b.add)
            fusedChainsRun += 1
        }
        return (node, produced)
    }

    /// A graph output the model declares floating point but the graph computes as integers
    /// or bool, or the other way round, is a broken file (ONNX type inference refuses it):
    /// scoring it would silently read something else than the model says. (Floating types
    /// are one family here: mpq computes float16/float64 in float32.)
    func checkDeclaredOutputTypes(_ result: [String: Tensor]) throws {
        for o in graph.outputs {
            guard let declared = o.dtype, let t = result[o.name], declared.isFloating != t.dtype.isFloating else { continue }
            let producer = plan.last { $0.outputs.contains(o.name) }
            throw RuntimeError.invalidNode(node: producer?.name ?? "graph output", opType: producer?.opType ?? "-",
                                           reason: "writes graph output '\(o.name)' as \(t.dtype), but the model declares it \(declared)")
        }
    }

    /// Runs one plan node in FP32 on given inputs (per-layer timing, debugging).
    public func runNode(_ node: Node, inputs: [Tensor?]) throws -> [Tensor] {
        guard let i = planIndex[node.name] else {
            throw RuntimeError.missingValue(name: node.name, node: node.name)
        }
        return try Session.execute(node, entries[i], inputs, opset: graph.opset(forDomain: node.domain), prepared: preparedWeights)
    }

    /// Runs plan node `index`: its override if it has one, else its op. `mayHoldCodes`
    /// false: no input is held as codes (the caller knows), so none is checked.
    func execute(node: Node, index: Int, inputs: [Tensor?], mayHoldCodes: Bool = true) throws -> [Tensor] {
        // Empty-collection guards first: a lookup hashes the name even in an empty set (FP32 runs).
        let ins = !mayHoldCodes || (!codesInputNodes.isEmpty && codesInputNodes.contains(node.name)) ? inputs : Self.materialized(inputs)
        if !overrides.isEmpty, let o = overrides[node.name] {
            do { return try o(ins) } catch let e as OpError { throw Self.nodeError(e, node) }
        }
        // By index: a for-in over the variants copied each (node, runner) pair.
        let variants = bound[index]
        for k in variants.indices where variants[k].node.isSameNode(node) {
            do { return try variants[k].run(ins, preparedWeights) } catch let e as OpError { throw Self.nodeError(e, node) }
        }
        return try Session.execute(node, entries[index], ins, opset: graph.opset(forDomain: node.domain), prepared: preparedWeights)
    }

    /// An op error as the node's error, its reason with the node's input tensors named where it
    /// names none of them: kernels describe an input by its role ("C must be floating point"), a
    /// user needs the tensor (a Gemm's C is '0.bias'), as the fuzzer's unnamed-message report showed.
    static func nodeError(_ e: OpError, _ node: Node) -> RuntimeError {
        RuntimeError.invalidNode(node: node.name, opType: node.opType, reason: namingInputs(e.reason, node))
    }

    static func namingInputs(_ reason: String, _ node: Node) -> String {
        let names = node.inputs.filter { !$0.isEmpty }
        guard !names.isEmpty, !names.contains(where: { reason.contains("'\($0)'") }) else { return reason }
        return reason + " (inputs " + names.map { "'\($0)'" }.joined(separator: ", ") + ")"
    }

    /// Runs one node, applying an activation fused into it by the graph passes and
    /// turning op errors into errors that name the node.
    static func execute(_ node: Node, _ entry: OpEntry, _ inputs: [Tensor?], opset: Int,
                        prepared: PreparedWeights? = nil) throws -> [Tensor] {
        do {
            var outs: [Tensor]
            if let prepared, let runPrepared = entry.runPrepared {
                outs = try runPrepared(node, inputs, opset, prepared)
            } else {
                outs = try entry.run(node, inputs, opset)
            }
            if !node.attributes.isEmpty, !epilogueOps.contains(node.opType), let act = FusedActivation(node: node), !outs.isEmpty {
                act.apply(&outs[0].floats)
            }
            return outs
        } catch let e as OpError {
            throw nodeError(e, node)
        }
    }
}
