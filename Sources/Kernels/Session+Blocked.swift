import CKernels
import Foundation
import ONNX

/// FP32 Convs that pass channel-blocked activations ([N][C/16][H][W][16],
/// `mpq_sconv2d_f32_blocked`, sconv_blocked.c) from one to the next inside an image chain's
/// run (docs/fp32-blocked-layout.md). The layout never leaves `Session.runChain`: a blocked
/// value lives in a store beside the chain's `values`, a node that is not a blocked Conv gets
/// the NCHW form (reordered when it first needs it), and the chain's outputs are reordered back
/// before it returns. The blocked tile is the channel-vector tile's FMA chain on the same
/// values, so the bytes are those of `MPQ_FP32_BLOCKED=0` (FP32BlockedConvTests,
/// BlockedChainTests).
struct BlockedValue {
    /// The NCHW shape the value has outside the store.
    let shape: [Int]
    let floats: [Float]
}

/// A chain run's blocked values by slot: an array beside the run's `values` (a dictionary
/// hashed every slot on every node input and free).
/// The array is made at the first store, so a chain run that keeps nothing blocked (an INT8
/// chain, image by image) allocates nothing for it.
struct BlockedStore {
    private let capacity: Int
    private var slots: [BlockedValue?] = []
    private(set) var count = 0

    init(slots n: Int) { capacity = n }

    var isEmpty: Bool { count == 0 }

    subscript(_ s: Int) -> BlockedValue? {
        get { s < slots.count ? slots[s] : nil }
        set {
            if slots.isEmpty {
                guard newValue != nil else { return }
                slots = [BlockedValue?](repeating: nil, count: capacity)
            }
            if slots[s] != nil { count -= 1 }
            if newValue != nil { count += 1 }
            slots[s] = newValue
        }
    }
}

extension Session {
    /// Whether chains run their blocked Convs in the blocked layout (default on; environment
    /// `MPQ_FP32_BLOCKED=0` turns it off, so both can be timed and compared).
    static let blockedDefault = ProcessInfo.processInfo.environment["MPQ_FP32_BLOCKED"] != "0"
    /// Whether pools between blocked Convs join them (`findBlockedPassThrough`; environment
    /// `MPQ_FP32_BLOCKED_POOLS=0` leaves them NCHW, as before, for an A/B).
    static let blockedPoolsDefault = ProcessInfo.processInfo.environment["MPQ_FP32_BLOCKED_POOLS"] != "0"
    /// Whether a chain's Resize and channel Concat between blocked Convs run blocked (s29,
    /// `runBlockedMove`); environment `MPQ_FP32_BLOCKED_MOVES=0` leaves them NCHW, for an A/B.
    static let blockedMovesDefault = ProcessInfo.processInfo.environment["MPQ_FP32_BLOCKED_MOVES"] != "0"

    /// Whether this CPU's kernel path has the blocked Conv's tile, depthwise kernel, reorders and
    /// pools in SIMD: AVX-512 (s14-s17) and AVX2 (s27); elsewhere their scalar references would run.
    static var blockedPath: Bool { [MPQ_PATH_VNNI, MPQ_PATH_AVX2].contains(mpq_resolve_kernel_path(MPQ_PATH_AUTO)) }

    /// The plan indices of the Convs a chain runs blocked: FP32-capable Convs (2-D, constant
    /// weights and bias, group 1, or depthwise 3x3 as `mpq_depthwise3x3_f32_blocked` takes it
    /// with no SiLU or residual fusion) inside a chain that take their input from another such
    /// Conv or hand their output (their fused SiLU's or residual's output) to one, as input or
    /// residual shortcut: a lone Conv between other ops would pay two reorders for nothing.
    /// MobileNetV2's inverted residuals (1x1 expand, depthwise, 1x1 project + Add) run blocked
    /// from its stem to its last 1x1 Conv (s17).
    static func findBlockedConvs(plan: [Node], constants: [String: Tensor], graphInputs: Set<String>,
                                 chains: [Int: ImageChain], silu: [Int: SiluFusion],
                                 residual: [Int: ResidualFusion]) -> Set<Int> {
        func constant(_ name: String) -> Tensor? { graphInputs.contains(name) ? nil : constants[name] }
        let inChain = Set(chains.values.flatMap { Array($0.range) })
        let capable = inChain.filter { i in
            let n = plan[i]
            guard n.opType == "Conv", SiluFusion.isDefaultDomain(n), (2...3).contains(n.inputs.count), n.outputs.count == 1,
                  !n.inputs[0].isEmpty, let w = constant(n.inputs[1]), w.rank == 4 else { return false }
            if n.inputs.count == 3, !n.inputs[2].isEmpty, constant(n.inputs[2]) == nil { return false }
            let group = n.int("group", default: 1)
            return group == 1 || (isBlockedDepthwise(n, weights: w) && silu[i] == nil && residual[i] == nil)
        }
        // A pool between two such Convs (ResNet's stem MaxPool) passes its input's producer on:
        // the Convs on both sides run blocked, and so does the pool (`findBlockedPassThrough`).
        let pools = blockedPoolsDefault ? inChain.filter { isBlockedCapablePool(plan[$0]) } : []
        // A Resize or channel Concat (a YOLO neck) passes its inputs' producer on when every
        // input has one.
        let moves = blockedMovesDefault ? inChain.filter { ImageChain.movementOps.contains(plan[$0].opType) } : []
        var producer: [String: Int] = [:]
        for i in capable.union(pools).union(moves).sorted() {
            if pools.contains(i) || moves.contains(i) {
                let ins = passThroughInputs(plan[i])
                if let p = producer[ins[0]], ins.allSatisfy({ producer[$0] != nil }) { producer[plan[i].outputs[0]] = p }
                continue
            }
            for name in convOutputs(i, plan, silu, residual) { producer[name] = i }
        }
        var blocked = Set<Int>()
        for k in capable {
            for name in [plan[k].inputs[0], residual[k]?.shortcut].compactMap({ $0 }) {
                guard let i = producer[name], i != k else { continue }
                blocked.formUnion([i, k])
            }
        }
        return blocked
    }

    /// A depthwise Conv the blocked depthwise kernel may take: one output channel per group of
    /// one input channel, 3x3, undilated, stride 1 or 2 across (the rest is checked per run).
    static func isBlockedDepthwise(_ n: Node, weights w: Tensor) -> Bool {
        let group = n.int("group", default: 1)
        return group > 1 && w.rank == 4 && w.shape[0] == group && w.shape[1] == 1 && w.shape[2] == 3 && w.shape[3] == 3
            && (n.ints("dilations") ?? [1, 1]).allSatisfy { $0 == 1 } && [1, 2].contains((n.ints("strides") ?? [1, 1]).last ?? 1)
    }

    /// The names a Conv at plan index `i` may hand on: its output, and its SiLU's or residual
    /// Add's when a fusion rewrites it.
    static func convOutputs(_ i: Int, _ plan: [Node], _ silu: [Int: SiluFusion], _ residual: [Int: ResidualFusion]) -> [String] {
        [plan[i].outputs[0], silu[i]?.node.outputs.first, residual[i]?.node.outputs.first].compactMap { $0 }
    }

    /// A 2-D MaxPool (no Indices output) or AveragePool of the default domain: what
    /// `mpq_pool2d_f32_blocked` computes.
    static func isBlockedCapablePool(_ n: Node) -> Bool {
        ["MaxPool", "AveragePool"].contains(n.opType) && SiluFusion.isDefaultDomain(n) && n.inputs.count == 1 && !n.inputs[0].isEmpty
            && n.outputs.count == 1 && !n.outputs[0].isEmpty && n.ints("kernel_shape")?.count == 2
    }

    /// The image inputs a pool, Resize or Concat passes through the blocked layout: a Resize's
    /// first (its others are constants), every input of the rest.
    static func passThroughInputs(_ n: Node) -> [String] { n.opType == "Resize" ? [n.inputs[0]] : n.inputs }

    /// The pools chains run blocked: capable pools (`isBlockedCapablePool`) inside a chain whose
    /// input comes from a blocked Conv (through other such pools) and whose output a blocked
    /// Conv reads, as input or residual shortcut, directly or through other such pools. Elsewhere
    /// a pool would pay a reorder for nothing.
    /// The same for a chain's Resize and channel Concat nodes (`runBlockedMove`): every image
    /// input blocked (`passThroughInputs`), the output read blocked. Pools and moves may feed
    /// each other; the caller tells them apart by op type.
    static func findBlockedPassThrough(plan: [Node], chains: [Int: ImageChain], blockedConvs: Set<Int>,
                                       silu: [Int: SiluFusion], residual: [Int: ResidualFusion]) -> Set<Int> {
        let inChain = Set(chains.values.flatMap { Array($0.range) })
        let pools = inChain.filter {
            (blockedPoolsDefault && isBlockedCapablePool(plan[$0])) || (blockedMovesDefault && ImageChain.movementOps.contains(plan[$0].opType))
        }.sorted()
        var blockedOut = Set<String>()
        for i in blockedConvs { blockedOut.formUnion(convOutputs(i, plan, silu, residual)) }
        var fed = Set<Int>()    // pools whose input is blocked
        for i in pools where passThroughInputs(plan[i]).allSatisfy(blockedOut.contains) {
            fed.insert(i)
            blockedOut.insert(plan[i].outputs[0])
        }
        var blockedReads = Set<String>()
        for k in blockedConvs {
            blockedReads.insert(plan[k].inputs[0])
            if let s = residual[k]?.shortcut { blockedReads.insert(s) }
        }
        var chosen = Set<Int>()
        for i in pools.reversed() where fed.contains(i) && blockedReads.contains(plan[i].outputs[0]) {
            chosen.insert(i)
            blockedReads.formUnion(passThroughInputs(plan[i]))
        }
        return chosen
    }

    /// Whether chain `c` has Convs to run blocked in this session (an FP32 chain on the AVX-512
    /// or AVX2 path, `blockedPath`: elsewhere the blocked tile is a scalar loop).
    func runsBlocked(_ c: ImageChain) -> Bool {
        runsBlockedConvs && !blockedConvs.isEmpty && Self.blockedPath
            && c.range.contains(where: blockedConvs.contains) && !mostlyInt8(c)
    }

    /// Chain `c` over the whole batch (layer by layer, each kernel on all the cores) with its
    /// blocked Convs: where it does not run image by image (batch 1, small images), the
    /// layout's gain still applies. nil when its inputs are not rank-4 float batches of one N.
    func runBlockedChain(_ c: ImageChain, values: [Tensor?]) throws -> [(slot: Int, tensor: Tensor)]? {
        guard runsBlocked(c), let (inputs, _) = chainBatch(c, values: values, atLeast: 1) else { return nil }
        let outs = try runChain(c, image: nil, inputs: inputs, blocked: true)
        return Array(zip(c.outputSlots, outs)).map { (slot: $0.0, tensor: $0.1) }
    }

    /// Chain `c` image by image (`runImageChain`, where `chainRunsImageByImage`), else over the
    /// whole batch for its blocked Convs (`runBlockedChain`); nil when neither runs it.
    func runChainWhole(_ c: ImageChain, values: [Tensor?]) throws -> (outs: [(slot: Int, tensor: Tensor)], byImage: Bool)? {
        if !c.wholeBatch, runsImageChains, chainRunsImageByImage(c, values: values), let outs = try runImageChain(c, values: values) {
            return (outs, true)
        }
        return try runBlockedChain(c, values: values).map { ($0, false) }
    }

    /// Slot `s`'s blocked form: from the store, or its NCHW value reordered (and stored, for
    /// the value's other blocked readers).
    private func blockedForm(_ s: Int, _ values: [Tensor?], _ store: inout BlockedStore) -> BlockedValue {
        if let b = store[s] { return b }
        let t = values[s]!.materialized()
        let (n, c, h, w) = (t.shape[0], t.shape[1], t.shape[2], t.shape[3])
        var y = [Float].uninitialized(count: n * mpq_blocked_image_floats(Int32(c), Int32(h), Int32(w)))
        let rc = t.floats.withUnsafeBufferPointer { px in
            y.withUnsafeMutableBufferPointer { mpq_reorder_to_blocked_f32(MPQ_PATH_AUTO, px.baseAddress, Int32(n), Int32(c), Int32(h), Int32(w), $0.baseAddress) }
        }
        precondition(rc == 0, "mpq_reorder_to_blocked_f32 rejected \(t.shape)")
        let b = BlockedValue(shape: t.shape, floats: y)
        store[s] = b
        return b
    }

    /// Gives slot `s` its NCHW value when only the blocked form exists.
    func materializeBlocked(_ s: Int, _ values: inout [Tensor?], _ store: BlockedStore) {
        guard s >= 0, values[s] == nil, let b = store[s] else { return }
        let (n, c, h, w) = (b.shape[0], b.shape[1], b.shape[2], b.shape[3])
        var y = [Float].uninitialized(count: n * c * h * w)
        let rc = b.floats.withUnsafeBufferPointer { px in
            y.withUnsafeMutableBufferPointer { mpq_reorder_from_blocked_f32(MPQ_PATH_AUTO, px.baseAddress, Int32(n), Int32(c), Int32(h), Int32(w), $0.baseAddress) }
        }
        precondition(rc == 0, "mpq_reorder_from_blocked_f32 rejected \(b.shape)")
        values[s] = Tensor(shape: b.shape, floats: y, dtype: .float32)
    }

    /// The NCHW values plan node `i` (with the fusions that may start at it) can read.
    func materializeInputs(of i: Int, _ values: inout [Tensor?], _ store: BlockedStore) {
        for s in inputSlots[i] { materializeBlocked(s, &values, store) }
        if let f = residualFusions[i], let s = slotOf[f.shortcut] { materializeBlocked(s, &values, store) }
    }

    /// Plan node `i` as a blocked Conv, with the SiLU or residual Add (+ Relu) fusion that
    /// `step` would apply: reads its input (and shortcut) blocked, writes its output blocked
    /// into `store` (none in `values`). Returns the node as run, or nil (nothing done) where
    /// it does not apply: not a blocked Conv, an override, a shape the blocked kernel or
    /// mpq's FP32 GEMM does not take (the node then runs as before and gives its errors).
    func runBlockedConv(_ i: Int, _ values: inout [Tensor?], _ store: inout BlockedStore,
                        fusedAway: inout Set<Int>) -> Node? {
        guard let binding = blockedBindings[i], overrides.isEmpty || overrides[plan[i].name] == nil else { return nil }
        if binding.depthwise { return runBlockedDepthwise(i, binding.plain, &values, &store) }
        let xs = inputSlots[i][0]
        guard xs >= 0, let xShape = store[xs]?.shape ?? values[xs].flatMap({ $0.dtype == .float32 ? $0.shape : nil }),
              xShape.count == 4, xShape[0] > 0, let w = inputConstants[i][1], w.dtype == .float32, w.rank == 4, w.shape[1] == xShape[1]
        else { return nil }
        let bias = inputConstants[i].count > 2 ? inputConstants[i][2] : nil
        let m = w.shape[0]
        guard bias.map({ $0.dtype == .float32 && $0.count == m }) ?? true else { return nil }
        var node = plan[i]
        var a = binding.plain    // `node`'s attributes, read when the session was made
        var fused: [Int] = []
        var shortcut: (slot: Int, first: Bool, relu: Bool)?
        if let f = siluFusions[i], let fa = binding.silu, f.applies(keep: [], overrides: overrides) {
            node = f.node; a = fa
            fused = [f.sigmoid, f.mul]
        } else if let f = residualFusions[i], let fa = binding.residual, f.applies(keep: [], overrides: overrides), let s = slotOf[f.shortcut],
                  store[s] != nil || values[s]?.dtype == .float32 {
            node = f.node; a = fa
            fused = f.fusedAway
            shortcut = (s, a.residualSide == "first", a.residualRelu)
        }
        let kernel = Array(w.shape.dropFirst(2))
        if let ks = a.kernelShape, ks != kernel { return nil }
        guard var g = try? WindowGeometry(input: Array(xShape.dropFirst(2)), kernel: kernel, strides: a.strides,
                                          dilations: a.dilations, pads: a.pads, op: "Conv"),
              let autoPad = try? AutoPad(attribute: a.autoPad),
              (try? g.resolveConv(autoPad: autoPad, op: "Conv")) != nil,
              ConvOps.usesPackedGemm(g, channelsPerGroup: xShape[1], m: m, depthwise: false) else { return nil }
        var shape = mpq_conv2d_shape(
            channels: Int32(xShape[1]), height: Int32(g.input[1]), width: Int32(g.input[2]),
            kernel_h: Int32(g.kernel[1]), kernel_w: Int32(g.kernel[2]),
            pad_top: Int32(g.padHead[1]), pad_left: Int32(g.padHead[2]),
            pad_bottom: Int32(g.padTail[1]), pad_right: Int32(g.padTail[2]),
            stride_h: Int32(g.stride[1]), stride_w: Int32(g.stride[2]),
            dilation_h: Int32(g.dilation[1]), dilation_w: Int32(g.dilation[2]), group: 1)
        let n = xShape[0], outShape = [n, m] + g.outputShape
        // The kernel takes the shape and on this path beats the NCHW kernel on it (AVX2: 1x1
        // stride 1 and small inputs; the rest stays NCHW, reordered at its edges).
        guard mpq_sconv2d_f32_blocked_preferred(MPQ_PATH_AUTO, &shape) != 0 else { return nil }
        if let sc = shortcut, (store[sc.slot]?.shape ?? values[sc.slot]?.shape) != outShape { return nil }
        // An input of few channels that is not blocked yet (the detector's 3-channel stem) is
        // read as NCHW planes: a reorder would write 16 lanes per pixel for 3.
        let fromNCHW = store[xs] == nil && xShape[1] < 16
        let x = fromNCHW ? BlockedValue(shape: xShape, floats: values[xs]!.materialized().floats) : blockedForm(xs, values, &store)
        let conv = fromNCHW ? mpq_sconv2d_f32_blocked_from_nchw : mpq_sconv2d_f32_blocked
        let short = shortcut.map { blockedForm($0.slot, values, &store) }
        let packed = binding.weights.packed(w, group: 1, name: node.inputs[1], prepared: preparedWeights)
        let (act, lo, hi) = a.epilogue.cActivation
        var out = [Float].uninitialized(count: n * mpq_blocked_image_floats(Int32(m), Int32(g.output[1]), Int32(g.output[2])))
        let threads = ConvOps.packedGemmThreads(images: n, macsPerImage: m * g.outputCount * packed.k)
        let biasFloats = bias?.floats ?? []
        let rc = x.floats.withUnsafeBufferPointer { px in
            biasFloats.withUnsafeBufferPointer { pb in
                out.withUnsafeMutableBufferPointer { po in
                    let b = pb.isEmpty ? nil : pb.baseAddress
                    guard let short, let sc = shortcut else {
                        return conv(MPQ_PATH_AUTO, px.baseAddress, Int32(n), &shape, packed.channelVector, b,
                                    act, lo, hi, nil, po.baseAddress, threads)
                    }
                    return short.floats.withUnsafeBufferPointer { ps in
                        var r = mpq_sconv_residual(shortcut: ps.baseAddress, shortcut_first: sc.first ? 1 : 0, relu: sc.relu ? 1 : 0)
                        return conv(MPQ_PATH_AUTO, px.baseAddress, Int32(n), &shape, packed.channelVector, b,
                                    act, lo, hi, &r, po.baseAddress, threads)
                    }
                }
            }
        }
        precondition(rc == 0, "mpq_sconv2d_f32_blocked rejected a Conv the caller checked: X \(xShape), M \(m)")
        let os = slotOf[node.outputs[0]]!
        store[os] = BlockedValue(shape: outShape, floats: out)
        values[os] = nil
        fusedAway.formUnion(fused)
        countBlockedConv(residual: shortcut != nil)
        return node
    }
}

extension Session {
    /// Plan node `i` as a blocked depthwise 3x3 Conv (`mpq_depthwise3x3_f32_blocked`) with its
    /// Relu/Clip epilogue: reads its input blocked (reordered once when it is not), writes its
    /// output blocked into `store`. nil (nothing done) where the kernel does not take the run's
    /// shapes or weights (a weight that is not finite: the NCHW kernels run it).
    func runBlockedDepthwise(_ i: Int, _ a: ConvOps.ConvAttributes, _ values: inout [Tensor?], _ store: inout BlockedStore) -> Node? {
        let xs = inputSlots[i][0]
        guard xs >= 0, let xShape = store[xs]?.shape ?? values[xs].flatMap({ $0.dtype == .float32 ? $0.shape : nil }),
              xShape.count == 4, xShape[0] > 0, let w = inputConstants[i][1], w.dtype == .float32, w.rank == 4,
              w.shape[0] == xShape[1], a.group == xShape[1], case let epilogue = a.epilogue, epilogue != .silu else { return nil }
        let bias = inputConstants[i].count > 2 ? inputConstants[i][2] : nil
        guard bias.map({ $0.dtype == .float32 && $0.count == xShape[1] }) ?? true else { return nil }
        let kernel = Array(w.shape.dropFirst(2))
        if let ks = a.kernelShape, ks != kernel { return nil }
        guard var g = try? WindowGeometry(input: Array(xShape.dropFirst(2)), kernel: kernel, strides: a.strides,
                                          dilations: a.dilations, pads: a.pads, op: "Conv"),
              let autoPad = try? AutoPad(attribute: a.autoPad),
              (try? g.resolveConv(autoPad: autoPad, op: "Conv")) != nil else { return nil }
        let limit = Int(Int32.max)
        guard ([xShape[1], g.input[1], g.input[2]] + g.padHead + g.padTail + g.stride).allSatisfy({ $0 <= limit }) else { return nil }
        var shape = mpq_conv2d_shape(
            channels: Int32(xShape[1]), height: Int32(g.input[1]), width: Int32(g.input[2]), kernel_h: 3, kernel_w: 3,
            pad_top: Int32(g.padHead[1]), pad_left: Int32(g.padHead[2]), pad_bottom: Int32(g.padTail[1]), pad_right: Int32(g.padTail[2]),
            stride_h: Int32(g.stride[1]), stride_w: Int32(g.stride[2]), dilation_h: Int32(g.dilation[1]), dilation_w: Int32(g.dilation[2]),
            group: Int32(xShape[1]))
        guard mpq_depthwise3x3_f32_blocked_applies(&shape) != 0 else { return nil }
        let n = xShape[0], c = xShape[1]
        let x = blockedForm(xs, values, &store)
        let (act, lo, hi) = epilogue.cActivation
        var out = [Float].uninitialized(count: n * mpq_blocked_image_floats(Int32(c), Int32(g.output[1]), Int32(g.output[2])))
        let threads = Int32(ConvOps.fp32DepthwiseChannelTasks(macs: n * c * g.outputCount * 9))
        let biasFloats = bias?.floats ?? []
        let rc = x.floats.withUnsafeBufferPointer { px in
            w.floats.withUnsafeBufferPointer { pw in
                biasFloats.withUnsafeBufferPointer { pb in
                    out.withUnsafeMutableBufferPointer { po in
                        mpq_depthwise3x3_f32_blocked(MPQ_PATH_AUTO, px.baseAddress, Int32(n), &shape, pw.baseAddress,
                                                     pb.isEmpty ? nil : pb.baseAddress, act, lo, hi, po.baseAddress, threads)
                    }
                }
            }
        }
        guard rc == 0 else { return nil }
        let os = outputSlots[i][0]
        store[os] = BlockedValue(shape: [n, c] + g.outputShape, floats: out)
        values[os] = nil
        countBlockedConv(residual: false)
        return plan[i]
    }

    /// Plan node `i` as a blocked pool (`findBlockedPassThrough`): reads its input's blocked form from
    /// `store` and writes its output there (none in `values`). nil (nothing done) where it does
    /// not apply: not a blocked pool, an override, an input not held blocked, or a window the
    /// node's own run would reject (that run then gives the error).
    func runBlockedPool(_ i: Int, _ values: inout [Tensor?], _ store: inout BlockedStore) -> Node? {
        guard !blockedPoolBindings.isEmpty, let a = blockedPoolBindings[i],
              overrides.isEmpty || overrides[plan[i].name] == nil else { return nil }    // empty first, as runBlockedMove
        let node = plan[i]
        let xs = inputSlots[i][0]
        guard xs >= 0, let x = store[xs], x.shape.count == 4 else { return nil }
        guard let (nc, g) = try? PoolOps.poolGeometry(shape: x.shape, node.opType, a.autoPad, a.ceilMode, a.dilations,
                                                      a.kernelShape, a.pads, a.strides),
              let y = PoolOps.poolBlocked(x.floats, n: nc[0], channels: nc[1], g, a.kind) else { return nil }
        let os = outputSlots[i][0]
        store[os] = BlockedValue(shape: nc + g.outputShape, floats: y)
        values[os] = nil
        countBlockedPool()
        return node
    }
}

extension Session {
    /// Plan node `i` as a blocked Resize or channel Concat (s29, `findBlockedPassThrough`):
    /// reads its image inputs' blocked forms from `store`, writes its output there (none in
    /// `values`). A Concat of inputs whose channels are multiples of 16 appends each image's
    /// blocked planes (the layout's channel blocks are whole); a nearest Resize copies each
    /// output pixel's 16-channel vectors from the input pixel the op's own index map names
    /// (`BlockedMoveBinding.nearestMap`). Values are copied, never computed: the NCHW run's
    /// bits. nil (nothing done) where it does not apply (an input not blocked, channels not a
    /// multiple of 16, a Resize that is not a pure selection): the node then runs NCHW.
    func runBlockedMove(_ i: Int, _ values: inout [Tensor?], _ store: inout BlockedStore) -> Node? {
        // Empty first: every chain node that is not a blocked Conv or pool asks here, image by
        // image, and most models have no moves (a lookup hashes even in an empty dictionary).
        guard !blockedMoveBindings.isEmpty, let binding = blockedMoveBindings[i],
              overrides.isEmpty || overrides[plan[i].name] == nil else { return nil }
        let node = plan[i]
        let os = outputSlots[i][0]
        guard os >= 0 else { return nil }
        if node.opType == "Concat" {
            var parts: [BlockedValue] = []
            for s in inputSlots[i] {
                guard s >= 0, let b = store[s], b.shape.count == 4, b.shape[1] % 16 == 0 else { return nil }
                parts.append(b)
            }
            guard let first = parts.first?.shape,
                  parts.allSatisfy({ $0.shape[0] == first[0] && $0.shape[2] == first[2] && $0.shape[3] == first[3] }) else { return nil }
            let n = first[0], plane = first[2] * first[3], c = parts.reduce(0) { $0 + $1.shape[1] }
            var out = [Float].uninitialized(count: n * c * plane)
            out.withUnsafeMutableBufferPointer { po in
                var d = po.baseAddress!
                for img in 0..<n {
                    for p in parts {
                        let per = p.shape[1] * plane
                        p.floats.withUnsafeBufferPointer { d.update(from: $0.baseAddress! + img * per, count: per) }
                        d += per
                    }
                }
            }
            store[os] = BlockedValue(shape: [n, c, first[2], first[3]], floats: out)
        } else {
            let xs = inputSlots[i][0]
            guard xs >= 0, let x = store[xs], x.shape.count == 4,
                  let map = binding.nearestMap(node, entries[i], inputConstants[i], height: x.shape[2], width: x.shape[3],
                                               opset: graph.opset(forDomain: node.domain)) else { return nil }
            let (n, cbs) = (x.shape[0], (x.shape[1] + 15) / 16)
            let inPlane = x.shape[2] * x.shape[3], outPlane = map.index.count
            var out = [Float].uninitialized(count: n * cbs * outPlane * 16)
            x.floats.withUnsafeBufferPointer { px in
                out.withUnsafeMutableBufferPointer { po in
                    map.index.withUnsafeBufferPointer { idx in
                        for b in 0..<(n * cbs) {
                            let src = px.baseAddress! + b * inPlane * 16, dst = po.baseAddress! + b * outPlane * 16
                            for q in 0..<outPlane { (dst + 16 * q).update(from: src + 16 * Int(idx[q]), count: 16) }
                        }
                    }
                }
            }
            store[os] = BlockedValue(shape: [n, x.shape[1], map.height, map.width], floats: out)
        }
        values[os] = nil
        countBlockedMove()
        return node
    }
}

/// A blocked Resize's index map, found once per input size by running the node's own Resize
/// on a plane of pixel numbers (`nearestMap`): whatever its coordinate mode and rounding, the
/// map is the op's, so the blocked copy and the NCHW run select the same pixels.
final class BlockedMoveBinding: @unchecked Sendable {
    struct NearestMap {
        let height: Int, width: Int
        /// Per output pixel (row-major), the input pixel it copies.
        let index: [Int32]
    }

    private let lock = NSLock()
    private var maps: [[Int]: NearestMap?] = [:]

    /// The map for an input plane of `height` x `width`, or nil where the Resize is not a pure
    /// selection of input pixels (linear or cubic modes, a crop that extrapolates) or would
    /// fail (then the NCHW run gives the error).
    func nearestMap(_ node: Node, _ entry: OpEntry, _ constants: [Tensor?], height: Int, width: Int, opset: Int) -> NearestMap? {
        let key = [height, width]
        lock.lock()
        if let known = maps[key] { lock.unlock(); return known }
        lock.unlock()
        let map = Self.probe(node, entry, constants, height: height, width: width, opset: opset)
        lock.lock(); maps[key] = map; lock.unlock()
        return map
    }

    private static func probe(_ node: Node, _ entry: OpEntry, _ constants: [Tensor?], height: Int, width: Int, opset: Int) -> NearestMap? {
        guard node.string("mode", default: "nearest") == "nearest",
              node.string("coordinate_transformation_mode", default: "half_pixel") != "tf_crop_and_resize",
              height > 0, width > 0, height * width < 1 << 24 else { return nil }
        let pixels = Tensor(shape: [1, 1, height, width], floats: (0..<height * width).map { Float($0) }, dtype: .float32)
        var inputs: [Tensor?] = [pixels]
        for k in 1..<node.inputs.count { inputs.append(k < constants.count ? constants[k] : nil) }
        guard let y = try? entry.run(node, inputs, opset).first, y.rank == 4, y.shape[0] == 1, y.shape[1] == 1,
              y.floats.count == y.count else { return nil }
        var index = [Int32](repeating: 0, count: y.count)
        for (q, v) in y.floats.enumerated() {
            guard v >= 0, v < Float(height * width), v == v.rounded() else { return nil }
            index[q] = Int32(v)
        }
        return NearestMap(height: y.shape[2], width: y.shape[3], index: index)
    }
}

/// A blocked pool's attributes read once per session (`Session.blockedPoolBindings`).
struct BlockedPoolBinding {
    let kind: PoolKind
    let autoPad: String, ceilMode: Bool
    let dilations: [Int]?, kernelShape: [Int]?, pads: [Int]?, strides: [Int]?

    init(_ node: Node) {
        kind = node.opType == "MaxPool" ? .max : .average(includePad: node.int("count_include_pad", default: 0) != 0)
        autoPad = node.string("auto_pad", default: "NOTSET")
        ceilMode = node.int("ceil_mode", default: 0) != 0
        dilations = node.ints("dilations"); kernelShape = node.ints("kernel_shape"); pads = node.ints("pads"); strides = node.ints("strides")
    }
}

/// A blocked Conv's attributes read once per session (`Session.blockedBindings`): as planned,
/// and as its SiLU or residual fusion rewrites the node, with its packed weights remembered
/// (`ConvRunMemo.packed`). A class, as are the attributes: a run reads them through one
/// reference instead of copying (and retaining) each attribute array and string per Conv.
final class BlockedConvBinding {
    let plain: ConvOps.ConvAttributes
    /// A depthwise Conv (`Session.runBlockedDepthwise`), not a group-1 one.
    var depthwise: Bool { plain.group > 1 }
    let silu: ConvOps.ConvAttributes?
    let residual: ConvOps.ConvAttributes?
    let weights: ConvRunMemo

    init(plain: ConvOps.ConvAttributes, silu: ConvOps.ConvAttributes?, residual: ConvOps.ConvAttributes?, weights: ConvRunMemo) {
        self.plain = plain
        self.silu = silu
        self.residual = residual
        self.weights = weights
    }
}
