import Foundation
import SwiftProtobuf

/// Reads `.onnx` files into a `Graph`: converts protobuf to mpq's types, resolves external
/// data beside the model, gives every node a stable unique name and orders nodes
/// topologically. Structural problems (truncation, dangling values) are reported here,
/// before anything runs.
public enum ModelLoader {
    /// The ai.onnx opsets mpq implements. 7 is the first with numpy-style broadcasting
    /// (before it, Add, Mul and Gemm carried `broadcast`/`axis` attributes mpq does not
    /// read); 28 is the newest the conformance suite exercises.
    public static let supportedOpsets: ClosedRange<Int> = 7...28

    /// Node domains mpq executes: only the default one (custom-domain ops are rejected
    /// here, before graph passes could fold them away unseen).
    public static let supportedDomains: Set<String> = ["", "ai.onnx"]

    public static func load(path: String) throws -> Graph {
        let url = URL(fileURLWithPath: path)
        guard FileManager.default.fileExists(atPath: path) else { throw ModelError.fileNotFound(path: path) }
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw ModelError.unreadable(path: path, reason: error.localizedDescription)
        }
        return try load(data: data, path: path, baseDirectory: url.deletingLastPathComponent())
    }

    public static func load(data: Data, path: String = "<memory>", baseDirectory: URL? = nil) throws -> Graph {
        guard !data.isEmpty else { throw ModelError.corruptModel(path: path, reason: "the file is empty") }
        let model: Onnx_ModelProto
        do { model = try Onnx_ModelProto(serializedBytes: data) } catch {
            throw ModelError.corruptModel(path: path, reason: "protobuf decoding failed (\(error)); the file may be truncated or not ONNX")
        }
        guard model.hasGraph, !model.graph.output.isEmpty else {
            throw ModelError.corruptModel(path: path, reason: "no graph or no graph outputs; the file may be truncated or not ONNX")
        }
        var opsets: [String: Int] = [:]
        for o in model.opsetImport {
            let domain = o.domain == "ai.onnx" ? "" : o.domain
            // Two imports of one domain leave its semantics ambiguous (the fuzzer's duplicated
            // ai.onnx 14 and 11 ran as 11 and failed later at an Unsqueeze): name the imports.
            if let earlier = opsets[domain] {
                let name = domain.isEmpty ? "ai.onnx" : domain
                throw ModelError.corruptModel(path: path, reason: "opset_import lists domain '\(name)' twice (versions \(earlier) and \(o.version)); a model imports each domain once")
            }
            opsets[domain] = Int(clamping: o.version)
        }
        // Ops are run with the semantics of the imported opset: a missing or unknown one
        // would silently pick the wrong semantics (Reshape's shape attribute, Add's
        // `broadcast`), so it is an error, not a default.
        guard let opset = opsets[""] else {
            throw ModelError.unsupportedOpset(domain: "", version: nil, supported: supportedOpsets)
        }
        guard supportedOpsets.contains(opset) else {
            throw ModelError.unsupportedOpset(domain: "", version: opset, supported: supportedOpsets)
        }
        var metadata: [String: String] = [:]
        for p in model.metadataProps { metadata[p.key] = p.value }
        do {
            return try convert(model.graph, opsets: opsets, producer: model.producerName,
                               metadata: metadata, baseDirectory: baseDirectory)
        } catch ModelError.invalidGraph(let reason) {
            throw ModelError.corruptModel(path: path, reason: reason)
        }
    }

    static func convert(_ g: Onnx_GraphProto, opsets: [String: Int], producer: String,
                        metadata: [String: String], baseDirectory: URL?) throws -> Graph {
        var initializers: [String: Tensor] = [:]
        for t in g.initializer {
            let tensor = try TensorDecoder.decode(t, baseDirectory: baseDirectory)
            try checkFinite(tensor, name: t.name)
            initializers[t.name] = tensor
        }
        let inputs = try g.input.filter { initializers[$0.name] == nil }.map { try valueInfo($0, role: "graph input") }
        for input in inputs {
            // Known dims only (a symbolic batch counts as 1): `inspect` allocates from them.
            let known = (input.shape ?? []).map { $0 ?? 1 }
            if let problem = TensorLimits.sizeProblem(known, dtype: input.dtype ?? .float32) {
                throw ModelError.invalidTensor(tensor: input.name, reason: "graph input: \(problem)")
            }
        }
        let outputs = try g.output.map { try valueInfo($0, role: "graph output") }

        // Stable unique names: the file's, else <OpType>_<index>; a clash gets the index appended.
        var used = Set<String>()
        var nodes: [Node] = []
        for (i, n) in g.node.enumerated() {
            var name = n.name.isEmpty ? "\(n.opType)_\(i)" : n.name
            if used.contains(name) { name = "\(name)_\(i)" }
            used.insert(name)
            guard supportedDomains.contains(n.domain) else {
                throw ModelError.unsupportedOp(node: name, opType: n.opType, domain: n.domain, opset: opsets[n.domain] ?? 0)
            }
            var attrs: [String: Attribute] = [:]
            for a in n.attribute {
                let value = try attribute(a, node: name, baseDirectory: baseDirectory)
                if case .tensor(let t) = value { try checkFinite(t, name: "\(name).\(a.name)") }
                attrs[a.name] = value
            }
            let node = Node(name: name, opType: n.opType, domain: n.domain,
                            inputs: n.input, outputs: n.output, attributes: attrs)
            try AttributeSchema.check(node)
            nodes.append(node)
        }
        let available = Set(initializers.keys).union(inputs.map(\.name))
        let sorted = try topologicalOrder(nodes, available: available)
        let produced = available.union(sorted.flatMap(\.outputs))
        for o in outputs where !produced.contains(o.name) {
            throw ModelError.invalidGraph(reason: "graph output '\(o.name)' is produced by no node")
        }
        return Graph(nodes: sorted, initializers: initializers, inputs: inputs, outputs: outputs,
                     opsets: opsets, name: g.name, producer: producer, metadata: metadata)
    }

    /// NaN or Inf in a weight is almost always a broken export, and it poisons every
    /// score silently; `TensorLimits.allowNonFinite` (MPQ_ALLOW_NONFINITE=1) accepts it.
    static func checkFinite(_ t: Tensor, name: String) throws {
        guard t.dtype.isFloating, !TensorLimits.allowNonFinite else { return }
        var nan = 0, inf = 0
        for v in t.floats where !v.isFinite { if v.isNaN { nan += 1 } else { inf += 1 } }
        guard nan + inf > 0 else { return }
        throw ModelError.invalidTensor(tensor: name, reason: "\(nan + inf) of \(t.count) values are not finite (\(nan) NaN, \(inf) Inf); set MPQ_ALLOW_NONFINITE=1 if the model means it")
    }

    /// Kahn's algorithm, keeping file order among ready nodes so names and reports are stable.
    public static func topologicalOrder(_ nodes: [Node], available: Set<String>) throws -> [Node] {
        var producer: [String: Int] = [:]
        for (i, n) in nodes.enumerated() { for o in n.outputs where !o.isEmpty { producer[o] = i } }
        var pending = [Int](repeating: 0, count: nodes.count)
        var readers: [Int: [Int]] = [:]
        for (i, n) in nodes.enumerated() {
            for v in Set(n.inputs) where !v.isEmpty && !available.contains(v) {
                guard let p = producer[v] else {
                    throw ModelError.invalidGraph(reason: "node '\(n.name)' (\(n.opType)) reads '\(v)', which no node produces and is neither a graph input nor an initializer")
                }
                pending[i] += 1
                readers[p, default: []].append(i)
            }
        }
        var ready = (0..<nodes.count).filter { pending[$0] == 0 }
        var order: [Node] = []
        order.reserveCapacity(nodes.count)
        var head = 0
        while head < ready.count {
            // Smallest index first: a heap is not worth it at these sizes.
            let k = ready[head...].indices.min { ready[$0] < ready[$1] }!
            ready.swapAt(head, k)
            let i = ready[head]; head += 1
            order.append(nodes[i])
            for r in readers[i] ?? [] {
                pending[r] -= 1
                if pending[r] == 0 { ready.append(r) }
            }
        }
        guard order.count == nodes.count else {
            let stuck = (0..<nodes.count).first { pending[$0] > 0 }.map { nodes[$0].name } ?? "?"
            throw ModelError.invalidGraph(reason: "the graph has a cycle through node '\(stuck)'")
        }
        return order
    }

    /// The largest `TensorProto.DataType` code ONNX defines (INT2, onnx 1.19).
    static let largestONNXDataType = 28

    static func valueInfo(_ v: Onnx_ValueInfoProto, role: String) throws -> ValueInfo {
        guard case .tensorType(let tt)? = v.type.value else { return ValueInfo(name: v.name, dtype: nil, shape: nil) }
        // A code ONNX does not define would read as "type unknown" and let any data through.
        guard (0...largestONNXDataType).contains(Int(tt.elemType)) else {
            throw ModelError.invalidTensor(tensor: v.name, reason: "\(role): element type \(tt.elemType) is not an ONNX data type (0 to \(largestONNXDataType))")
        }
        let dtype = DType(onnxCode: Int(tt.elemType))
        guard tt.hasShape else { return ValueInfo(name: v.name, dtype: dtype, shape: nil) }
        let dims = tt.shape.dim
        return ValueInfo(name: v.name, dtype: dtype,
                         shape: dims.map { d in
                             if case .dimValue(let n)? = d.value, n > 0 { return Int(n) }
                             return nil
                         },
                         dimNames: dims.map { d in
                             if case .dimParam(let s)? = d.value { return s }
                             return nil
                         })
    }

    static func attribute(_ a: Onnx_AttributeProto, node: String, baseDirectory: URL?) throws -> Attribute {
        // A Constant's value is usually unnamed: errors then name it `<node>.<attribute>`.
        func decodeTensor() throws -> Tensor {
            var t = a.t
            if t.name.isEmpty { t.name = "\(node).\(a.name)" }
            return try TensorDecoder.decode(t, baseDirectory: baseDirectory)
        }
        switch a.type {
        case .float: return .float(a.f)
        case .int: return .int(Int(a.i))
        case .string: return .string(String(decoding: a.s, as: UTF8.self))
        case .tensor: return .tensor(try decodeTensor())
        case .floats: return .floats(a.floats)
        case .ints: return .ints(a.ints.map { Int($0) })
        case .strings: return .strings(a.strings.map { String(decoding: $0, as: UTF8.self) })
        case .graph, .graphs: return .graph
        default:
            // Files from old exporters leave `type` unset: infer it from the field present.
            if a.hasF { return .float(a.f) }
            if a.hasI { return .int(Int(a.i)) }
            if a.hasS { return .string(String(decoding: a.s, as: UTF8.self)) }
            if a.hasT { return .tensor(try decodeTensor()) }
            if !a.floats.isEmpty { return .floats(a.floats) }
            if !a.ints.isEmpty { return .ints(a.ints.map { Int($0) }) }
            if !a.strings.isEmpty { return .strings(a.strings.map { String(decoding: $0, as: UTF8.self) }) }
            if a.hasG { return .graph }
            return .ints([])
        }
    }
}
