import CKernels
import Dispatch
import Foundation
import ONNX

/// A run of consecutive plan nodes in which every output image depends only on the same
/// image of the inputs (Conv, BatchNormalization, activations, residual Add, pooling), run
/// image by image when the batch has more than one (docs/image-chains.md).
///
/// Why: at batch 16 a layer-by-layer run writes each intermediate for all 16 images before
/// the next layer reads it back, and MobileNetV2's expanded tensors are 25-77 MB (FP32) at
/// 112x112 and 56x56: every depthwise layer streams them from DRAM. One image's are 1.6-4.8
/// MB, so the next layer finds them in L2/L3. The batch splits over the cores by image, each
/// core running the whole chain on its images one at a time with single-threaded kernels
/// (`mpq_set_single_threaded`); each node runs on its image exactly as it runs on that
/// image of a batch (every kernel computes images independently), so the output bytes are
/// those of the layer-by-layer run, FP32 and INT8 (codes included).
struct ImageChain {
    /// Plan indices, consecutive.
    let range: Range<Int>
    /// Slots the chain reads that no chain node writes (its inputs from earlier nodes or the
    /// feeds), and the slots it writes that a later node or the caller reads.
    let inputSlots: [Int]
    let outputSlots: [Int]
    /// The chain up to its first Conv with `largeWeights` weights or more, when the Convs from
    /// there on hold at least half the chain's weights (none or one chain): what an FP32 chain
    /// runs image by image, the rest layer by layer (`Session.fp32ChainCut`).
    var prefix: [ImageChain] = []
    /// The rest of a chain after its `prefix` (found at the cut): runs over the whole batch,
    /// layer by layer, with its blocked Convs (`Session.runBlockedChain`), never image by
    /// image. Before s37 the rest ran node by node on NCHW values, where the channel-vector
    /// Conv took ResNet-18's layer3 and layer4 at 1.05-1.11x the blocked Conv's time.
    var wholeBatch = false

    /// Weights (floats) from which a Conv ends an FP32 chain's image-by-image part: 1 MiB, the
    /// size from which the channel-vector Conv runs a batch's small planes weights block by
    /// block over the images (sconv_cv.c, `blocks_over_images`). Image by image, every core
    /// streamed each such layer's weights from L3 once per image (ResNet-18's layer3 and
    /// layer4: 1.2-9.4 MB per Conv, 34 MB of its 46); layer by layer, once per batch.
    static let largeWeights = 1 << 18
    /// Whether a cut chain's rest is a chain of its own (`wholeBatch`); environment
    /// `MPQ_FP32_CHAIN_REST=0` runs it node by node as before s37, for an A/B.
    static let restRunsBlocked = ProcessInfo.processInfo.environment["MPQ_FP32_CHAIN_REST"] != "0"

    /// Ops whose output image i is a function of input image i alone, with the inputs that
    /// must be constants for that to hold (weights, bias, BN statistics, clip bounds).
    static let perImageOps: [String: Set<Int>] = [
        "Conv": [1, 2], "BatchNormalization": [1, 2, 3, 4], "Clip": [1, 2],
        "Relu": [], "LeakyRelu": [], "Sigmoid": [], "HardSigmoid": [], "HardSwish": [],
        "Add": [], "Sub": [], "Mul": [], "Div": [],
        "GlobalAveragePool": [], "GlobalMaxPool": [], "MaxPool": [], "AveragePool": [],
    ]
    static let binaryOps: Set<String> = ["Add", "Sub", "Mul", "Div"]
    /// Data-movement ops a chain takes in its middle (s29): a channel Concat and a Resize that
    /// keeps N and C, as a YOLO neck joins its scales (the detector's Resize + Concat before
    /// its fuse Conv). Never a chain's first node: a chain that began at resnet_digits' input
    /// Resize would be sized by the 8x8 input instead of the 224x224 image it makes
    /// (`chainRunsImageByImage`).
    static let movementOps: Set<String> = ["Concat", "Resize"]

    /// Whether `node` computes each image from that image alone. A binary op's constant
    /// operand must not carry a batch axis (rank up to 3, or a leading 1): image tensors in a
    /// chain are checked to be rank 4 when it runs, so the constant broadcasts within an image.
    static func isPerImage(_ node: Node, isConstant: (String) -> Bool, constants: [String: Tensor]) -> Bool {
        if movementOps.contains(node.opType) { return isPerImageMovement(node, isConstant: isConstant, constants: constants) }
        guard SiluFusion.isDefaultDomain(node), let mustBeConstant = perImageOps[node.opType],
              node.outputs.count == 1, !node.outputs[0].isEmpty, !node.inputs.isEmpty, !node.inputs[0].isEmpty else { return false }
        for (k, name) in node.inputs.enumerated() where !name.isEmpty {
            if mustBeConstant.contains(k) {
                guard isConstant(name) else { return false }
            } else if k > 0 && !binaryOps.contains(node.opType) {
                return false   // an input this table does not know
            } else if isConstant(name) {
                guard binaryOps.contains(node.opType), let c = constants[name],
                      c.rank <= 3 || (c.rank == 4 && c.shape[0] == 1) else { return false }
            }
        }
        // The first input must be an image tensor, not a constant.
        return !isConstant(node.inputs[0])
    }

    /// A Concat along the channels of image tensors only (axis 1 or -3: chain tensors are
    /// rank 4), or a Resize by constant scales that leave N and C alone (no `sizes`, which
    /// name the batch's N, no `axes`).
    static func isPerImageMovement(_ node: Node, isConstant: (String) -> Bool, constants: [String: Tensor]) -> Bool {
        guard SiluFusion.isDefaultDomain(node), node.outputs.count == 1, !node.outputs[0].isEmpty, !node.inputs.isEmpty else { return false }
        switch node.opType {
        case "Concat":
            guard let axis = node.int("axis"), axis == 1 || axis == -3 else { return false }
            return node.inputs.allSatisfy { !$0.isEmpty && !isConstant($0) }
        case "Resize":
            guard !node.inputs[0].isEmpty, !isConstant(node.inputs[0]), node.ints("axes") == nil, node.inputs.count >= 3,
                  node.inputs[1].isEmpty || isConstant(node.inputs[1]), isConstant(node.inputs[2]),
                  node.inputs.count < 4 || node.inputs[3].isEmpty,
                  let scales = constants[node.inputs[2]], scales.count == 4 else { return false }
            let v = scales.asFloats
            return v[0] == 1 && v[1] == 1
        default:
            return false
        }
    }

    /// The chains of `plan`: maximal runs of per-image nodes holding at least one Conv and two
    /// nodes, never splitting a fusion (`groups`: each fusion's plan indices).
    static func find(plan: [Node], constants: [String: Tensor], graphInputs: Set<String>, graphOutputs: Set<String>,
                     groups: [[Int]], slotOf: [String: Int]) -> [Int: ImageChain] {
        let isConstant = { (name: String) in constants[name] != nil && !graphInputs.contains(name) }
        let eligible = plan.map { isPerImage($0, isConstant: isConstant, constants: constants) }
        var lastUse: [String: Int] = [:]
        for (i, n) in plan.enumerated() { for v in n.inputs where !v.isEmpty { lastUse[v] = i } }
        // Shrink until no fusion straddles an edge.
        func shrunk(_ r: Range<Int>) -> Range<Int> {
            var range = r, changed = true
            while changed && !range.isEmpty {
                changed = false
                for g in groups where !g.isEmpty {
                    let lo = g.min()!, hi = g.max()!
                    let inside = g.filter(range.contains).count
                    guard inside > 0 && inside < g.count else { continue }
                    if lo < range.lowerBound { range = (hi + 1)..<max(hi + 1, range.upperBound) } else { range = range.lowerBound..<lo }
                    changed = true
                }
            }
            return range
        }
        func chain(_ range: Range<Int>) -> ImageChain? {
            guard range.count >= 2, range.contains(where: { plan[$0].opType == "Conv" }) else { return nil }
            var written = Set<String>(), read: [String] = []
            for k in range {
                for v in plan[k].inputs where !v.isEmpty && !isConstant(v) && !written.contains(v) && !read.contains(v) { read.append(v) }
                for v in plan[k].outputs where !v.isEmpty { written.insert(v) }
            }
            let outs = range.flatMap { plan[$0].outputs }.filter {
                !$0.isEmpty && ((lastUse[$0] ?? -1) >= range.upperBound || graphOutputs.contains($0))
            }
            return ImageChain(range: range, inputSlots: read.map { slotOf[$0]! }, outputSlots: outs.map { slotOf[$0]! })
        }
        var chains: [Int: ImageChain] = [:]
        var i = 0
        while i < plan.count {
            guard eligible[i], !movementOps.contains(plan[i].opType) else { i += 1; continue }
            var end = i
            while end < plan.count && eligible[end] { end += 1 }
            let range = shrunk(i..<end)
            if var c = chain(range) {
                func weights(_ k: Int) -> Int {
                    plan[k].opType == "Conv" && plan[k].inputs.count > 1 ? constants[plan[k].inputs[1]]?.count ?? 0 : 0
                }
                let large = range.dropFirst().first { weights($0) >= largeWeights }
                // Only where the rest holds most of the chain's weights (ResNet-18: 97% after the
                // cut; MobileNetV2's last two 1x1 Convs, 32%, stay in its chain).
                if let cut = large, 2 * (cut..<range.upperBound).map(weights).reduce(0, +) >= range.map(weights).reduce(0, +),
                   let p = chain(shrunk(range.lowerBound..<cut)) {
                    c.prefix = [p]
                    if restRunsBlocked, var rest = chain(p.range.upperBound..<range.upperBound) {
                        rest.wholeBatch = true
                        chains[rest.range.lowerBound] = rest
                    }
                }
                chains[range.lowerBound] = c
            }
            i = end
        }
        return chains
    }
}

extension Session {
    /// Whether batches of more than one image run the image chains image by image (default
    /// on; environment `MPQ_IMAGE_CHAINS=0` turns it off, so both can be timed and compared).
    static let imageChainsDefault = ProcessInfo.processInfo.environment["MPQ_IMAGE_CHAINS"] != "0"
    static let int8ImageChainsDefault = forcedChains("MPQ_INT8_IMAGE_CHAINS")
    static let fp32ImageChainsDefault = forcedChains("MPQ_FP32_IMAGE_CHAINS")
    /// Whether an FP32 chain runs image by image only up to its first Conv with large weights
    /// (`ImageChain.prefix`); environment `MPQ_FP32_CHAIN_CUT=0` runs the whole chain so.
    static let fp32ChainCut = ProcessInfo.processInfo.environment["MPQ_FP32_CHAIN_CUT"] != "0"

    /// The chain found at a plan index as this run executes it: an FP32 chain's prefix before
    /// its large-weights Convs (`ImageChain.prefix`), else the whole chain.
    func chainToRun(_ c: ImageChain) -> ImageChain {
        guard Self.fp32ChainCut, let p = c.prefix.first, !mostlyInt8(c) else { return c }
        return p
    }

    /// An environment switch that forces a chain policy: "1" always, "0" never, else nil (by size).
    private static func forcedChains(_ variable: String) -> Bool? {
        switch ProcessInfo.processInfo.environment[variable] {
        case "1": return true
        case "0": return false
        default: return nil
        }
    }

    /// Per-image elements of a chain input from which a mostly-INT8 chain runs image by image.
    static let int8ChainMinImageElements = 65536
    /// Per-image elements of a chain input from which any other chain runs image by image.
    static let fp32ChainMinImageElements = 16384

    /// Whether more than half of chain `c`'s Convs run an override (the INT8 runtime's kernels).
    func mostlyInt8(_ c: ImageChain) -> Bool {
        if overrides.isEmpty { return false }
        var convs = 0, int8 = 0
        for k in c.range where plan[k].opType == "Conv" {
            convs += 1
            if overrides[plan[k].name] != nil { int8 += 1 }
        }
        return 2 * int8 > convs
    }

    /// Whether chain `c` runs image by image on these inputs (`int8ImageChains` or
    /// `fp32ImageChains` force it either way), else by the size of its images: the chain input's
    /// per-image element count (the images' size, which the network's tensors scale with), a
    /// proxy for the caches, not a model of them. The cuts:
    /// - Mostly-INT8 chains from 65536 on (`int8ChainMinImageElements`). An INT8 batch is uint8
    ///   codes, 4x smaller than floats: on small images the batch's tensors fit in L2 layer by
    ///   layer already, and image by image only multiplies the per-node calls by the batch (the
    ///   detector, 3x64x64 inputs: 1.87-1.97 ms layer by layer against 2.30-2.81 in chains at
    ///   batch 16; resnet_digits, 1x224x224 after its Resize: 8.0-8.3 against 8.6-8.7). On large
    ///   ones the expanded tensors do not fit (MobileNetV2 at 3x224x224: 27.6-27.9 ms in chains
    ///   against 31.5-33.1), as in FP32 (benchmarks/README.md, s10-int8).
    /// - Other chains from 16384 on (`fp32ChainMinImageElements`). On small images the per-node
    ///   and per-call cost (Swift, and each Conv's setup: offsets, padding, weights back into
    ///   L1) times the batch outweighs the cache gain: the 1x8x40 CTC recognizer 0.61-0.76 ms
    ///   layer by layer against 0.90-0.98 in chains at batch 16, the 1x8x8 digits CNN 0.62-0.78
    ///   against 1.52 (s12-lead, when the cut was 4096), the detector's 3x64x64 (12288) 6.0-6.2
    ///   against 7.0-7.8 on one core and 3.10 against 3.81 (minima) on two (s13-lead). At
    ///   resnet_digits' 1x224x224 (50176) the two ways took the same CPU time (perf samples
    ///   within 5%), so it stays image by image with the large models.
    func chainRunsImageByImage(_ c: ImageChain, values: [Tensor?]) -> Bool {
        let int8 = mostlyInt8(c)
        if let forced = int8 ? int8ImageChains : fp32ImageChains { return forced }
        let largest = c.inputSlots.compactMap { values[$0] }.map { $0.shape.isEmpty || $0.shape[0] == 0 ? 0 : $0.count / $0.shape[0] }.max() ?? 0
        return largest >= (int8 ? Self.int8ChainMinImageElements : Self.fp32ChainMinImageElements)
    }

    /// Chain `c`'s inputs by slot when every one is a rank-4 float32 batch of one size N >= `atLeast`
    /// (and there is at least one), with N; nil otherwise (the chain then runs node by node).
    func chainBatch(_ c: ImageChain, values: [Tensor?], atLeast: Int) -> (inputs: [(slot: Int, tensor: Tensor)], n: Int)? {
        var inputs: [(slot: Int, tensor: Tensor)] = []
        var n = 0
        for s in c.inputSlots {
            guard let t = values[s], t.dtype == .float32, t.rank == 4, t.shape[0] >= atLeast, n == 0 || t.shape[0] == n else { return nil }
            n = t.shape[0]
            inputs.append((s, t))
        }
        return n >= atLeast ? (inputs, n) : nil
    }

    /// Runs chain `c` image by image over `values` (the run loop's store) and returns its
    /// outputs, whole batches, by slot; nil (nothing run) when its inputs are not one batch of
    /// two or more rank-4 float images.
    func runImageChain(_ c: ImageChain, values: [Tensor?]) throws -> [(slot: Int, tensor: Tensor)]? {
        guard let (inputs, n) = chainBatch(c, values: values, atLeast: 2) else { return nil }
        let tasks = min(n, processCoreCount)
        let blocked = runsBlocked(c)
        var perImage = [[Tensor]](repeating: [], count: n)
        var failure: Error?
        let lock = NSLock()
        perImage.withUnsafeMutableBufferPointer { buffer in
            let images = buffer    // each task writes its own images' entries
            ConvOps.withSingleThreadedBLAS {
                DispatchQueue.concurrentPerform(iterations: tasks) { t in
                    mpq_set_single_threaded(1)
                    defer { mpq_set_single_threaded(0) }
                    do {
                        for img in n * t / tasks..<n * (t + 1) / tasks {
                            images[img] = try self.runChain(c, image: img, inputs: inputs, blocked: blocked)
                        }
                    } catch {
                        lock.lock(); if failure == nil { failure = error }; lock.unlock()
                    }
                }
            }
        }
        if let failure { throw failure }
        return try c.outputSlots.enumerated().map { k, s in (s, try Tensor.stacking(perImage.map { $0[k] }, node: plan[c.range.lowerBound].name)) }
    }

    /// One image through the chain's nodes, as the run loop runs them (same fusions); the whole
    /// batch when `image` is nil. With `blocked`, its blocked Convs pass the blocked layout from
    /// one to the next (`runBlockedConv`, docs/fp32-blocked-layout.md); every other node reads
    /// NCHW values, reordered when it first needs them, and so do the chain's outputs.
    func runChain(_ c: ImageChain, image: Int?, inputs: [(slot: Int, tensor: Tensor)], blocked: Bool = false) throws -> [Tensor] {
        var values = [Tensor?](repeating: nil, count: slotIsGraphOutput.count)
        for (s, t) in inputs { values[s] = image.map { t.image($0) } ?? t }
        var store = BlockedStore(slots: values.count)
        var fusedAway = Set<Int>()
        let mayHoldCodes = valuesMayBeCodes(feedsHoldCodes: inputs.contains { $0.tensor.codes != nil })
        let timer = runTimer
        for i in c.range {
            if fusedAway.contains(i) {
                for s in lastReadSlots[i] where !c.outputSlots.contains(s) { values[s] = nil; store[s] = nil }
                continue
            }
            let started = timer == nil ? 0 : DispatchTime.now().uptimeNanoseconds
            let node: Node
            if blocked, let ran = runBlockedConv(i, &values, &store, fusedAway: &fusedAway) ?? runBlockedPool(i, &values, &store)
                ?? runBlockedMove(i, &values, &store) {
                node = ran
            } else {
                if !store.isEmpty { materializeInputs(of: i, &values, store) }
                // Values this node reads last move into its inputs (never the chain's outputs).
                let ins = try takeInputs(planned: i, &values, keeping: c.outputSlots)
                var (ran, outs) = try step(i, inputs: ins, keep: [], fusing: true, fusedAway: &fusedAway, mayHoldCodes: mayHoldCodes,
                                           lookup: { self.slotOf[$0].flatMap { values[$0] } ?? self.constants[$0] })
                node = ran
                let slots = node.isSameNode(plan[i]) || node.outputs == plan[i].outputs ? outputSlots[i]
                    : node.outputs.map { $0.isEmpty ? -1 : slotOf[$0]! }
                // Each output moves into its slot, popped from the back (no copy).
                for k in stride(from: min(slots.count, outs.count) - 1, through: 0, by: -1) {
                    outs.removeLast(outs.count - k - 1)
                    let t = outs.removeLast()
                    if slots[k] >= 0 { values[slots[k]] = consume t }
                }
            }
            // Free what this image no longer needs (the chain's outputs stay).
            let reads = node.inputs == plan[i].inputs ? lastReadSlots[i]
                : node.inputs.filter { !$0.isEmpty && lastUse[$0] == i }.compactMap { slotOf[$0] }
            for s in reads where !c.outputSlots.contains(s) { values[s] = nil; store[s] = nil }
            timer?.addInChain(planIndex[node.name] ?? i, DispatchTime.now().uptimeNanoseconds - started)
        }
        return try c.outputSlots.map { s in
            materializeBlocked(s, &values, store)
            guard let t = values[s] else { throw RuntimeError.missingValue(name: "slot \(s)", node: plan[c.range.lowerBound].name) }
            return t
        }
    }
}

extension Tensor {
    /// Image `i` of a batch ([N,...] -> [1,...]): its floats and codes, whichever it holds.
    func image(_ i: Int) -> Tensor {
        let per = count / shape[0]
        var t = self
        t.shape[0] = 1
        if floats.count == count { t.floats = Array(floats[i * per..<(i + 1) * per]) }
        if var c = codes, c.values.count == count {
            c.values = Array(c.values[i * per..<(i + 1) * per])
            t.codes = c
        } else {
            t.codes = nil
        }
        return t
    }

    /// Images [1,...] stacked into one batch, as floats, codes, or both where every image
    /// holds them (codes only on one grid: a chain's node writes every image on the same one).
    static func stacking(_ images: [Tensor], node: String) throws -> Tensor {
        let first = images[0]
        guard first.rank >= 1, first.shape[0] == 1,
              images.allSatisfy({ $0.shape == first.shape && $0.dtype == first.dtype }) else {
            throw RuntimeError.invalidNode(node: node, opType: "image chain", reason: "per-image outputs of shapes \(images.map { Tensor.describe($0.shape) }) do not stack")
        }
        let shape = [images.count] + first.shape.dropFirst()
        let grid = first.codes.map { ($0.scale, $0.zeroPoint) }
        let sameCodes = grid != nil && images.allSatisfy { $0.codes?.values.count == $0.count && $0.codes?.scale == grid!.0 && $0.codes?.zeroPoint == grid!.1 }
        let codes = sameCodes ? QuantizedCodes(values: images.flatMap { $0.codes!.values }, scale: grid!.0, zeroPoint: grid!.1) : nil
        if images.allSatisfy({ $0.floats.count == $0.count }) {
            var t = Tensor(shape: shape, floats: images.flatMap(\.floats), dtype: first.dtype)
            t.codes = codes
            return t
        }
        if let codes { return Tensor(shape: shape, codes: codes) }
        let floats = images.map { $0.materialized() }
        return Tensor(shape: shape, floats: floats.flatMap(\.floats), dtype: first.dtype)
    }
}
