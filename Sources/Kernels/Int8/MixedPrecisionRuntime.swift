import ONNX

/// Runs a session with any per-layer mix of INT8 and FP32. Every quantizable layer is
/// prepared once (weights quantized and packed, bias quantized); switching a map only
/// swaps which nodes the session routes to their INT8 kernels, so a search can try
/// hundreds of maps without re-preparing anything.
public final class MixedPrecisionRuntime {
    public let session: Session
    public let calibration: CalibrationTable
    public var path: KernelPath
    /// Prepared INT8 layers by node name, in execution order in `layerNames`.
    public let layers: [String: QuantizedLayer]
    public let layerNames: [String]
    public private(set) var map: PrecisionMap

    /// Nodes of the session that can run in INT8, in execution order.
    public static func quantizableNodes(_ session: Session) -> [Node] {
        session.plan.filter { Layers.isQuantizable($0, constants: session.constants) }
    }

    public init(session: Session, calibration: CalibrationTable, path: KernelPath = .auto) throws {
        self.session = session
        self.calibration = calibration
        self.path = path
        var layers: [String: QuantizedLayer] = [:]
        var names: [String] = []
        for node in Self.quantizableNodes(session) {
            if Layers.isActivationMatMul(node, constants: session.constants) {
                let (a, b) = (node.input(0)!, node.input(1)!)
                guard let qa = calibration.quant(for: a) else { throw QuantizationError.missingRange(layer: node.name, tensor: a) }
                guard let qb = calibration.quant(for: b) else { throw QuantizationError.missingRange(layer: node.name, tensor: b) }
                layers[node.name] = QuantizedActivationMatMul(node: node, inputQuant: qa, rightQuant: qb)
                names.append(node.name)
                continue
            }
            guard let x = node.input(0), let w = node.input(1).flatMap({ session.constants[$0] }) else { continue }
            guard let q = calibration.quant(for: x) else { throw QuantizationError.missingRange(layer: node.name, tensor: x) }
            let b = node.input(2).flatMap { session.constants[$0] }
            switch node.opType {
            case "Conv": layers[node.name] = try QuantizedConv(node: node, weight: w, bias: b, inputQuant: q)
            case "ConvTranspose": layers[node.name] = try QuantizedConvTranspose(node: node, weight: w, bias: b, inputQuant: q)
            case "Gemm", "MatMul": layers[node.name] = try QuantizedLinear(node: node, weight: w, bias: b, inputQuant: q)
            default: continue
            }
            names.append(node.name)
        }
        self.layers = layers
        self.layerNames = names
        self.map = PrecisionMap(layers: [:])
    }

    /// Routes the map's INT8 layers to their kernels; everything else runs in FP32.
    public func apply(_ map: PrecisionMap) throws {
        for (name, _) in map.layers where layers[name] == nil {
            throw QuantizationError.unknownLayer(layer: name, known: layerNames)
        }
        session.overrides = [:]
        for name in map.int8Layers {
            let layer = layers[name]!
            session.overrides[name] = { [unowned self] inputs in try layer.run(inputs, path: self.path) }
        }
        self.map = map
    }

    public var allInt8: PrecisionMap { PrecisionMap.uniform(.int8, layers: layerNames) }
    public var allFP32: PrecisionMap { PrecisionMap.uniform(.fp32, layers: layerNames) }
}
