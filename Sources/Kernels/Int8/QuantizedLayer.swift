import CKernels
import Foundation
import ONNX

/// A layer prepared for INT8 execution once per model: weights quantized per output
/// channel and packed, bias quantized as int32 at s_x * s_w. `run` takes the node's inputs
/// (the FP32 activation among them) and returns its FP32 output, computed with
/// u8 x s8 -> s32 arithmetic.
public protocol QuantizedLayer: AnyObject {
    var node: Node { get }
    /// Scale and zero point of the activation the layer quantizes on entry.
    var inputQuant: ActivationQuant { get }
    /// Per-output-channel weight scales.
    var weightScales: [Float] { get }
    /// Quantization of input 1 when it is an activation too (activation x activation MatMul).
    var secondInputQuant: ActivationQuant? { get }
    func run(_ inputs: [Tensor?], path: KernelPath) throws -> [Tensor]
    /// Runs with the output requantized to `output` (the `ort` scheme) and returned
    /// dequantized: exactly ONNX Runtime's QLinear requantization where the layer has it
    /// in its kernel epilogue (Conv, Gemm, MatMul), else quantize -> dequantize of the
    /// float output.
    func run(_ inputs: [Tensor?], path: KernelPath, output: ActivationQuant) throws -> [Tensor]
    /// Whether `run` accepts its activation input held as uint8 codes (`Tensor.codes`):
    /// codes on the layer's own input grid are used as they are (no quantize pass), others
    /// are materialised and quantized (docs/int8-chains.md).
    var readsCodes: Bool { get }
    /// `run(_:path:output:)` returning the output as its uint8 codes (`Tensor(shape:codes:)`)
    /// where the kernel can write them; the same values, bit for bit, once materialised.
    func runWritingCodes(_ inputs: [Tensor?], path: KernelPath, output: ActivationQuant) throws -> [Tensor]
    /// The layer as a QDQ export writes it, from the numbers this layer computes with:
    /// int8 weights in the layout of the node's input 1, their scales and axis, the int32
    /// bias and its scales.
    func qdq() throws -> QDQLayer
    /// The kernel the layer's last run ran, as the C entry point reported it
    /// (`mpq_last_engine`: "pointwise", "pointwise+avx2", "implicit", "im2col+vnni", "im2col+amx",
    /// "depthwise+vnni", "gemm+vnni", ...), or nil before any run. What `mpq profile` shows.
    var engine: String? { get }
}

extension QuantizedLayer {
    public var secondInputQuant: ActivationQuant? { nil }
    public var engine: String? { nil }
    public var readsCodes: Bool { false }

    public func runWritingCodes(_ inputs: [Tensor?], path: KernelPath, output: ActivationQuant) throws -> [Tensor] {
        try run(inputs, path: path, output: output)
    }

    public func run(_ inputs: [Tensor?], path: KernelPath, output: ActivationQuant) throws -> [Tensor] {
        var outs = try run(inputs, path: path)
        requantize(&outs[0], output, path: path)
        return outs
    }
}

/// The requantizing epilogue of ONNX Runtime's QLinearConv / QGemm (MlasRequantizeOutput):
/// the int32 bias is added to the accumulator, the sum scaled by the float multiplier
/// `s_x * s_w[c] / s_y` (computed in that order, as ORT does), clamped to the uint8 range
/// around the zero point; rounding half to even then gives `q - z_y`, which the epilogue
/// multiplies by `s_y` (`out_scale`): the dequantized uint8 value, in the same pass.
struct Requantization {
    let multipliers: [Float]
    let biasInt: [Int32]?
    let clamp: (Float, Float)
    let outputScale: Float
    let output: ActivationQuant

    init(inputScale: Float, weightScales: [Float], bias: [Float]?, output: ActivationQuant) {
        self.output = output
        multipliers = weightScales.map { inputScale * $0 / output.scale }
        biasInt = bias.map { quantizedBiasInt32($0, inputScale: inputScale, weightScales: weightScales) }
        clamp = (Float(0) - Float(output.zeroPoint), Float(255) - Float(output.zeroPoint))
        outputScale = output.scale
    }

}

/// The value a layer computed for the last key it ran with: what depends only on the layer and
/// something that stays the same from call to call (the output grid, the input shape) is built
/// once instead of per call. Runs of one layer can overlap (image chains), hence the lock.
/// - The requantizing epilogue per output grid (`RequantCache`): a multiplier and a
///   Double-rounded int32 bias per channel cost about 80 us per MobileNetV2 image at batch 1
///   (perf: 2-3% of the all-INT8 run; image chains call each layer once per image).
/// - A Conv's C shape and plane sizes per input shape without the batch axis (`QuantizedConv`):
///   WindowGeometry's arrays and attribute lookups were about a microsecond of each small INT8
///   Conv (benchmarks/per_node_cost.py).
final class LastValueCache<Key: Equatable, Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var last: (key: Key, value: Value)?

    func get(_ key: Key, _ make: () throws -> Value) rethrows -> Value {
        lock.lock()
        defer { lock.unlock() }
        if let last, last.key == key { return last.value }
        let v = try make()
        last = (key, v)
        return v
    }
}

typealias RequantCache = LastValueCache<ActivationQuant, Requantization>

/// Why a node cannot be prepared for INT8 (the precision map or calibration is wrong).
public enum QuantizationError: Error, CustomStringConvertible, Equatable {
    case notQuantizable(layer: String, opType: String, reason: String)
    case unknownLayer(layer: String, known: [String])
    case missingRange(layer: String, tensor: String)
    case calibrationMismatch(path: String, reason: String)

    public var description: String {
        switch self {
        case .notQuantizable(let l, let t, let r): return "layer '\(l)' (\(t)) cannot run in INT8: \(r)"
        case .unknownLayer(let l, let known):
            let hint = known.prefix(8).joined(separator: ", ") + (known.count > 8 ? ", ..." : "")
            return "the precision map names layer '\(l)', which the model does not have as a quantizable layer (quantizable layers: \(hint))"
        case .missingRange(let l, let t): return "layer '\(l)': the calibration has no range for its input '\(t)'"
        case .calibrationMismatch(let p, let r): return "calibration \(p) does not match the model: \(r)"
        }
    }
}

/// The clamp bounds of a node's fused activation, or none.
func clampBounds(_ node: Node) -> (Float, Float) {
    FusedActivation(node: node)?.bounds ?? (-.infinity, .infinity)
}

/// The kernel epilogue of an INT8 Conv/Gemm/MatMul, from channel `channel` on (a group's
/// first output channel): dequantize with the per-channel `scales`, the float `bias` and the
/// fused clamp or, with `requant`, ONNX Runtime's requantization (`multipliers`, `biasInt`).
/// The buffers must outlive the kernel call.
func layerEpilogue(input q: ActivationQuant, scales: UnsafeBufferPointer<Float>, bias: UnsafeBufferPointer<Float>?,
                   clamp: (Float, Float), requant: Requantization?, multipliers: UnsafeBufferPointer<Float>,
                   biasInt: UnsafeBufferPointer<Int32>, channel: Int = 0) -> mpq_epilogue {
    guard let r = requant else {
        return mpq_epilogue(a_zero_point: Int32(q.zeroPoint), a_scale: q.scale, b_scale: scales.baseAddress! + channel,
                            bias: bias.map { $0.baseAddress! + channel }, clamp_lo: clamp.0, clamp_hi: clamp.1,
                            bias_i32: nil, out_scale: 0)
    }
    return mpq_epilogue(a_zero_point: Int32(q.zeroPoint), a_scale: 1, b_scale: multipliers.baseAddress! + channel,
                        bias: nil, clamp_lo: r.clamp.0, clamp_hi: r.clamp.1,
                        bias_i32: r.biasInt == nil ? nil : biasInt.baseAddress! + channel, out_scale: r.outputScale)
}

/// The engine a layer's last run used (`QuantizedLayer.engine`). Runs of one layer can overlap
/// (image chains run it on both cores), hence the lock; the names are the C kernels' static
/// strings, so a note is a pointer store.
final class EngineNote: @unchecked Sendable {
    private let lock = NSLock()
    private var name: UnsafePointer<CChar>?

    /// What the calling thread's last INT8 kernel call ran (`mpq_last_engine`).
    static var current: UnsafePointer<CChar>? { mpq_last_engine() }

    func set(_ engine: UnsafePointer<CChar>?) {
        guard let engine else { return }
        lock.lock(); name = engine; lock.unlock()
    }

    var value: String? {
        lock.lock(); defer { lock.unlock() }
        return name.map { String(cString: $0) }
    }
}
