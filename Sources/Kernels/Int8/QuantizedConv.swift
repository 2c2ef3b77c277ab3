import CKernels
import Dispatch
import ONNX

/// INT8 Conv (1-D and 2-D, any group count): the activation is quantized to uint8 on
/// entry, each group runs u8 im2col + u8 x s8 GEMM with the dequantize/bias/clamp epilogue
/// fused; depthwise convolutions (one input and one output channel per group) run a
/// direct kernel instead.
final class QuantizedConv: QuantizedLayer {
    let node: Node
    let inputQuant: ActivationQuant
    let weightScales: [Float]
    private let weights: QuantizedWeights
    private let packed: [PackedWeights]       // one per group (empty for depthwise)
    private let bias: [Float]?                 // int32-quantized bias, dequantized
    private let floatBias: [Float]?            // as in the model, for requantization
    private let group: Int
    private let outChannels: Int
    private let kernel: [Int]
    private let clamp: (Float, Float)
    /// im2col in (kh, kw, c) column order with weights reordered to match: several times
    /// cheaper than (c, kh, kw) when a group has 16 or more channels.
    private let khwc: Bool
    private let weightShape: [Int]
    private let engineNote = EngineNote()
    private let requantCache = RequantCache()
    /// The C shape, plane sizes and output spatial shape per input shape (batch axis dropped).
    private let geometryCache = LastValueCache<ArraySlice<Int>, (mpq_conv2d_shape, Int, Int, [Int])>()

    /// The requantizing epilogue for `output` (cached: the same values on every call).
    private func requantization(_ output: ActivationQuant) -> Requantization {
        requantCache.get(output) { Requantization(inputScale: inputQuant.scale, weightScales: weightScales, bias: floatBias, output: output) }
    }
    var engine: String? { engineNote.value }

    init(node: Node, weight w: Tensor, bias b: Tensor?, inputQuant: ActivationQuant, weightBits: WeightBits = .eight) throws {
        guard w.rank == 3 || w.rank == 4 else {
            throw QuantizationError.notQuantizable(layer: node.name, opType: node.opType,
                                                   reason: "only 1-D and 2-D convolutions have an INT8 kernel (W is \(Tensor.describe(w.shape)))")
        }
        self.node = node
        self.inputQuant = inputQuant
        self.group = node.int("group", default: 1)
        self.outChannels = w.shape[0]
        self.kernel = Array(w.shape.dropFirst(2))
        self.weightShape = w.shape
        guard group >= 1, outChannels % group == 0 else {
            throw QuantizationError.notQuantizable(layer: node.name, opType: node.opType, reason: "group \(group) does not divide \(outChannels) output channels")
        }
        let qw = QuantizedWeights(rows: w.floats, channels: w.shape[0], bits: weightBits)
        weights = qw
        weightScales = qw.scales
        bias = b.map { quantizedBias($0.floats, inputScale: inputQuant.scale, weightScales: qw.scales) }
        floatBias = b?.floats
        clamp = clampBounds(node)
        let groups = node.int("group", default: 1)
        let perGroup = w.shape[0] / groups
        let k = qw.perChannel
        let cg = w.shape[1]
        let (kh, kw) = w.rank == 4 ? (w.shape[2], w.shape[3]) : (1, w.shape[2])
        khwc = cg >= 16 && kh * kw > 1
        if cg == 1 && perGroup == 1 {
            packed = []     // depthwise: direct kernel reads the unpacked weights
        } else {
            packed = (0..<groups).map { g in
                var rows = Array(qw.values[g * perGroup * k..<(g + 1) * perGroup * k])
                if cg >= 16 && kh * kw > 1 {
                    let src = rows
                    src.withUnsafeBufferPointer { s in rows.withUnsafeMutableBufferPointer { d in
                        mpq_conv_weights_khwc_s8(s.baseAddress, Int32(perGroup), Int32(cg), Int32(kh), Int32(kw), d.baseAddress)
                    } }
                }
                return PackedWeights(rows: rows, n: perGroup, k: k)
            }
        }
    }

    func run(_ inputs: [Tensor?], path: KernelPath) throws -> [Tensor] {
        try run(inputs, path: path, requant: nil)
    }

    func run(_ inputs: [Tensor?], path: KernelPath, output: ActivationQuant) throws -> [Tensor] {
        try run(inputs, path: path, requant: requantization(output))
    }

    var readsCodes: Bool { true }

    func runWritingCodes(_ inputs: [Tensor?], path: KernelPath, output: ActivationQuant) throws -> [Tensor] {
        try run(inputs, path: path, requant: requantization(output), writeCodes: true)
    }

    private func run(_ inputs: [Tensor?], path: KernelPath, requant: Requantization?, writeCodes: Bool = false) throws -> [Tensor] {
        guard var x = inputs.first ?? nil, x.dtype.isFloating, x.rank == kernel.count + 2 else {
            throw OpError("INT8 Conv needs a float input of rank \(kernel.count + 2)")
        }
        let n = x.shape[0], c = x.shape[1]
        guard c == weights.perChannel / kernel.reduce(1, *) * group else {
            throw OpError("INT8 Conv input \(Tensor.describe(x.shape)) does not fit \(group) groups of the weights")
        }
        let (shape, inP, outP, outSpatial) = try geometryCache.get(x.shape.dropFirst()) {
            var g = try WindowGeometry(input: Array(x.shape.dropFirst(2)), kernel: kernel, strides: node.ints("strides"),
                                       dilations: node.ints("dilations"), pads: node.ints("pads"), op: "Conv")
            try g.resolveConv(autoPad: try AutoPad(attribute: node.string("auto_pad", default: "NOTSET")), op: "Conv")
            // Spatial axes padded to three; 1-D and 2-D leave axis 0 at size 1.
            let shape = mpq_conv2d_shape(channels: Int32(c), height: Int32(g.input[1]), width: Int32(g.input[2]),
                                         kernel_h: Int32(g.kernel[1]), kernel_w: Int32(g.kernel[2]),
                                         pad_top: Int32(g.padHead[1]), pad_left: Int32(g.padHead[2]),
                                         pad_bottom: Int32(g.padTail[1]), pad_right: Int32(g.padTail[2]),
                                         stride_h: Int32(g.stride[1]), stride_w: Int32(g.stride[2]),
                                         dilation_h: Int32(g.dilation[1]), dilation_w: Int32(g.dilation[2]),
                                         group: Int32(group))
            return (shape, g.inputCount, g.outputCount, g.outputShape)
        }
        let perGroup = outChannels / group
        let kg = weights.perChannel
        // Input codes on this layer's grid are the quantized input itself (docs/int8-chains.md).
        let inputCodes = x.codes(on: inputQuant) ?? []
        if inputCodes.isEmpty { x = x.materialized() }
        let codesOut = writeCodes && requant != nil
        // Not zero-filled: the kernels write every output element (a kernel error throws
        // below before the array is read), and zeroing was a serial pass over the whole
        // output before the parallel work (51 MB of floats for a ResNet stem at batch 16).
        var out = [Float](unsafeUninitializedCapacity: codesOut ? 0 : n * outChannels * outP) { _, count in
            count = codesOut ? 0 : n * outChannels * outP
        }
        var outCodes = [UInt8](unsafeUninitializedCapacity: codesOut ? n * outChannels * outP : 0) { _, count in
            count = codesOut ? n * outChannels * outP : 0
        }
        let zy = requant?.output.zeroPoint ?? 0
        let multipliers = requant?.multipliers ?? [], biasInt = requant?.biasInt ?? []
        // A batch splits by image over the cores, each image quantized, im2col'd and
        // multiplied on one core: one fork/join per layer instead of one per image and
        // group, and the quantize/im2col run in parallel too. Images are independent, so
        // the split changes no bit. One image splits inside the GEMM instead.
        let tasks = imageTasks(images: n, macsPerImage: outP * outChannels * kg)
        // One image of a depthwise conv splits by channel instead (its kernel is one pass per
        // plane, so a channel range is an independent call), when it is big enough to repay
        // the fork/join: MobileNetV2's wide early layers, not its 7x7 ones.
        // One image to codes (the INT8 chains) splits inside the kernel over the kernel pool's
        // spinning workers instead, from smaller layers on (depthwisePoolThreads).
        let poolThreads = packed.isEmpty && n == 1 && codesOut && depthwisePoolEnabled
            ? depthwisePoolThreads(macs: outP * outChannels * kg) : 0
        let channelTasks = packed.isEmpty && n == 1 && poolThreads == 0 ? depthwiseChannelTasks(macs: outP * outChannels * kg) : 1
        let statuses = UnsafeMutableBufferPointer<Int32>.allocate(capacity: max(tasks, channelTasks))
        statuses.initialize(repeating: 0)
        // The engine each task's kernel calls reported (`mpq_last_engine`, per thread).
        let engines = UnsafeMutableBufferPointer<UnsafePointer<CChar>?>.allocate(capacity: max(tasks, channelTasks))
        engines.initialize(repeating: nil)
        defer { statuses.deallocate(); engines.deallocate() }
        let xs = x.floats
        weightScales.withUnsafeBufferPointer { ps in
        multipliers.withUnsafeBufferPointer { pm in
        biasInt.withUnsafeBufferPointer { pbi in
        (bias ?? []).withUnsafeBufferPointer { pb in
        xs.withUnsafeBufferPointer { px in
        inputCodes.withUnsafeBufferPointer { pxq in
        outCodes.withUnsafeMutableBufferPointer { pc in
        out.withUnsafeMutableBufferPointer { po in
            let y0 = po.baseAddress, c0 = pc.baseAddress
            let work = { [self] (t: Int) in
                var shape = shape
                let first = n * t / tasks, last = n * (t + 1) / tasks
                guard first < last else { return }
                var status: Int32 = 0
                let qbuf = UnsafeMutablePointer<UInt8>.allocate(capacity: pxq.isEmpty ? c * inP : 1)
                defer { qbuf.deallocate() }
                for img in first..<last {
                    let q: UnsafePointer<UInt8>
                    // (An empty array's buffer may still have a base address: test the count.)
                    if !pxq.isEmpty, let codes = pxq.baseAddress { q = codes + img * c * inP } else {
                        // One task (batch 1: a float graph input into the stem) quantizes over the
                        // kernel pool from 64K floats, as the conv after it splits: the same codes.
                        let image = UnsafeBufferPointer(rebasing: px[img * c * inP..<(img + 1) * c * inP])
                        if tasks == 1 { quantizeU8Split(image, inputQuant, path: path, into: qbuf) } else {
                            quantizeU8(image, inputQuant, path: path, into: qbuf)
                        }
                        q = UnsafePointer(qbuf)
                    }
                    let imgOffset = img * outChannels * outP
                    if packed.isEmpty {
                        var ep = layerEpilogue(input: inputQuant, scales: ps, bias: bias == nil ? nil : pb, clamp: clamp,
                                               requant: requant, multipliers: pm, biasInt: pbi)
                        weights.values.withUnsafeBufferPointer { pw in
                            if codesOut {
                                status |= mpq_depthwise_conv_u8s8_u8_threads(path.c, q, &shape, pw.baseAddress, &ep, c0! + imgOffset,
                                                                             zy, max(poolThreads, 1))
                            } else {
                                status |= mpq_depthwise_conv_u8s8(path.c, q, &shape, pw.baseAddress, &ep, y0! + imgOffset)
                            }
                        }
                        continue
                    }
                    for gi in 0..<group {
                        var ep = layerEpilogue(input: inputQuant, scales: ps, bias: bias == nil ? nil : pb, clamp: clamp,
                                               requant: requant, multipliers: pm, biasInt: pbi, channel: gi * perGroup)
                        // im2col a block of output rows at a time into an L2-sized buffer, each block's
                        // GEMM written channel-major straight into the NCHW output; one image's blocks
                        // split over the cores, im2col included (docs/int8-conv.md).
                        let threads = tasks > 1 ? 1 : convGemmThreads(m: outP, n: perGroup, k: kg, window: kernel.reduce(1, *))
                        let at = imgOffset + gi * perGroup * outP
                        status |= mpq_qconv2d_u8s8(path.c, q, &shape, Int32(gi), khwc ? 1 : 0, inputQuant.zeroPoint,
                                                   packed[gi].pointer, &ep, codesOut ? nil : y0! + at,
                                                   codesOut ? c0! + at : nil, zy, threads)
                    }
                }
                statuses[t] = status
                engines[t] = EngineNote.current
            }
            let channelWork = { [self] (t: Int) in
                let first = c * t / channelTasks, last = c * (t + 1) / channelTasks
                guard first < last else { return }
                var part = shape
                part.channels = Int32(last - first); part.group = part.channels
                let q: UnsafePointer<UInt8>
                let qbuf = UnsafeMutablePointer<UInt8>.allocate(capacity: pxq.isEmpty ? (last - first) * inP : 1)
                defer { qbuf.deallocate() }
                if !pxq.isEmpty, let codes = pxq.baseAddress { q = codes + first * inP } else {
                    quantizeU8(UnsafeBufferPointer(rebasing: px[first * inP..<last * inP]), inputQuant, path: path, into: qbuf)
                    q = UnsafePointer(qbuf)
                }
                var ep = layerEpilogue(input: inputQuant, scales: ps, bias: bias == nil ? nil : pb, clamp: clamp,
                                       requant: requant, multipliers: pm, biasInt: pbi, channel: first)
                statuses[t] = weights.values.withUnsafeBufferPointer { pw in
                    codesOut ? mpq_depthwise_conv_u8s8_u8(path.c, q, &part, pw.baseAddress! + first * kg, &ep, c0! + first * outP, zy)
                             : mpq_depthwise_conv_u8s8(path.c, q, &part, pw.baseAddress! + first * kg, &ep, y0! + first * outP)
                }
                engines[t] = EngineNote.current
            }
            // On the kernel pool, not GCD: its workers are awake between layers, where GCD's
            // parked threads competed with them for the cores (as in QuantizedActivationMatMul).
            // Each task calls its kernels with one thread, so nothing below splits over the pool.
            if channelTasks > 1 { poolPerform(threads: channelTasks, chunks: channelTasks, channelWork) }
            else if tasks > 1 { poolPerform(threads: tasks, chunks: tasks, work) } else { work(0) }
        }
        }
        }
        }
        }
        }
        }
        }
        let status = statuses.reduce(0, |)
        if status != 0 { throw OpError("INT8 Conv kernel rejected its arguments") }
        engineNote.set(engines.lazy.compactMap { $0 }.first)
        let outShape = [n, outChannels] + outSpatial
        if codesOut, let r = requant {
            return [Tensor(shape: outShape, codes: QuantizedCodes(values: outCodes, scale: r.output.scale, zeroPoint: r.output.zeroPoint))]
        }
        return [Tensor(shape: outShape, floats: out)]
    }
}

extension QuantizedConv {
    func qdq() throws -> QDQLayer {
        let (biasValues, biasScales) = try qdqBias(floatBias, inputScale: inputQuant.scale, epilogueScales: weightScales, layer: node.name)
        return QDQLayer(node: node.name, activation: node.input(0) ?? "", activationScale: inputQuant.scale,
                        activationZeroPoint: inputQuant.zeroPoint, weightValues: weights.values, weightShape: weightShape,
                        weightScales: weightScales, weightAxis: 0, biasValues: biasValues, biasScales: biasScales)
    }
}

/// Conv (1-D and 2-D, any group count) with a constant weight.
public enum ConvFamily: Int8OpFamily {
    public static let opTypes: Set<String> = ["Conv"]
    /// ORT's ConvSelector needs the output Q (qdq_selector_action_transformer.cc, ConvQDQRules).
    public static func fusesOnlyWithOutputQuantize(_ node: Node) -> Bool { true }

    public static func accepts(_ node: Node, constants: [String: Tensor]) -> Bool {
        guard let w = constantWeight(node, constants) else { return false }
        return w.rank == 3 || w.rank == 4
    }

    public static func quantizedInputs(_ node: Node, constants: [String: Tensor]) -> [String] {
        node.input(0).map { [$0] } ?? []
    }

    public static func macs(_ node: Node, inputShapes: [[Int]?], outputShapes: [[Int]]) -> Int {
        guard let out = outputShapes.first, inputShapes.count > 1, let w = inputShapes[1], w.count >= 2 else { return 0 }
        return saturatingProduct([saturatingProduct(out), saturatingProduct(w.dropFirst())])   // Cin/group * prod(kernel)
    }

    public static func prepare(_ node: Node, constants: [String: Tensor], inputs: [ActivationQuant],
                               weightBits: WeightBits) throws -> QuantizedLayer {
        try QuantizedConv(node: node, weight: constantWeight(node, constants)!, bias: node.input(2).flatMap { constants[$0] },
                          inputQuant: inputs[0], weightBits: weightBits)
    }
}
