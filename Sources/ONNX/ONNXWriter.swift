import Foundation
import SwiftProtobuf

/// Converts mpq's tensors, attributes and nodes back to ONNX protobuf messages, the
/// inverse of `TensorDecoder` and `ModelLoader.attribute`. Tensors are written as
/// little-endian `raw_data`; subgraph attributes cannot be rebuilt from a `Node` (mpq
/// keeps no body), so a node with one must come from its original NodeProto.
enum ONNXWriter {
    /// A TensorProto holding `t` inline as raw little-endian bytes, in `t`'s element type.
    static func tensorProto(_ t: Tensor, name: String) -> Onnx_TensorProto {
        var p = Onnx_TensorProto()
        p.name = name
        p.dims = t.shape.map { Int64($0) }
        p.dataType = Int32(t.dtype.onnxCode)
        p.rawData = rawBytes(t)
        return p
    }

    /// An int8 tensor from values already in range.
    static func int8Proto(_ v: [Int8], shape: [Int], name: String) -> Onnx_TensorProto {
        var p = Onnx_TensorProto()
        p.name = name; p.dims = shape.map { Int64($0) }; p.dataType = Int32(DType.int8.onnxCode)
        p.rawData = v.withUnsafeBytes { Data($0) }
        return p
    }

    static func int32Proto(_ v: [Int32], shape: [Int], name: String) -> Onnx_TensorProto {
        var p = Onnx_TensorProto()
        p.name = name; p.dims = shape.map { Int64($0) }; p.dataType = Int32(DType.int32.onnxCode)
        p.rawData = Data(v.flatMap { le($0) })
        return p
    }

    static func int64Proto(_ v: [Int64], shape: [Int], name: String) -> Onnx_TensorProto {
        var p = Onnx_TensorProto()
        p.name = name; p.dims = shape.map { Int64($0) }; p.dataType = Int32(DType.int64.onnxCode)
        p.rawData = Data(v.flatMap { le($0) })
        return p
    }

    static func uint8Proto(_ v: [UInt8], shape: [Int], name: String) -> Onnx_TensorProto {
        var p = Onnx_TensorProto()
        p.name = name; p.dims = shape.map { Int64($0) }; p.dataType = Int32(DType.uint8.onnxCode)
        p.rawData = Data(v)
        return p
    }

    static func floatProto(_ v: [Float], shape: [Int], name: String) -> Onnx_TensorProto {
        tensorProto(Tensor(shape: shape, floats: v), name: name)
    }

    @inline(__always)
    static func le<T: FixedWidthInteger>(_ v: T) -> [UInt8] {
        withUnsafeBytes(of: v.littleEndian) { Array($0) }
    }

    static func rawBytes(_ t: Tensor) -> Data {
        var out = [UInt8]()
        switch t.dtype {
        case .float32:
            out.reserveCapacity(t.count * 4)
            for f in t.floats { out += le(f.bitPattern) }
        case .float64:
            for f in t.floats { out += le(Double(f).bitPattern) }
        case .float16:
            for f in t.floats { out += le(Float16(f).bitPattern) }
        case .int64: for v in t.ints { out += le(v) }
        case .uint64: for v in t.ints { out += le(UInt64(bitPattern: v)) }
        case .int32: for v in t.ints { out += le(Int32(truncatingIfNeeded: v)) }
        case .uint32: for v in t.ints { out += le(UInt32(truncatingIfNeeded: v)) }
        case .int16: for v in t.ints { out += le(Int16(truncatingIfNeeded: v)) }
        case .uint16: for v in t.ints { out += le(UInt16(truncatingIfNeeded: v)) }
        case .int8: for v in t.ints { out.append(UInt8(bitPattern: Int8(truncatingIfNeeded: v))) }
        case .uint8, .bool: for v in t.ints { out.append(UInt8(truncatingIfNeeded: v)) }
        }
        return Data(out)
    }

    /// The AttributeProto for an attribute; nil for `.graph`, which mpq cannot rebuild.
    static func attributeProto(_ a: Attribute, name: String) -> Onnx_AttributeProto? {
        var p = Onnx_AttributeProto()
        p.name = name
        switch a {
        case .int(let v): p.type = .int; p.i = Int64(v)
        case .float(let v): p.type = .float; p.f = v
        case .string(let v): p.type = .string; p.s = Data(v.utf8)
        case .tensor(let t): p.type = .tensor; p.t = tensorProto(t, name: "")
        case .ints(let v): p.type = .ints; p.ints = v.map { Int64($0) }
        case .floats(let v): p.type = .floats; p.floats = v
        case .strings(let v): p.type = .strings; p.strings = v.map { Data($0.utf8) }
        case .graph: return nil
        }
        return p
    }

    /// A NodeProto for a node with no original to start from. Attributes are written in
    /// name order so the same node gives the same bytes.
    static func nodeProto(_ n: Node) throws -> Onnx_NodeProto {
        var p = Onnx_NodeProto()
        p.name = n.name; p.opType = n.opType
        if !n.domain.isEmpty { p.domain = n.domain }
        p.input = n.inputs; p.output = n.outputs
        for key in n.attributes.keys.sorted() {
            guard let a = attributeProto(n.attributes[key]!, name: key) else {
                throw ModelError.invalidGraph(reason: "node '\(n.name)' (\(n.opType)): attribute '\(key)' is a subgraph, which mpq cannot write")
            }
            p.attribute.append(a)
        }
        return p
    }

    /// `original` with the inputs, outputs and non-subgraph attributes of `n`: what the
    /// file had (doc strings, subgraph bodies, attribute order) is kept where mpq did not
    /// change it. Attributes mpq adds for its own use (`mpq_*`) are not written.
    static func nodeProto(_ n: Node, original: Onnx_NodeProto) -> Onnx_NodeProto {
        var p = original
        p.name = n.name
        p.input = n.inputs; p.output = n.outputs
        var seen = Set<String>()
        p.attribute = original.attribute.compactMap { a in
            seen.insert(a.name)
            guard let v = n.attributes[a.name] else { return nil }
            if case .graph = v { return a }
            return attributeProto(v, name: a.name).map { converted in
                // Keep the file's encoding when the value is unchanged (a float read back is equal).
                let same = (try? ModelLoader.attribute(a, node: n.name, baseDirectory: nil)) == v
                return same ? a : converted
            }
        }
        for key in n.attributes.keys.sorted() where !seen.contains(key) && !key.hasPrefix("mpq_") {
            if let a = attributeProto(n.attributes[key]!, name: key) { p.attribute.append(a) }
        }
        return p
    }

    /// Names the loader gives the nodes of `g`, in file order: the file's name, else
    /// `<OpType>_<index>`, a clash getting the index appended (as `ModelLoader.convert`).
    static func stableNames(_ g: Onnx_GraphProto) -> [String] {
        var used = Set<String>()
        return g.node.enumerated().map { i, n in
            var name = n.name.isEmpty ? "\(n.opType)_\(i)" : n.name
            if used.contains(name) { name = "\(name)_\(i)" }
            used.insert(name)
            return name
        }
    }
}

/// Node names as a model file spells them, for exports to tools that address nodes by
/// name (a node the file leaves unnamed has only mpq's `<OpType>_<index>` name).
public enum ONNXNodeNames {
    /// Names the file gives its nodes; empty when the bytes are not a model.
    public static func named(in modelData: Data) -> Set<String> {
        guard let m = try? Onnx_ModelProto(serializedBytes: modelData) else { return [] }
        return Set(m.graph.node.map(\.name).filter { !$0.isEmpty })
    }
}
