import ONNX

/// Where Q/DQ go around the INT8 layers of a precision map (docs/quantization.md, "Schemes").
///
/// - `inputs`: each INT8 layer quantizes its activation input(s) and writes a float output.
///   Q/DQ sit on layer inputs only: TensorRT's recommended placement and the most accurate,
///   but ONNX Runtime then keeps every Conv in float (it fuses DQ -> Conv -> Q only).
/// - `ort`: INT8 regions are chains of uint8 tensors as ONNX Runtime runs them: an INT8
///   layer's output is requantized whenever a consumer runs in INT8, and the ops ORT executes
///   in QDQ form (Add, Mul, Concat, pooling, Sigmoid, data movement) run in INT8 between INT8
///   layers. The export then fuses into QLinearConv / QLinearMatMul / QLinearAdd / ...
public enum ExecutionScheme: String, Codable, Sendable, CaseIterable {
    case ort, inputs
}

/// How an op behaves inside an INT8 region of the `ort` scheme (ONNX Runtime's QDQ
/// selectors, onnxruntime/core/optimizer/qdq_transformer/selectors_actions/).
public enum RegionOpKind: Sendable, Equatable {
    /// Moves or selects values without changing them: the output shares input 0's scale
    /// and zero point, and ORT drops the DQ/Q pair around it (Reshape, Transpose, MaxPool...).
    case sharesInputScale
    /// Computes new values: the output has its own calibrated scale (QLinearAdd, QLinearConcat...).
    case ownScale

    /// Region ops by ONNX op type. Only input 0 (data movement) or all float inputs
    /// (arithmetic) are activations; shape/axes inputs are constants.
    public static func of(_ node: Node) -> RegionOpKind? {
        switch node.opType {
        case "MaxPool", "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Flatten", "Identity", "Slice", "Gather":
            // Slice and Gather: ORT 1.32 drops their DQ/Q pair (Gather by `DropQDQNodesRules`,
            // Slice likewise, measured with tools/goldens/qlinear_goldens.py) and runs them on
            // uint8. Pad keeps its DQ -> Pad -> Q in float, so it is no region op.
            // MaxPool's optional second output (indices) rules it out.
            if node.opType == "MaxPool" && node.outputs.count > 1 && !node.outputs[1].isEmpty { return nil }
            return .sharesInputScale
        case "Split":
            // Several outputs, each on its input's grid: ORT's `SplitQDQRules` (SplitSelector
            // with req_equal_quant_params) turns DQ -> Split -> Q per output into a uint8
            // Split when every output has its own Q with the input's scale and zero point.
            return .sharesInputScale
        case "Resize", "Upsample":
            // Nearest-neighbour resizing only selects values; linear modes interpolate.
            let mode = node.string("mode", default: "nearest")
            return mode == "nearest" ? .sharesInputScale : nil
        case "Add", "Mul", "Concat", "Sigmoid", "AveragePool", "GlobalAveragePool", "LeakyRelu", "Relu",
             "HardSigmoid", "HardSwish":
            return .ownScale
        default:
            return nil
        }
    }

    /// The activation inputs of a region op (the ones carrying uint8 in the region).
    public static func activationInputs(_ node: Node, constants: [String: Tensor]) -> [String] {
        guard let kind = of(node) else { return [] }
        switch kind {
        case .sharesInputScale: return node.input(0).map { [$0] } ?? []
        case .ownScale: return node.inputs.filter { !$0.isEmpty }
        }
    }
}
