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
}

extension QuantizedLayer {
    public var secondInputQuant: ActivationQuant? { nil }
}

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
