import CKernels
import ONNX

/// INT8 ConvTranspose: per image and group, the uint8 input plane (pixels x input
/// channels) times the int8 weights (one row per output channel and kernel tap) in one
/// u8 x s8 GEMM, dequantized channel-major into the column buffer, then col2im scatters the
/// columns into the output as the FP32 op does. Weight scales are per index of W's axis 1
/// (ONNX Runtime's per-channel axis for ConvTranspose; shared by the groups).
final class QuantizedConvTranspose: QuantizedLayer {
    let node: Node
    let inputQuant: ActivationQuant
    let weightScales: [Float]
    private let packed: [PackedWeights]     // per group: rows (co, tap), columns input channel
    private let rowScales: [[Float]]        // per group: weight scale of each row's output channel
    private let bias: [Float]?
    private let wShape: [Int]
    private let group: Int
    private let clamp: (Float, Float)
    /// Quantized over `WeightLayout.convTransposeRows` ([co][ci][taps] per group), for the export.
    private let rows: QuantizedWeights
    private let floatBias: [Float]?

    init(node: Node, weight w: Tensor, bias b: Tensor?, inputQuant: ActivationQuant, weightBits: WeightBits = .eight) throws {
        guard w.rank >= 3 && w.rank <= 5 else {
            throw QuantizationError.notQuantizable(layer: node.name, opType: node.opType, reason: "W \(Tensor.describe(w.shape)) is not a 1-3-D ConvTranspose weight")
        }
        self.node = node
        self.inputQuant = inputQuant
        let group = node.int("group", default: 1)
        let c = w.shape[0], mg = w.shape[1], taps = w.shape.dropFirst(2).reduce(1, *)
        guard group >= 1, c % group == 0 else {
            throw QuantizationError.notQuantizable(layer: node.name, opType: node.opType, reason: "group \(group) does not divide \(c) input channels")
        }
        let cg = c / group
        // One scale per index along W's axis 1 (shared by the groups), the only per-channel
        // layout a QDQ DequantizeLinear can express for ConvTranspose (ONNX Runtime uses axis 1).
        let qw = QuantizedWeights(rows: WeightLayout.convTransposeRows(w), channels: mg, bits: weightBits)
        weightScales = qw.scales
        rows = qw
        floatBias = b?.floats
        // GEMM rows (co, tap) with K = ci, per group.
        var packs: [PackedWeights] = [], scales: [[Float]] = []
        for grp in 0..<group {
            var rows = [Int8](repeating: 0, count: mg * taps * cg)
            var rs = [Float](repeating: 0, count: mg * taps)
            for co in 0..<mg { for t in 0..<taps {
                rs[co * taps + t] = qw.scales[co]
                for ci in 0..<cg { rows[(co * taps + t) * cg + ci] = qw.values[(co * c + grp * cg + ci) * taps + t] }
            } }
            packs.append(PackedWeights(rows: rows, n: mg * taps, k: cg))
            scales.append(rs)
        }
        packed = packs
        rowScales = scales
        let outputScales = (0..<group).flatMap { _ in qw.scales }      // output channel grp*mg + co
        bias = b.map { quantizedBias($0.floats, inputScale: inputQuant.scale, weightScales: outputScales) }
        wShape = w.shape
        self.group = group
        clamp = clampBounds(node)
    }

    func run(_ inputs: [Tensor?], path: KernelPath) throws -> [Tensor] {
        guard let x = inputs.first ?? nil, x.dtype.isFloating, x.rank == wShape.count, x.shape[1] == wShape[0] else {
            throw OpError("INT8 ConvTranspose needs a float input [N,\(wShape[0]),...] of rank \(wShape.count)")
        }
        let (g, outSpatial) = try ConvOps.convTransposeGeometry(
            xShape: x.shape, wShape: wShape, autoPad: node.string("auto_pad", default: "NOTSET"), dilations: node.ints("dilations"),
            outputPadding: node.ints("output_padding"), outputShape: node.ints("output_shape"), pads: node.ints("pads"),
            strides: node.ints("strides"))
        let n = x.shape[0], c = wShape[0], mg = wShape[1], cg = c / group, m = mg * group
        let inP = g.output.reduce(1, *), outP = g.inputCount, rows = mg * g.kernelCount
        var q = [UInt8](repeating: 0, count: x.count)
        x.floats.withUnsafeBufferPointer { px in q.withUnsafeMutableBufferPointer { quantizeU8(px, inputQuant, path: path, into: $0.baseAddress!) } }
        var out = [Float](repeating: 0, count: n * m * outP)
        var a = [UInt8](repeating: 0, count: inP * cg)       // pixels x input channels
        var col = [Float](repeating: 0, count: rows * inP)
        var status: Int32 = 0
        for img in 0..<n {
            for grp in 0..<group {
                let plane = (img * c + grp * cg) * inP
                for ci in 0..<cg { for p in 0..<inP { a[p * cg + ci] = q[plane + ci * inP + p] } }
                rowScales[grp].withUnsafeBufferPointer { rs in
                    a.withUnsafeBufferPointer { pa in
                        col.withUnsafeMutableBufferPointer { pc in
                            var ep = mpq_epilogue(a_zero_point: Int32(inputQuant.zeroPoint), a_scale: inputQuant.scale,
                                                  b_scale: rs.baseAddress, bias: nil, clamp_lo: -.infinity, clamp_hi: .infinity, bias_i32: nil, out_scale: 0)
                            status |= mpq_qgemm_u8s8_f32_nchw(path.c, Int32(inP), Int32(rows), Int32(cg), pa.baseAddress, Int32(cg),
                                                              packed[grp].pointer, &ep, pc.baseAddress, Int32(inP),
                                                              gemmThreads(m: inP, n: rows, k: cg))
                        }
                    }
                }
                col.withUnsafeBufferPointer { pc in
                    out.withUnsafeMutableBufferPointer { po in
                        ConvOps.col2im(src: pc.baseAddress!, channels: mg, g, dst: po.baseAddress! + (img * m + grp * mg) * outP)
                    }
                }
            }
        }
        if status != 0 { throw OpError("INT8 ConvTranspose kernel rejected its arguments") }
        if let bias { ConvOps.addChannelBias(&out, bias, images: n, channels: m, plane: outP) }
        if clamp.0 > -.infinity || clamp.1 < .infinity {
            for i in out.indices { out[i] = min(max(out[i], clamp.0), clamp.1) }
        }
        return [Tensor(shape: [n, m] + outSpatial, floats: out)]
    }
}

extension QuantizedConvTranspose {
    func qdq() throws -> QDQLayer {
        // Back to W's own layout [C][M/g][taps], scales along axis 1 (shared by the groups).
        let c = wShape[0], mg = wShape[1], taps = wShape.dropFirst(2).reduce(1, *)
        var values = [Int8](repeating: 0, count: c * mg * taps)
        for co in 0..<mg { for cin in 0..<c { for t in 0..<taps { values[(cin * mg + co) * taps + t] = rows.values[(co * c + cin) * taps + t] } } }
        let epilogue = (0..<group).flatMap { _ in rows.scales }
        let (biasValues, biasScales) = try qdqBias(floatBias, inputScale: inputQuant.scale, epilogueScales: epilogue, layer: node.name)
        return QDQLayer(node: node.name, activation: node.input(0) ?? "", activationScale: inputQuant.scale,
                        activationZeroPoint: inputQuant.zeroPoint, weightValues: values, weightShape: wShape,
                        weightScales: rows.scales, weightAxis: 1, biasValues: biasValues, biasScales: biasScales)
    }
}

/// ConvTranspose (1-D to 3-D) with a constant weight.
public enum ConvTransposeFamily: Int8OpFamily {
    public static let opTypes: Set<String> = ["ConvTranspose"]
    /// ORT (1.32, CPU) has no QDQ rule for ConvTranspose: it runs in float with or without a Q.
    public static func fusesOnlyWithOutputQuantize(_ node: Node) -> Bool { false }

    public static func accepts(_ node: Node, constants: [String: Tensor]) -> Bool {
        guard let w = constantWeight(node, constants) else { return false }
        return w.rank >= 3 && w.rank <= 5
    }

    public static func quantizedInputs(_ node: Node, constants: [String: Tensor]) -> [String] {
        node.input(0).map { [$0] } ?? []
    }

    public static func macs(_ node: Node, inputShapes: [[Int]?], outputShapes: [[Int]]) -> Int {
        guard let x = inputShapes.first ?? nil, inputShapes.count > 1, let w = inputShapes[1], w.count >= 2 else { return 0 }
        return saturatingProduct([saturatingProduct(x), saturatingProduct(w.dropFirst())])   // each input pixel scatters Cout/group * prod(kernel)
    }

    public static func prepare(_ node: Node, constants: [String: Tensor], inputs: [ActivationQuant],
                               weightBits: WeightBits) throws -> QuantizedLayer {
        try QuantizedConvTranspose(node: node, weight: constantWeight(node, constants)!,
                                   bias: node.input(2).flatMap { constants[$0] }, inputQuant: inputs[0], weightBits: weightBits)
    }
}
