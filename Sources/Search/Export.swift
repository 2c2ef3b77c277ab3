import Foundation
import Kernels
import ONNX

/// What `mpq export` writes from a precision map (docs/export.md).
public enum ExportFormat: String, CaseIterable, Sendable {
    /// An ONNX model with QuantizeLinear/DequantizeLinear around the INT8 layers.
    case qdq
    /// JSON for ONNX Runtime's `quantize_static` (`nodes_to_exclude` = the FP32 layers).
    case ortExclude = "ort-exclude"
    /// trtexec flags pinning the FP32 layers (`--precisionConstraints=obey --layerPrecisions=...`).
    case trtexec
    /// JSON for NNCF's `IgnoredScope` (`ignored_scope.names` = the FP32 layers).
    case nncfIgnored = "nncf-ignored"
    /// The map file as it is.
    case json
}

/// Why an export cannot be written. Every case names the file or layer to look at.
public enum ExportError: Error, CustomStringConvertible, Equatable {
    case unreadableMap(path: String, reason: String)
    case modelMismatch(path: String, map: String, model: String)
    case unknownLayer(layer: String, known: [String])
    case missingQuantization(layers: [String])
    case activationMismatch(layer: String, map: String, model: String)
    case invalidQuantization(layer: String, reason: String)
    case weightScaleMismatch(layer: String, channel: Int, map: Float, model: Float)

    public var description: String {
        switch self {
        case .unreadableMap(let p, let r): return "cannot read precision map \(p): \(r)"
        case .modelMismatch(let p, let m, let d):
            return "\(p) was made for another model (model digest \(m), this model's is \(d))"
        case .unknownLayer(let l, let known):
            let hint = known.prefix(8).joined(separator: ", ") + (known.count > 8 ? ", ..." : "")
            return "the precision map names layer '\(l)', which the model does not have as a quantizable layer (quantizable layers: \(hint))"
        case .missingQuantization(let ls):
            return "the precision map has no activation scale/zero point for INT8 layer\(ls.count == 1 ? "" : "s") \(ls.map { "'\($0)'" }.joined(separator: ", ")) (a bare {\"layers\": ...} map): pass --calibration calib.json or calibration .npz data to compute them"
        case .activationMismatch(let l, let m, let d):
            return "layer '\(l)': the map quantizes tensor '\(m)', the model's layer reads '\(d)'"
        case .invalidQuantization(let l, let r): return "layer '\(l)': \(r)"
        case .weightScaleMismatch(let l, let c, let m, let d):
            return "layer '\(l)': the map's weight scale for channel \(c) is \(m), the model's weights give \(d); the map was made for other weights"
        }
    }
}

extension ExportError: LocalizedError {
    public var errorDescription: String? { description }
}

/// A precision map as export reads it: the full document `mpq search` writes (layers with
/// their quantization parameters), or a bare `{"layers": {"name": "int8"}}` /
/// `{"layers": [{"name", "precision"}]}` map, whose parameters come from calibration.
public struct ExportMap: Sendable {
    public struct Layer: Sendable, Equatable {
        public var name: String
        public var precision: Precision
        public var activation: PrecisionMapDocument.ActivationRef?
        public var activation2: PrecisionMapDocument.ActivationRef? = nil
        public var weightScales: [Float]?
    }
    /// Layers in file order (a dictionary map: name order).
    public var layers: [Layer]
    public var modelDigest: String?
    /// The scheme the map was made under (nil: the file does not say).
    public var scheme: ExecutionScheme?
    /// `ort` maps: the requantized tensors' parameters.
    public var tensors: [PrecisionMapDocument.ActivationRef]?
    /// The weight range the map was made with (nil: the file does not say, 8 bits).
    public var weightBits: WeightBits?
    /// The full document when the file is one.
    public var document: PrecisionMapDocument?
    /// The file's bytes and their SHA-256.
    public var bytes: Data
    public var sha256: String

    private struct Loose: Decodable {
        struct Entry: Decodable {
            var name: String; var precision: Precision
            var activation: PrecisionMapDocument.ActivationRef?; var activation2: PrecisionMapDocument.ActivationRef?
            var weightScales: [Float]?
        }
        struct Model: Decodable { var digest: String? }
        var layers: [Entry]
        var modelDigest: String?
        var model: Model?
        var scheme: String?
        var tensors: [PrecisionMapDocument.ActivationRef]?
        var weightBits: Int?
        enum CodingKeys: String, CodingKey { case layers, modelDigest, model, scheme, tensors, weightBits }
        init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            if let dict = try? c.decode([String: Precision].self, forKey: .layers) {
                layers = dict.keys.sorted().map { Entry(name: $0, precision: dict[$0]!) }
            } else {
                layers = try c.decode([Entry].self, forKey: .layers)
            }
            modelDigest = try c.decodeIfPresent(String.self, forKey: .modelDigest)
            model = try? c.decodeIfPresent(Model.self, forKey: .model)
            scheme = try c.decodeIfPresent(String.self, forKey: .scheme)
            tensors = try c.decodeIfPresent([PrecisionMapDocument.ActivationRef].self, forKey: .tensors)
            weightBits = try c.decodeIfPresent(Int.self, forKey: .weightBits)
        }
    }

    public init(data: Data, path: String) throws {
        bytes = data
        sha256 = SHA256.hex(data)
        document = try? PrecisionMapDocument.decode(data)
        let dec = JSONDecoder()
        dec.keyDecodingStrategy = .convertFromSnakeCase
        let loose: Loose
        do { loose = try dec.decode(Loose.self, from: data) } catch {
            throw ExportError.unreadableMap(path: path, reason: "not a precision map: \(Self.describe(error))")
        }
        var seen = Set<String>()
        for e in loose.layers where !seen.insert(e.name).inserted {
            throw ExportError.unreadableMap(path: path, reason: "layer '\(e.name)' is listed twice")
        }
        layers = loose.layers.map { Layer(name: $0.name, precision: $0.precision, activation: $0.activation,
                                          activation2: $0.activation2, weightScales: $0.weightScales) }
        modelDigest = loose.modelDigest ?? loose.model?.digest
        if let name = loose.scheme {
            guard let sch = ExecutionScheme(rawValue: name) else {
                throw ExportError.unreadableMap(path: path, reason: "unknown scheme '\(name)' (known: \(ExecutionScheme.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            scheme = sch
        }
        tensors = loose.tensors
        if let bits = loose.weightBits {
            guard let b = WeightBits(rawValue: bits) else {
                throw ExportError.unreadableMap(path: path, reason: "weight_bits \(bits) is not 8 or 7")
            }
            weightBits = b
        }
        // A search document written before schemes existed placed Q/DQ on inputs only.
        if scheme == nil && document != nil { scheme = .inputs }
    }

    /// The map's weight range, or `requested` for a map that does not say (default 8 bits); a
    /// request against the map's own is an error (its scores hold only for its weights).
    public func resolvedWeightBits(requested: WeightBits?) throws -> WeightBits {
        if let made = weightBits, let requested, made != requested {
            throw ExportError.invalidQuantization(layer: "*", reason: "the map was made with --weight-bits \(made.rawValue), --weight-bits \(requested.rawValue) was asked for; its scores hold only for \(made.rawValue)-bit weights")
        }
        return weightBits ?? requested ?? .eight
    }

    public init(path: String) throws {
        if FileKind(path: path) != .missing { try FileKind.requireRegularFile(path, expected: "a precision map (.json)") }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ExportError.unreadableMap(path: path, reason: FileManager.default.fileExists(atPath: path) ? "unreadable" : "file not found")
        }
        try self.init(data: data, path: path)
    }

    static func describe(_ error: Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let k, let ctx):
            return "missing key '\(k.stringValue)'" + (ctx.codingPath.isEmpty ? "" : " at \(ctx.codingPath.map(\.stringValue).joined(separator: "."))")
        case DecodingError.typeMismatch(_, let ctx), DecodingError.valueNotFound(_, let ctx), DecodingError.dataCorrupted(let ctx):
            return ctx.debugDescription + (ctx.codingPath.isEmpty ? "" : " at \(ctx.codingPath.map(\.stringValue).joined(separator: "."))")
        default: return "\(error)"
        }
    }
}

/// One quantizable layer of the model with the precision the map gives it.
public struct ExportLayer: Sendable, Equatable {
    public var name: String
    public var op: String
    public var precision: Precision
    /// Whether the model file names the node (the loader names unnamed nodes `<OpType>_<index>`,
    /// which other tools cannot address).
    public var namedInFile: Bool
}

/// Prepares exports of one model: the graph as loaded (its digest checks maps), the graph
/// after BatchNorm folding only (what the QDQ model is written from) and the optimized
/// session (which layers are quantizable, and the weights mpq quantizes).
public final class Exporter {
    public let modelPath: String
    public let modelData: Data
    public let graph: Graph
    public let folded: Graph
    public let session: Session
    /// Quantizable layers in execution order.
    public let quantizable: [Node]
    let fileNodeNames: Set<String>

    public init(modelPath: String) throws {
        self.modelPath = modelPath
        guard FileManager.default.fileExists(atPath: modelPath) else { throw ModelError.fileNotFound(path: modelPath) }
        guard let data = FileManager.default.contents(atPath: modelPath) else {
            throw ModelError.unreadable(path: modelPath, reason: "cannot read the file")
        }
        modelData = data
        let url = URL(fileURLWithPath: modelPath)
        graph = try ModelLoader.load(data: data, path: modelPath, baseDirectory: url.deletingLastPathComponent())
        folded = GraphPasses.foldBatchNorm(graph)
        session = try Session(graph: GraphPasses.optimize(graph))
        quantizable = MixedPrecisionRuntime.quantizableNodes(session)
        fileNodeNames = ONNXNodeNames.named(in: data)
    }

    public var digest: String { graph.digest }

    /// Every quantizable layer with the map's precision (layers the map omits run in FP32),
    /// after checking the map belongs to this model and names only its layers.
    public func layers(for map: ExportMap, path: String) throws -> [ExportLayer] {
        if let d = map.modelDigest, d != digest { throw ExportError.modelMismatch(path: path, map: d, model: digest) }
        let known = Set(quantizable.map(\.name))
        for l in map.layers where !known.contains(l.name) {
            throw ExportError.unknownLayer(layer: l.name, known: quantizable.map(\.name))
        }
        let precision = Dictionary(uniqueKeysWithValues: map.layers.map { ($0.name, $0.precision) })
        return quantizable.map {
            ExportLayer(name: $0.name, op: $0.opType, precision: precision[$0.name] ?? .fp32,
                        namedInFile: fileNodeNames.contains($0.name))
        }
    }

    /// The QDQ model (docs/export.md). Activation parameters come from the map, or from
    /// `calibration` for layers the map gives none; weight scales are recomputed from the
    /// weights and must equal the map's.
    public func qdq(map: ExportMap, path: String, calibration: CalibrationTable?, version: String,
                    scheme requested: ExecutionScheme? = nil, weightType: QDQWeightType = .int8,
                    weightBits requestedBits: WeightBits? = nil) throws -> Data {
        try qdqModel(map: map, path: path, calibration: calibration, version: version, scheme: requested,
                     weightType: weightType, weightBits: requestedBits).data
    }

    /// `qdq` with the INT8 layers as written (their input rewrites for ONNX Runtime included).
    func qdqModel(map: ExportMap, path: String, calibration: CalibrationTable?, version: String,
                  scheme requested: ExecutionScheme?, weightType: QDQWeightType,
                  weightBits requestedBits: WeightBits?) throws -> (data: Data, layers: [QDQLayer]) {
        let layers = try self.layers(for: map, path: path)
        let entries = Dictionary(uniqueKeysWithValues: map.layers.map { ($0.name, $0) })
        let int8 = layers.filter { $0.precision == .int8 }
        let scheme = requested ?? map.scheme ?? .inputs
        if let made = map.scheme, made != scheme {
            throw ExportError.invalidQuantization(layer: "*", reason: "the map was made under --scheme \(made.rawValue), the export asks for \(scheme.rawValue); its scores hold only for \(made.rawValue)")
        }
        let bits = try map.resolvedWeightBits(requested: requestedBits)
        let sources = scheme == .ort ? QuantPlan.sources(session) : [:]
        let mapTensors = Dictionary((map.tensors ?? []).map { ($0.tensor, $0) }, uniquingKeysWith: { a, _ in a })
        /// A tensor's parameters: the map's, else its (source's) calibrated range.
        func quant(_ t: String) -> ActivationQuant? {
            if let a = mapTensors[t], (0...255).contains(a.zeroPoint) { return ActivationQuant(scale: a.scale, zeroPoint: UInt8(a.zeroPoint)) }
            return calibration?.requantizable(sources[t] ?? t)
        }
        let missing = int8.filter { entries[$0.name]?.activation == nil && calibration?.ranges[sources[input0($0.name)] ?? input0($0.name)] == nil }
        if !missing.isEmpty { throw ExportError.missingQuantization(layers: missing.map(\.name)) }
        if scheme == .ort && !int8.isEmpty && map.tensors == nil && calibration == nil {
            throw ExportError.missingQuantization(layers: int8.map(\.name))
        }
        let specsUnpadded = try int8.map { l -> QDQLayer in
            let node = quantizable.first { $0.name == l.name }!
            let x = node.input(0) ?? ""
            let q: ActivationQuant
            if let a = entries[l.name]?.activation {
                guard a.tensor == x else { throw ExportError.activationMismatch(layer: l.name, map: a.tensor, model: x) }
                guard (0...255).contains(a.zeroPoint), a.scale > 0, a.scale.isFinite else {
                    throw ExportError.invalidQuantization(layer: l.name, reason: "activation scale \(a.scale) / zero point \(a.zeroPoint) is not a valid uint8 quantization")
                }
                q = ActivationQuant(scale: a.scale, zeroPoint: UInt8(a.zeroPoint))
            } else {
                q = calibration!.quant(for: sources[x] ?? x)!
            }
            if let w = node.input(1), session.constants[w] == nil {
                // Activation x activation MatMul: both inputs quantized per tensor, no weight.
                let q2: ActivationQuant
                if let a = entries[l.name]?.activation2 {
                    guard a.tensor == w else { throw ExportError.activationMismatch(layer: l.name, map: a.tensor, model: w) }
                    q2 = ActivationQuant(scale: a.scale, zeroPoint: UInt8(clamping: a.zeroPoint))
                } else if let c = calibration?.quant(for: sources[w] ?? w) {
                    q2 = c
                } else {
                    throw ExportError.missingQuantization(layers: [l.name])
                }
                return QDQLayer(node: node.name, activation: x, activationScale: q.scale, activationZeroPoint: q.zeroPoint,
                                weightValues: [], weightShape: [], weightScales: [], weightAxis: 0, biasValues: nil, biasScales: nil,
                                secondActivation: w, secondScale: q2.scale, secondZeroPoint: q2.zeroPoint)
            }
            return try Self.spec(node: node, constants: session.constants, inputQuant: q, mapScales: entries[l.name]?.weightScales,
                                 weightBits: bits)
        }
        var specs = specsUnpadded
        var requantized: [QDQTensor] = []
        if scheme == .ort {
            // Both rewrites buy ORT's symmetric direct kernel, which takes int8 weights only.
            if weightType == .int8 {
                let nodeOf = Dictionary(quantizable.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
                for i in specs.indices { specs[i].inputChannelPad = Self.ortInputChannelPad(nodeOf[specs[i].node]!, specs[i]) }
                // Stems learn their input size from one run of the model, made only when one qualifies.
                let stems = specs.indices.filter { Self.ortSpaceToDepthCandidate(nodeOf[specs[$0].node]!, specs[$0]) }
                let sizes = stems.isEmpty ? [:] : convInputSizes(Set(stems.map { specs[$0].node }))
                for i in stems {
                    guard let size = sizes[specs[i].node] else { continue }
                    specs[i].spaceToDepth = Self.ortSpaceToDepth(nodeOf[specs[i].node]!, specs[i], inputSize: size)
                }
            }
            // The runtime's plan, from the same parameters: Q/DQ exactly where it requantized.
            let plan = QuantPlan(session: session, int8Layers: Set(int8.map(\.name))) { t in
                // `QuantPlan` asks for sources; the map records tensors by their own name.
                quant(t)
            }
            let fromMap = map.tensors.map { Set($0.map(\.tensor)) }
            if let fromMap, let t = plan.requantized.keys.sorted().first(where: { !fromMap.contains($0) && !fromMap.contains(sources[$0] ?? $0) }),
               calibration == nil {
                throw ExportError.invalidQuantization(layer: t, reason: "the map has no parameters for requantized tensor '\(t)'")
            }
            requantized = plan.requantized.keys.sorted().map { t in
                let q = mapTensors[t].map { ActivationQuant(scale: $0.scale, zeroPoint: UInt8(clamping: $0.zeroPoint)) } ?? plan.requantized[t]!
                return QDQTensor(tensor: t, scale: q.scale, zeroPoint: q.zeroPoint)
            }
        }
        var meta: [(key: String, value: String)] = [("mpq.version", version), ("mpq.map_sha256", map.sha256),
                                                     ("mpq.scheme", scheme.rawValue), ("mpq.weight_type", weightType.rawValue),
                                                     ("mpq.weight_bits", String(bits.rawValue))]
        if let d = map.document { meta.append(("mpq.metric", d.metric)) }
        let data = try QDQWriter.write(modelData: modelData, baseDirectory: URL(fileURLWithPath: modelPath).deletingLastPathComponent(),
                                       graph: folded, layers: specs, requantized: requantized, weightType: weightType,
                                       metadata: meta)
        return (data, specs)
    }

    /// Zero input channels the `ort` export appends to an INT8 Conv (`QDQLayer.inputChannelPad`).
    /// ONNX Runtime's x86 QLinearConv runs its direct kernel (`MlasConvSymPackWSize`,
    /// onnxruntime/core/mlas/lib/convsym.cpp) only for group 1 with a multiple of 4 input
    /// channels and at least 16 output channels, a multiple of 8 (AVX2; 4 on AVX-512);
    /// otherwise it takes an im2col + GEMM path. For a 3-channel image stem that path is the
    /// slowest layer of a detector (measured, onnxruntime 1.32, AVX-512 VNNI: padding 3 -> 4
    /// channels runs a 3x3 stem 0.57-0.78x as long), while for 7x7 kernels the padded direct
    /// kernel is slower (1.07x at Cin 3, 1.8x at Cin 1): padded only up to 3x3 kernels.
    /// The integer sums are unchanged (zero weights), so the export still equals the runtime.
    static func ortInputChannelPad(_ node: Node, _ spec: QDQLayer) -> Int {
        let w = spec.weightShape
        guard node.opType == "Conv", node.int("group", default: 1) == 1, w.count == 4, spec.secondActivation == nil,
              w[1] % 4 != 0, w[0] >= 16, w[0] % 8 == 0, w[2] * w[3] <= 9 else { return 0 }
        return (w[1] + 3) / 4 * 4 - w[1]
    }

    /// Whether the `ort` export writes an INT8 Conv as a stride-1 Conv over 2x2 space-to-depth
    /// blocks (`QDQSpaceToDepth`), its input's spatial size aside: a stride-2, group-1 2-D Conv
    /// without dilation, with 1 or 2 input channels (which ORT's direct kernel refuses) and a
    /// kernel too large for channel padding to pay (over 3x3: the padded direct kernel ran
    /// 1.07-1.8x slower than ORT's im2col path there). Blocks of 2x2 make 4 or 8 channels,
    /// which the direct kernel takes. Measured on single QDQ Convs in ORT 1.32
    /// (benchmarks/stem_space_to_depth_ort.py, benchmarks/README.md "s39"): 1- and 2-channel
    /// 5x5 and 7x7 stems ran 0.47-0.81x as long on one and two threads at batch 1 and 16;
    /// 3-channel ones ran 0.58-0.85x except on two threads at batch 16 (1.04-1.18x: ORT's
    /// uint8 Transpose to NHWC of the 12 block channels runs several times slower on two
    /// threads than on one), so they keep ORT's im2col path.
    static func ortSpaceToDepthCandidate(_ node: Node, _ spec: QDQLayer) -> Bool {
        let w = spec.weightShape
        return node.opType == "Conv" && node.int("group", default: 1) == 1 && w.count == 4 && spec.secondActivation == nil
            && spec.inputChannelPad == 0 && w[1] <= 2 && w[0] >= 16 && w[0] % 8 == 0 && w[2] * w[3] > 9
            && node.ints("strides") == [2, 2] && (node.ints("dilations") ?? [1, 1]) == [1, 1]
            && ["NOTSET", ""].contains(node.string("auto_pad", default: "NOTSET"))
    }

    /// The padding of a space-to-depth stem whose input is `inputSize` ([H, W]): the Conv's own
    /// pads before, and after whatever makes the padded size 2 x (outputs + blocks - 1), so
    /// the stride-1 Conv over the blocks writes exactly the stride-2 Conv's outputs (the rows
    /// added past the Conv's own padding meet only zero weights). Nil when that would crop.
    static func ortSpaceToDepth(_ node: Node, _ spec: QDQLayer, inputSize: [Int]) -> QDQSpaceToDepth? {
        guard ortSpaceToDepthCandidate(node, spec), inputSize.count == 2 else { return nil }
        let pads = node.ints("pads") ?? [0, 0, 0, 0]
        guard pads.count == 4 else { return nil }
        var ends: [Int] = []
        for d in 0..<2 {
            let (size, k, before) = (inputSize[d], spec.weightShape[2 + d], pads[d])
            let outputs = (size + before + pads[d + 2] - k) / 2 + 1
            let blocks = (k + 1) / 2
            let end = 2 * (outputs + blocks - 1) - size - before
            guard outputs >= 1, end >= 0 else { return nil }
            ends.append(end)
        }
        return QDQSpaceToDepth(pads: [pads[0], pads[1], ends[0], ends[1]])
    }

    /// The spatial size ([H, W]) of each named Conv's input, from one batch-1 run on zeros.
    /// Empty when a graph input has a symbolic dimension past the first (the sizes would depend
    /// on the data, and the space-to-depth padding is written as constants) or the run fails.
    func convInputSizes(_ names: Set<String>) -> [String: [Int]] {
        var feeds: [String: Tensor] = [:]
        for input in session.graph.inputs where session.constants[input.name] == nil {
            guard let dims = input.shape else { return [:] }
            var shape: [Int] = []
            for (i, d) in dims.enumerated() {
                if let d { shape.append(d) } else if i == 0 { shape.append(1) } else { return [:] }
            }
            let dtype = input.dtype ?? .float32
            feeds[input.name] = Tensor.zeros(shape, dtype: dtype.isFloating ? .float32 : dtype)
        }
        var sizes: [String: [Int]] = [:]
        _ = try? session.run(feeds) { node, inputs, _ in
            if names.contains(node.name), let x = inputs.first ?? nil, x.rank == 4 { sizes[node.name] = Array(x.shape.suffix(2)) }
        }
        return sizes
    }

    func input0(_ layer: String) -> String { quantizable.first { $0.name == layer }?.input(0) ?? "" }

    /// The QDQ numbers of one INT8 layer: the layer is prepared exactly as the runtime
    /// prepares it (`Int8Ops`) and writes its own numbers (`QuantizedLayer.qdq`): per-channel
    /// int8 weights, the int32 bias at s_x * s_w[c], Gemm's alpha in the bias scale and beta
    /// in the bias values. The map's weight scales, when it records them, must be these.
    static func spec(node: Node, constants: [String: Tensor], inputQuant q: ActivationQuant, mapScales: [Float]?,
                     weightBits: WeightBits = .eight) throws -> QDQLayer {
        guard let family = Int8Ops.family(for: node, constants: constants), family != ActivationMatMulFamily.self else {
            throw ExportError.invalidQuantization(layer: node.name, reason: "\(node.opType) has no INT8 export with a constant weight")
        }
        let spec: QDQLayer
        do { spec = try family.prepare(node, constants: constants, inputs: [q], weightBits: weightBits).qdq() } catch let e as QuantizationError {
            throw ExportError.invalidQuantization(layer: node.name, reason: e.description)
        }
        if let mapScales {
            guard mapScales.count == spec.weightScales.count else {
                throw ExportError.invalidQuantization(layer: node.name, reason: "the map has \(mapScales.count) weight scales, the weight has \(spec.weightScales.count) output channels")
            }
            if let c = spec.weightScales.indices.first(where: { mapScales[$0] != spec.weightScales[$0] }) {
                throw ExportError.weightScaleMismatch(layer: node.name, channel: c, map: mapScales[c], model: spec.weightScales[c])
            }
        }
        return spec
    }
}
