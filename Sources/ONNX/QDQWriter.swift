import Foundation
import SwiftProtobuf

/// One INT8 layer as the QDQ export writes it, with every number already computed by the
/// caller (the ONNX module cannot import the kernels that define the scheme): the layer's
/// input activation gets QuantizeLinear/DequantizeLinear (uint8, per tensor), its weight
/// becomes an int8 initializer with a per-channel DequantizeLinear, its bias an int32
/// initializer at scale s_x * s_w with a DequantizeLinear on axis 0.
public struct QDQLayer: Sendable, Equatable {
    /// Node name (the precision map's layer name).
    public var node: String
    /// The activation tensor the layer reads (input 0) and its quantization.
    public var activation: String
    public var activationScale: Float
    public var activationZeroPoint: UInt8
    /// Quantized weight in the layout of the node's input 1, per-channel scales along `weightAxis`.
    public var weightValues: [Int8]
    public var weightShape: [Int]
    public var weightScales: [Float]
    public var weightAxis: Int
    /// Int32 bias, one value per output channel, and its scales (s_x * s_w[c]); nil without bias.
    public var biasValues: [Int32]?
    public var biasScales: [Float]?
    /// Attributes set on the node (Gemm: `beta = 1` once beta is folded into the int32 bias).
    public var attributes: [String: Attribute]
    /// Input 1 when it is an activation too (activation x activation MatMul): quantized per
    /// tensor like input 0, and the layer has no weight (empty `weightValues`).
    public var secondActivation: String?
    public var secondScale: Float
    public var secondZeroPoint: UInt8
    /// Zero input channels to append (a 2-D Conv with group 1 only): the uint8 input gets a
    /// `Pad` with its zero point and the weight zero columns, so every integer sum is the
    /// same, while ONNX Runtime's x86 QLinearConv can take its direct (`MlasConvSym`) path,
    /// which needs a multiple of 4 input channels (docs/export.md, "Channel padding").
    public var inputChannelPad: Int = 0
    /// A stride-2 Conv written as a stride-1 Conv over 2x2 space-to-depth blocks of its
    /// padded uint8 input (docs/export.md, "Space-to-depth stems"); nil for every other layer.
    public var spaceToDepth: QDQSpaceToDepth? = nil

    public init(node: String, activation: String, activationScale: Float, activationZeroPoint: UInt8,
                weightValues: [Int8], weightShape: [Int], weightScales: [Float], weightAxis: Int,
                biasValues: [Int32]?, biasScales: [Float]?, attributes: [String: Attribute] = [:],
                secondActivation: String? = nil, secondScale: Float = 1, secondZeroPoint: UInt8 = 0) {
        self.secondActivation = secondActivation; self.secondScale = secondScale; self.secondZeroPoint = secondZeroPoint
        self.node = node; self.activation = activation
        self.activationScale = activationScale; self.activationZeroPoint = activationZeroPoint
        self.weightValues = weightValues; self.weightShape = weightShape; self.weightScales = weightScales
        self.weightAxis = weightAxis; self.biasValues = biasValues; self.biasScales = biasScales
        self.attributes = attributes
    }
}

/// A stride-2 2-D Conv rewritten for ONNX Runtime's direct QLinearConv kernel: its uint8
/// input padded with the zero point by `pads` ([top, left, bottom, right], the Conv's own
/// padding plus what makes the blocks come out even), then `SpaceToDepth(blocksize 2)`,
/// read by a stride-1, unpadded Conv with 4 x Cin channels and ceil(k / 2) taps per axis
/// (`QDQWriter.spaceToDepthWeight`). Every output sums the same products as the stride-2
/// Conv plus products with zero weights, so the integers are unchanged.
public struct QDQSpaceToDepth: Sendable, Equatable {
    public var pads: [Int]
    public init(pads: [Int]) { self.pads = pads }
}

/// How the export stores INT8 weights. The integer sums are the same either way
/// (uint8 code = int8 code + 128 with zero point 128); what differs is the kernel ONNX
/// Runtime picks. On CPUs without VNNI/AMX (AVX2 only) MLAS multiplies u8 x s8 with
/// vpmaddubsw, whose pair sums saturate in int16, so ORT's scores of an int8-weight export
/// drift from the exact arithmetic mpq predicts; for u8 x u8 it widens to int16 and uses
/// vpmaddwd, exact but slower (docs/export.md, "Weight type").
public enum QDQWeightType: String, Sendable, CaseIterable {
    /// int8, zero point 0: ORT's default, fastest; exact in ORT on VNNI/AMX CPUs.
    case int8
    /// uint8, zero point 128: exact in ORT on every CPU.
    case uint8
}

/// A tensor requantized right after the node producing it (the `ort` scheme): a
/// QuantizeLinear/DequantizeLinear pair that every consumer reads, which is what lets
/// ONNX Runtime fuse the producer into its QLinear form.
public struct QDQTensor: Sendable, Equatable {
    public var tensor: String
    public var scale: Float
    public var zeroPoint: UInt8
    public init(tensor: String, scale: Float, zeroPoint: UInt8) {
        self.tensor = tensor; self.scale = scale; self.zeroPoint = zeroPoint
    }
}

/// Why a QDQ model cannot be written.
public enum QDQExportError: Error, CustomStringConvertible, Equatable {
    case unknownNode(String)
    case opsetTooOld(opset: Int, ops: [String])
    case inconsistent(layer: String, reason: String)

    public var description: String {
        switch self {
        case .unknownNode(let n): return "the graph has no node '\(n)'"
        case .opsetTooOld(let o, let ops):
            return "per-channel DequantizeLinear needs opset 13, the model imports opset \(o) and mpq cannot rewrite it to 13: \(ops.joined(separator: ", ")); convert it first, e.g. onnx.version_converter.convert_version(model, 13)"
        case .inconsistent(let l, let r): return "layer '\(l)': \(r)"
        }
    }
}

/// Writes a QDQ ONNX model by editing the original ModelProto: everything the export does
/// not touch (node and graph doc strings, attribute encodings, value_info, metadata,
/// functions, sparse initializers) is copied from the file. The node list is mpq's graph
/// after `GraphPasses.foldBatchNorm` (never the activation fusion: Relu/Clip stay nodes),
/// so the weights are exactly those mpq quantizes; nodes keep the stable names the
/// loader gives them, which is what precision maps name.
public enum QDQWriter {
    /// Serialized QDQ model. `modelData` is the original file (its proto is edited),
    /// `graph` is `GraphPasses.foldBatchNorm(ModelLoader.load(modelData))`, `metadata`
    /// is added to (or replaces keys of) the model's metadata_props.
    public static func write(modelData: Data, baseDirectory: URL?, graph: Graph, layers: [QDQLayer],
                             requantized: [QDQTensor] = [], weightType: QDQWeightType = .int8,
                             metadata: [(key: String, value: String)]) throws -> Data {
        let original: Onnx_ModelProto
        do { original = try Onnx_ModelProto(serializedBytes: modelData) } catch {
            throw ModelError.corruptModel(path: "<model>", reason: "protobuf decoding failed (\(error))")
        }
        var model = original
        var g = original.graph

        let names = ONNXWriter.stableNames(g)
        var originalNodes: [String: Onnx_NodeProto] = [:]
        for (name, n) in zip(names, g.node) { originalNodes[name] = n }
        var originalInits: [String: Onnx_TensorProto] = [:]
        for t in g.initializer { originalInits[t.name] = t }

        // Every name in use, so the names added never collide.
        var taken = Set<String>(graph.initializers.keys)
        taken.formUnion(graph.inputs.map(\.name)); taken.formUnion(graph.outputs.map(\.name))
        for n in graph.nodes { taken.insert(n.name); taken.formUnion(n.outputs) }
        for n in g.node { taken.insert(n.name); taken.formUnion(n.output) }
        taken.formUnion(g.initializer.map(\.name))
        func fresh(_ base: String) -> String {
            var name = base, i = 1
            while taken.contains(name) { name = "\(base)_\(i)"; i += 1 }
            taken.insert(name)
            return name
        }

        let byNode = Dictionary(layers.map { ($0.node, $0) }, uniquingKeysWith: { a, _ in a })
        for l in layers where graph.node(named: l.node) == nil { throw QDQExportError.unknownNode(l.node) }

        var newInits: [Onnx_TensorProto] = []
        var nodes: [Onnx_NodeProto] = []
        var activationDQ: [String: String] = [:]      // tensor -> DequantizeLinear output
        var activationParams: [String: (Float, UInt8)] = [:]
        var weightDQ: [String: String] = [:]          // "weight|axis" -> DequantizeLinear output
        var replaced = Set<String>()                  // float weights/biases the int8 layers no longer read

        func dq(_ name: String, inputs: [String], output: String, axis: Int?) -> Onnx_NodeProto {
            var p = Onnx_NodeProto()
            p.name = name; p.opType = "DequantizeLinear"; p.input = inputs; p.output = [output]
            if let axis, let a = ONNXWriter.attributeProto(.int(axis), name: "axis") { p.attribute = [a] }
            return p
        }

        let outputNames = Set(graph.outputs.map(\.name))
        let requant = Dictionary(requantized.map { ($0.tensor, $0) }, uniquingKeysWith: { a, _ in a })
        for t in requantized where outputNames.contains(t.tensor) {
            throw QDQExportError.inconsistent(layer: t.tensor, reason: "a graph output cannot be requantized")
        }
        var activationQ: [String: (codes: String, scale: String, zp: String)] = [:]   // tensor -> its QuantizeLinear
        /// Appends a Q -> DQ pair after `x` and returns the DQ output.
        func appendQDQ(_ x: String, _ scaleValue: Float, _ zpValue: UInt8) -> String {
            let scale = fresh("\(x)_scale"), zp = fresh("\(x)_zero_point")
            newInits.append(ONNXWriter.floatProto([scaleValue], shape: [], name: scale))
            newInits.append(ONNXWriter.uint8Proto([zpValue], shape: [], name: zp))
            let qOut = fresh("\(x)_QuantizeLinear_Output"), dqOut = fresh("\(x)_DequantizeLinear_Output")
            var q = Onnx_NodeProto()
            q.name = fresh("\(x)_QuantizeLinear"); q.opType = "QuantizeLinear"
            q.input = [x, scale, zp]; q.output = [qOut]
            nodes.append(q)
            nodes.append(dq(fresh("\(x)_DequantizeLinear"), inputs: [qOut, scale, zp], output: dqOut, axis: nil))
            activationDQ[x] = dqOut
            activationParams[x] = (scaleValue, zpValue)
            activationQ[x] = (qOut, scale, zp)
            return dqOut
        }
        /// `x`'s uint8 codes padded by `padValues` (ONNX Pad order) with its zero point: the
        /// Pad's output, with the scale and zero point that dequantize it.
        func zeroPointPadded(_ x: String, _ padValues: [Int64], pads: String, output: String, node: String)
            -> (codes: String, scale: String, zp: String) {
            let (codes, scale, zp) = activationQ[x]!
            let padsName = fresh(pads)
            newInits.append(ONNXWriter.int64Proto(padValues, shape: [padValues.count], name: padsName))
            let padded = fresh(output)
            var p = Onnx_NodeProto()
            p.name = fresh(node); p.opType = "Pad"; p.input = [codes, padsName, zp]; p.output = [padded]
            nodes.append(p)
            return (padded, scale, zp)
        }
        /// `x`'s uint8 codes with `extra` channels of its zero point appended (axis 1 of NCHW),
        /// dequantized: what a channel-padded Conv reads (`QDQLayer.inputChannelPad`).
        var paddedDQ: [String: String] = [:]
        func channelPadded(_ x: String, extra: Int, rank: Int) -> String {
            let key = "\(x)|\(extra)"
            if let out = paddedDQ[key] { return out }
            var padValues = [Int64](repeating: 0, count: 2 * rank)
            padValues[rank + 1] = Int64(extra)            // end of axis 1
            let (padded, scale, zp) = zeroPointPadded(x, padValues, pads: "\(x)_channel_pads",
                                                      output: "\(x)_QuantizeLinear_ChannelPadded", node: "\(x)_ChannelPad")
            let out = fresh("\(x)_ChannelPadded_DequantizeLinear_Output")
            nodes.append(dq(fresh("\(x)_ChannelPadded_DequantizeLinear"), inputs: [padded, scale, zp], output: out, axis: nil))
            paddedDQ[key] = out
            return out
        }
        /// `x`'s uint8 codes padded with its zero point and moved into 2x2 space-to-depth
        /// blocks, dequantized: what a space-to-depth stem reads (`QDQLayer.spaceToDepth`).
        func spaceToDepthDQ(_ x: String, _ s: QDQSpaceToDepth) -> String {
            let key = "\(x)|s2d|\(s.pads)"
            if let out = paddedDQ[key] { return out }
            let padValues = [0, 0, s.pads[0], s.pads[1], 0, 0, s.pads[2], s.pads[3]].map(Int64.init)
            let (padded, scale, zp) = zeroPointPadded(x, padValues, pads: "\(x)_space_to_depth_pads",
                                                      output: "\(x)_QuantizeLinear_BlockPadded", node: "\(x)_BlockPad")
            let blocks = fresh("\(x)_QuantizeLinear_SpaceToDepth")
            var b = Onnx_NodeProto()
            b.name = fresh("\(x)_SpaceToDepth"); b.opType = "SpaceToDepth"; b.input = [padded]; b.output = [blocks]
            if let a = ONNXWriter.attributeProto(.int(2), name: "blocksize") { b.attribute = [a] }
            nodes.append(b)
            let out = fresh("\(x)_SpaceToDepth_DequantizeLinear_Output")
            nodes.append(dq(fresh("\(x)_SpaceToDepth_DequantizeLinear"), inputs: [blocks, scale, zp], output: out, axis: nil))
            paddedDQ[key] = out
            return out
        }
        /// Every consumer of a requantized tensor reads its DequantizeLinear output.
        func rewired(_ n: Node) -> Node {
            var n = n
            n.inputs = n.inputs.map { x in requant[x] != nil ? (activationDQ[x] ?? x) : x }
            return n
        }
        /// After the node producing a requantized tensor: its Q -> DQ pair.
        func appendRequantized(_ n: Node) {
            for o in n.outputs { if let t = requant[o] { _ = appendQDQ(o, t.scale, t.zeroPoint) } }
        }

        /// An FP32 Conv/ConvTranspose/Gemm must not read a DequantizeLinear output directly:
        /// ONNX Runtime's `WeightBiasQuantization` (onnxruntime/core/optimizer/qdq_transformer/
        /// weight_bias_quantization.cc, on by default) then quantizes its float weight per
        /// tensor and fuses the layer into QLinearConv/QGemm, so the map's FP32 island would
        /// run in INT8 with weights mpq never modelled. `Max(x, -FLT_MAX)` is x for every
        /// finite value (a DequantizeLinear output always is), is not an op ORT eliminates
        /// or moves Q/DQ across, and keeps the layer float (one cheap elementwise pass per
        /// island input). -FLT_MAX rather than -inf: weights must be finite (ModelLoader).
        var floatGuards: [String: String] = [:]       // DequantizeLinear output -> guarded copy
        var lowestFloat: String?
        func keptFloat(_ dqOut: String) -> String {
            if let g = floatGuards[dqOut] { return g }
            let bound = lowestFloat ?? fresh("mpq_fp32_island_lowest_float")
            if lowestFloat == nil {
                newInits.append(ONNXWriter.floatProto([-Float.greatestFiniteMagnitude], shape: [], name: bound))
                lowestFloat = bound
            }
            let out = fresh("\(dqOut)_KeepFloat")
            var p = Onnx_NodeProto()
            p.name = fresh("\(dqOut)_KeepFloat"); p.opType = "Max"; p.input = [dqOut, bound]; p.output = [out]
            nodes.append(p)
            floatGuards[dqOut] = out
            return out
        }
        let weightQuantizedByORT: Set<String> = ["Conv", "ConvTranspose", "Gemm"]

        for original in graph.nodes {
            guard let l = byNode[original.name] else {
                var n = rewired(original)
                if weightQuantizedByORT.contains(original.opType), let x = original.input(0), requant[x] != nil,
                   let dqOut = activationDQ[x] {
                    n.inputs[0] = keptFloat(dqOut)
                }
                nodes.append(try proto(n, originalNodes))
                appendRequantized(original)
                continue
            }
            guard original.input(0) == l.activation else {
                throw QDQExportError.inconsistent(layer: l.node, reason: "the map quantizes '\(l.activation)', the node reads '\(original.input(0) ?? "")'")
            }
            var node = rewired(original)
            node.inputs[0] = original.inputs[0]
            if l.secondActivation != nil, original.inputs.count > 1 { node.inputs[1] = original.inputs[1] }
            guard let wName = node.input(1) else {
                throw QDQExportError.inconsistent(layer: l.node, reason: "the node has no weight input")
            }
            // Activations: one QuantizeLinear/DequantizeLinear pair per tensor.
            func quantized(_ x: String, _ scaleValue: Float, _ zpValue: UInt8) throws -> String {
                if let dqOut = activationDQ[x] {
                    guard activationParams[x]! == (scaleValue, zpValue) else {
                        throw QDQExportError.inconsistent(layer: l.node, reason: "'\(x)' is quantized with two different scales by the INT8 layers that read it")
                    }
                    return dqOut
                }
                return appendQDQ(x, scaleValue, zpValue)
            }
            node.inputs[0] = try quantized(l.activation, l.activationScale, l.activationZeroPoint)
            if l.inputChannelPad > 0 {
                node.inputs[0] = channelPadded(l.activation, extra: l.inputChannelPad, rank: l.weightShape.count)
            }
            if let s = l.spaceToDepth {
                guard l.inputChannelPad == 0, l.weightAxis == 0, l.weightShape.count == 4, s.pads.count == 4 else {
                    throw QDQExportError.inconsistent(layer: l.node, reason: "space-to-depth needs a 2-D Conv weight [Cout, Cin, kh, kw] and 4 pads")
                }
                node.inputs[0] = spaceToDepthDQ(l.activation, s)
            }
            if let second = l.secondActivation {
                guard node.input(1) == second else {
                    throw QDQExportError.inconsistent(layer: l.node, reason: "the map quantizes '\(second)' as input 1, the node reads '\(node.input(1) ?? "")'")
                }
                node.inputs[1] = try quantized(second, l.secondScale, l.secondZeroPoint)
                nodes.append(try proto(node, originalNodes))
                appendRequantized(original)
                continue
            }

            let channels = l.weightShape.indices.contains(l.weightAxis) ? l.weightShape[l.weightAxis] : -1
            guard l.weightScales.count == channels, l.weightValues.count == l.weightShape.reduce(1, *) else {
                throw QDQExportError.inconsistent(layer: l.node, reason: "\(l.weightScales.count) weight scales for a weight of shape \(Tensor.describe(l.weightShape)) on axis \(l.weightAxis)")
            }
            var (weightValues, weightShape) = (l.weightValues, l.weightShape)
            if l.inputChannelPad > 0 {
                guard l.weightAxis == 0, weightShape.count >= 3 else {
                    throw QDQExportError.inconsistent(layer: l.node, reason: "input channel padding needs a Conv weight [Cout, Cin, ...]")
                }
                (weightValues, weightShape) = Self.zeroInputChannels(weightValues, shape: weightShape, extra: l.inputChannelPad)
            }
            if l.spaceToDepth != nil {
                (weightValues, weightShape) = Self.spaceToDepthWeight(weightValues, shape: weightShape)
                node.attributes["kernel_shape"] = .ints([weightShape[2], weightShape[3]])
                node.attributes["strides"] = .ints([1, 1])
                node.attributes["pads"] = .ints([0, 0, 0, 0])
                node.attributes["dilations"] = nil
                node.attributes["auto_pad"] = nil
            }

            // Weight: symmetric per channel, int8 with zero points 0 or the same codes + 128
            // as uint8 with zero points 128 (`QDQWeightType`).
            let wKey = "\(wName)|\(l.weightAxis)|\(l.inputChannelPad)|\(l.spaceToDepth != nil)"
            if let out = weightDQ[wKey] {
                node.inputs[1] = out
            } else {
                let q = fresh("\(wName)_quantized"), s = fresh("\(wName)_scale"), z = fresh("\(wName)_zero_point")
                switch weightType {
                case .int8:
                    newInits.append(ONNXWriter.int8Proto(weightValues, shape: weightShape, name: q))
                    newInits.append(ONNXWriter.floatProto(l.weightScales, shape: [channels], name: s))
                    newInits.append(ONNXWriter.int8Proto([Int8](repeating: 0, count: channels), shape: [channels], name: z))
                case .uint8:
                    newInits.append(ONNXWriter.uint8Proto(weightValues.map { UInt8(Int($0) + 128) }, shape: weightShape, name: q))
                    newInits.append(ONNXWriter.floatProto(l.weightScales, shape: [channels], name: s))
                    newInits.append(ONNXWriter.uint8Proto([UInt8](repeating: 128, count: channels), shape: [channels], name: z))
                }
                let out = fresh("\(wName)_DequantizeLinear_Output")
                nodes.append(dq(fresh("\(wName)_DequantizeLinear"), inputs: [q, s, z], output: out, axis: l.weightAxis))
                weightDQ[wKey] = out
                node.inputs[1] = out
            }
            replaced.insert(wName)

            // Bias: int32 at s_x * s_w[c], one DequantizeLinear per layer (its scale depends on s_x).
            if let bv = l.biasValues, let bs = l.biasScales {
                guard bv.count == bs.count, bv.count == channels else {
                    throw QDQExportError.inconsistent(layer: l.node, reason: "bias of \(bv.count) values with \(bs.count) scales for \(channels) channels")
                }
                let base = node.input(2).map { "\($0)_quantized" } ?? "\(node.name)_bias_quantized"
                let q = fresh(base), s = fresh("\(base)_scale"), z = fresh("\(base)_zero_point")
                newInits.append(ONNXWriter.int32Proto(bv, shape: [bv.count], name: q))
                newInits.append(ONNXWriter.floatProto(bs, shape: [bs.count], name: s))
                newInits.append(ONNXWriter.int32Proto([Int32](repeating: 0, count: bv.count), shape: [bv.count], name: z))
                let out = fresh("\(base)_DequantizeLinear_Output")
                nodes.append(dq(fresh("\(node.input(2) ?? base)_DequantizeLinear"), inputs: [q, s, z], output: out, axis: 0))
                if let b = node.input(2) { replaced.insert(b) }
                while node.inputs.count < 3 { node.inputs.append("") }
                node.inputs[2] = out
            } else if let b = node.input(2) {
                throw QDQExportError.inconsistent(layer: l.node, reason: "the node has a bias ('\(b)') but no quantized bias was given")
            }
            for (k, v) in l.attributes { node.attributes[k] = v }
            nodes.append(try proto(node, originalNodes))
            appendRequantized(original)
        }

        // Values still read after the rewrite; float weights and Constant nodes only the
        // INT8 layers read are dropped, everything else stays.
        var read = Set(nodes.flatMap(\.input))
        read.formUnion(g.output.map(\.name))
        // An activation's DequantizeLinear that nothing reads (the input of a channel-padded
        // stem: the Conv reads the padded codes' own DequantizeLinear) is dropped: ONNX
        // Runtime keeps and runs a dead node (38 us of the detector's 2.6 ms at batch 16).
        let activationDQOutputs = Set(activationDQ.values)
        nodes.removeAll { n in
            n.opType == "DequantizeLinear" && n.output.allSatisfy { activationDQOutputs.contains($0) && !read.contains($0) }
        }
        nodes.removeAll { n in
            n.opType == "Constant" && n.output.allSatisfy { replaced.contains($0) && !read.contains($0) }
        }
        read = Set(nodes.flatMap(\.input)).union(g.output.map(\.name))

        var inits: [Onnx_TensorProto] = []
        var written = Set<String>()
        func keep(_ name: String) -> Bool { !replaced.contains(name) || read.contains(name) }
        for t in g.initializer where graph.initializers[t.name] != nil && keep(t.name) {
            inits.append(t.dataLocation == .external ? ONNXWriter.tensorProto(graph.initializers[t.name]!, name: t.name) : t)
            written.insert(t.name)
        }
        for name in graph.initializers.keys.sorted() where !written.contains(name) && keep(name) {
            inits.append(ONNXWriter.tensorProto(graph.initializers[name]!, name: name))
            written.insert(name)
        }
        inits += newInits
        let initNames = Set(inits.map(\.name))
        let produced = Set(nodes.flatMap(\.output))

        g.node = nodes
        g.initializer = inits
        g.input = g.input.filter { originalInits[$0.name] == nil || initNames.contains($0.name) }
        g.valueInfo = g.valueInfo.filter { produced.contains($0.name) || initNames.contains($0.name) }

        // DequantizeLinear's axis needs opset 13: older graphs are rewritten to it.
        let domainIndex = model.opsetImport.firstIndex { $0.domain.isEmpty || $0.domain == "ai.onnx" }
        let opset = domainIndex.map { Int(model.opsetImport[$0].version) } ?? 1
        if opset < OpsetUpgrade.target && !layers.isEmpty {
            try OpsetUpgrade.to13(&g, from: opset, fresh: fresh)
            if let i = domainIndex { model.opsetImport[i].version = 13 } else {
                var o = Onnx_OperatorSetIdProto(); o.domain = ""; o.version = 13
                model.opsetImport.append(o)
            }
            if model.irVersion < 7 { model.irVersion = 7 }
        }
        model.graph = g

        for (k, v) in metadata {
            model.metadataProps.removeAll { $0.key == k }
            var e = Onnx_StringStringEntryProto(); e.key = k; e.value = v
            model.metadataProps.append(e)
        }
        return try model.serializedData()
    }

    /// A [Cout, Cin, k...] weight with `extra` zero input channels after the Cin it has.
    static func zeroInputChannels(_ w: [Int8], shape: [Int], extra: Int) -> ([Int8], [Int]) {
        let cout = shape[0], cin = shape[1], k = shape.dropFirst(2).reduce(1, *)
        var out = [Int8](repeating: 0, count: cout * (cin + extra) * k)
        for o in 0..<cout {
            let src = o * cin * k, dst = o * (cin + extra) * k
            for i in 0..<(cin * k) { out[dst + i] = w[src + i] }
        }
        var s = shape
        s[1] = cin + extra
        return (out, s)
    }

    /// A stride-2 [Cout, Cin, kh, kw] weight as the stride-1 weight over 2x2 space-to-depth
    /// blocks: [Cout, 4 Cin, ceil(kh / 2), ceil(kw / 2)], where channel (py * 2 + px) * Cin + c,
    /// tap (a, b) holds the original tap (2a + py, 2b + px) of channel c, and 0 past the kernel
    /// (SpaceToDepth's channel order: ONNX's DCR).
    static func spaceToDepthWeight(_ w: [Int8], shape: [Int]) -> ([Int8], [Int]) {
        let (cout, cin, kh, kw) = (shape[0], shape[1], shape[2], shape[3])
        let (bh, bw) = ((kh + 1) / 2, (kw + 1) / 2)
        var out = [Int8](repeating: 0, count: cout * 4 * cin * bh * bw)
        for o in 0..<cout {
            for c in 0..<cin {
                for y in 0..<kh {
                    for x in 0..<kw {
                        let channel = ((y % 2) * 2 + x % 2) * cin + c
                        out[((o * 4 * cin + channel) * bh + y / 2) * bw + x / 2] = w[((o * cin + c) * kh + y) * kw + x]
                    }
                }
            }
        }
        return (out, [cout, 4 * cin, bh, bw])
    }

    static func proto(_ n: Node, _ originals: [String: Onnx_NodeProto]) throws -> Onnx_NodeProto {
        if let o = originals[n.name] { return ONNXWriter.nodeProto(n, original: o) }
        return try ONNXWriter.nodeProto(n)
    }
}
