import Foundation

/// Rewrites an opset-11/12 graph to opset 13, which per-channel DequantizeLinear (its
/// `axis`) needs: the QDQ export of an older model (docs/export.md, "Old opsets"). Only the
/// ops whose opset-13 definition reads the same graph differently are touched, each into
/// its exact opset-13 equivalent:
/// - Softmax, LogSoftmax, Hardmax: before 13 the input is coerced to 2-D at `axis` (default
///   1) and normalised over everything from `axis` on; from 13 over `axis` alone (default
///   -1). The last axis is the same in both (the axis is written explicitly); any other
///   becomes Flatten(axis) -> op(axis 1) -> Reshape(Shape(x)), which is the old definition.
/// - ReduceSum, Split, Squeeze, Unsqueeze: the `axes` / `split` attribute becomes an int64
///   initializer input.
/// - Dropout (opset 11): the `ratio` attribute becomes an input (inference: identity).
/// - Resize: opset 13 dropped the `tf_half_pixel_for_nn` coordinate mode: refused.
/// Opsets before 11 changed more (Clip, Pad, Slice, Upsample, Resize-10): refused.
enum OpsetUpgrade {
    static let target = 13

    /// Upgrades `g` (ai.onnx nodes of the main graph) from `opset` to 13; `fresh` gives
    /// unused tensor and node names.
    static func to13(_ g: inout Onnx_GraphProto, from opset: Int, fresh: (String) -> String) throws {
        guard opset < target else { return }
        guard opset >= 11 else {
            throw QDQExportError.opsetTooOld(opset: opset, ops: ["opset \(opset) < 11 (Clip, Pad, Slice, Upsample and Resize differ)"])
        }
        // Subgraphs (If/Loop/Scan bodies) are copied as they are: refuse when they hold an
        // op this upgrade would have to rewrite, rather than write an invalid model.
        let nested = g.node.flatMap { $0.attribute.flatMap { [$0.g] + $0.graphs } }.flatMap(opTypes)
        if let op = nested.first(where: rewritten.contains) {
            throw QDQExportError.opsetTooOld(opset: opset, ops: ["\(op) inside a subgraph (If/Loop/Scan body)"])
        }
        let ranks = knownRanks(g)
        var nodes: [Onnx_NodeProto] = []
        for var n in g.node {
            guard n.domain.isEmpty || n.domain == "ai.onnx" else { nodes.append(n); continue }
            switch n.opType {
            case "Softmax", "LogSoftmax", "Hardmax":
                let axis = intAttribute(n, "axis") ?? 1
                setInt(&n, "axis", axis)
                // Softmax keeps its input's shape: the output's rank is the input's too.
                let rank = n.input.first.flatMap { ranks[$0] } ?? n.output.first.flatMap { ranks[$0] }
                if axis == -1 || (rank.map { axis == $0 - 1 } ?? false) { nodes.append(n); continue }
                // The opset-11 definition spelled out in opset-13 ops.
                let x = n.input[0], y = n.output[0], base = n.name.isEmpty ? n.opType : n.name
                let flat = fresh("\(base)_flattened"), inner = fresh("\(base)_2d"), shape = fresh("\(base)_input_shape")
                var flatten = Onnx_NodeProto()
                flatten.name = fresh("\(base)_Flatten"); flatten.opType = "Flatten"; flatten.input = [x]; flatten.output = [flat]
                setInt(&flatten, "axis", axis)
                n.input = [flat]; n.output = [inner]
                setInt(&n, "axis", 1)
                var shapeOf = Onnx_NodeProto()
                shapeOf.name = fresh("\(base)_Shape"); shapeOf.opType = "Shape"; shapeOf.input = [x]; shapeOf.output = [shape]
                var reshape = Onnx_NodeProto()
                reshape.name = fresh("\(base)_Reshape"); reshape.opType = "Reshape"; reshape.input = [inner, shape]; reshape.output = [y]
                nodes += [flatten, n, shapeOf, reshape]
            case "ReduceSum", "Squeeze", "Unsqueeze":
                if let axes = intsAttribute(n, "axes") {
                    let name = fresh("\(n.name.isEmpty ? n.opType : n.name)_axes")
                    g.initializer.append(int64Proto(axes, name: name))
                    n.attribute.removeAll { $0.name == "axes" }
                    while n.input.count < 1 { n.input.append("") }
                    n.input = [n.input[0], name]
                }
                nodes.append(n)
            case "Split":
                if let split = intsAttribute(n, "split") {
                    let name = fresh("\(n.name.isEmpty ? "Split" : n.name)_split")
                    g.initializer.append(int64Proto(split, name: name))
                    n.attribute.removeAll { $0.name == "split" }
                    n.input = [n.input[0], name]
                }
                nodes.append(n)
            case "Dropout" where opset < 12:
                if let a = n.attribute.first(where: { $0.name == "ratio" }) {
                    let name = fresh("\(n.name.isEmpty ? "Dropout" : n.name)_ratio")
                    g.initializer.append(ONNXWriter.floatProto([a.f], shape: [], name: name))
                    n.attribute.removeAll { $0.name == "ratio" }
                    n.input = [n.input[0], name]
                }
                nodes.append(n)
            case "Resize":
                if n.attribute.contains(where: { $0.name == "coordinate_transformation_mode" && String(decoding: $0.s, as: UTF8.self) == "tf_half_pixel_for_nn" }) {
                    throw QDQExportError.opsetTooOld(opset: opset, ops: ["Resize '\(n.name)' with coordinate_transformation_mode tf_half_pixel_for_nn (removed in opset 13)"])
                }
                nodes.append(n)
            default:
                nodes.append(n)
            }
        }
        g.node = nodes
    }

    /// The ops whose opset-13 form differs from their opset-11/12 form.
    static let rewritten: Set<String> = ["Softmax", "LogSoftmax", "Hardmax", "ReduceSum", "Squeeze", "Unsqueeze", "Split", "Dropout"]

    /// Every op type in `g` and its subgraphs.
    static func opTypes(_ g: Onnx_GraphProto) -> [String] {
        g.node.flatMap { n in [n.opType] + n.attribute.flatMap { [$0.g] + $0.graphs }.flatMap(opTypes) }
    }

    /// Ranks the file states: graph inputs, outputs and value_info with a shape, initializers.
    static func knownRanks(_ g: Onnx_GraphProto) -> [String: Int] {
        var ranks: [String: Int] = [:]
        for v in g.input + g.output + g.valueInfo where v.type.tensorType.hasShape {
            ranks[v.name] = v.type.tensorType.shape.dim.count
        }
        for t in g.initializer { ranks[t.name] = t.dims.count }
        return ranks
    }

    static func intAttribute(_ n: Onnx_NodeProto, _ name: String) -> Int? {
        n.attribute.first { $0.name == name }.map { Int($0.i) }
    }

    static func intsAttribute(_ n: Onnx_NodeProto, _ name: String) -> [Int]? {
        n.attribute.first { $0.name == name }.map { $0.ints.map { Int($0) } }
    }

    static func setInt(_ n: inout Onnx_NodeProto, _ name: String, _ value: Int) {
        n.attribute.removeAll { $0.name == name }
        if let a = ONNXWriter.attributeProto(.int(value), name: name) { n.attribute.append(a) }
    }

    static func int64Proto(_ v: [Int], name: String) -> Onnx_TensorProto {
        var t = Onnx_TensorProto()
        t.name = name
        t.dataType = Int32(Onnx_TensorProto.DataType.int64.rawValue)
        t.dims = [Int64(v.count)]
        t.rawData = Data(v.flatMap { ONNXWriter.le(Int64($0)) })
        return t
    }
}
