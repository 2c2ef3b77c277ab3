/// A node attribute, converted from ONNX's AttributeProto.
public enum Attribute: Sendable, Equatable {
    case int(Int)
    case float(Float)
    case string(String)
    case tensor(Tensor)
    case ints([Int])
    case floats([Float])
    case strings([String])
    case graph   // subgraphs (If/Loop/Scan bodies) are not executed by mpq
}

/// One operator invocation. `name` is stable: the file's name, or `<OpType>_<index>`
/// when the file has none, so precision maps and reports can key on it.
public struct Node: Sendable, Equatable {
    /// The fields live in one immutable box: the run loop, fusions and ops copy nodes per
    /// executed node, and a copy of six separately counted fields cost six atomic retains and
    /// releases (half of a 200-node model's per-node overhead in `perf`); a box costs one.
    /// A setter (graph passes, rare) makes a new box, so reads need no exclusivity checks.
    private final class Storage: Sendable {
        let name: String
        let opType: String
        let domain: String
        let inputs: [String]
        let outputs: [String]
        let attributes: [String: Attribute]

        init(name: String, opType: String, domain: String, inputs: [String], outputs: [String], attributes: [String: Attribute]) {
            self.name = name; self.opType = opType; self.domain = domain
            self.inputs = inputs; self.outputs = outputs; self.attributes = attributes
        }
    }

    private var storage: Storage

    private mutating func rebuild(name: String? = nil, opType: String? = nil, domain: String? = nil, inputs: [String]? = nil,
                                  outputs: [String]? = nil, attributes: [String: Attribute]? = nil) {
        let s = storage
        storage = Storage(name: name ?? s.name, opType: opType ?? s.opType, domain: domain ?? s.domain, inputs: inputs ?? s.inputs,
                          outputs: outputs ?? s.outputs, attributes: attributes ?? s.attributes)
    }

    public var name: String {
        get { storage.name }
        set { rebuild(name: newValue) }
    }
    public var opType: String {
        get { storage.opType }
        set { rebuild(opType: newValue) }
    }
    public var domain: String {
        get { storage.domain }
        set { rebuild(domain: newValue) }
    }
    /// Input value names; "" marks an omitted optional input.
    public var inputs: [String] {
        get { storage.inputs }
        set { rebuild(inputs: newValue) }
    }
    public var outputs: [String] {
        get { storage.outputs }
        set { rebuild(outputs: newValue) }
    }
    public var attributes: [String: Attribute] {
        get { storage.attributes }
        set { rebuild(attributes: newValue) }
    }

    public init(name: String, opType: String, domain: String = "", inputs: [String], outputs: [String],
                attributes: [String: Attribute] = [:]) {
        storage = Storage(name: name, opType: opType, domain: domain, inputs: inputs, outputs: outputs, attributes: attributes)
    }

    /// Whether both are copies of one node value (the same box): O(1), no field compared.
    /// The session finds the runner it bound for a node this way.
    public func isSameNode(_ other: Node) -> Bool { storage === other.storage }

    public static func == (a: Node, b: Node) -> Bool {
        a.storage === b.storage
            || (a.name == b.name && a.opType == b.opType && a.domain == b.domain && a.inputs == b.inputs
                && a.outputs == b.outputs && a.attributes == b.attributes)
    }

    // Typed attribute access with ONNX defaults.
    public func int(_ key: String) -> Int? { if case .int(let v)? = attributes[key] { return v }; return nil }
    public func int(_ key: String, default d: Int) -> Int { int(key) ?? d }
    public func float(_ key: String) -> Float? { if case .float(let v)? = attributes[key] { return v }; return nil }
    public func float(_ key: String, default d: Float) -> Float { float(key) ?? d }
    public func string(_ key: String) -> String? { if case .string(let v)? = attributes[key] { return v }; return nil }
    public func string(_ key: String, default d: String) -> String { string(key) ?? d }
    public func ints(_ key: String) -> [Int]? { if case .ints(let v)? = attributes[key] { return v }; return nil }
    public func floats(_ key: String) -> [Float]? { if case .floats(let v)? = attributes[key] { return v }; return nil }
    public func strings(_ key: String) -> [String]? { if case .strings(let v)? = attributes[key] { return v }; return nil }
    public func tensor(_ key: String) -> Tensor? { if case .tensor(let v)? = attributes[key] { return v }; return nil }

    /// Input name at `i`, or nil when absent or omitted ("").
    public func input(_ i: Int) -> String? { i < inputs.count && !inputs[i].isEmpty ? inputs[i] : nil }
}

/// A graph input or output: name, element type and shape. A nil dimension is symbolic
/// (the batch, usually) or unknown.
public struct ValueInfo: Sendable, Equatable {
    public var name: String
    public var dtype: DType?
    public var shape: [Int?]?
    public var dimNames: [String?]

    public init(name: String, dtype: DType?, shape: [Int?]?, dimNames: [String?] = []) {
        self.name = name; self.dtype = dtype; self.shape = shape; self.dimNames = dimNames
    }

    public var shapeDescription: String {
        guard let shape else { return "?" }
        return "[" + shape.enumerated().map { i, d in
            d.map(String.init) ?? (i < dimNames.count ? dimNames[i] ?? "N" : "N")
        }.joined(separator: ",") + "]"
    }
}

/// A loaded model: nodes in topological order, weights, graph inputs (initializers
/// excluded) and outputs, and the opset imported per domain.
public struct Graph: Sendable {
    public var nodes: [Node]
    public var initializers: [String: Tensor]
    public var inputs: [ValueInfo]
    public var outputs: [ValueInfo]
    /// Opset version per domain ("" = ai.onnx).
    public var opsets: [String: Int]
    public var name: String
    public var producer: String
    public var metadata: [String: String]

    public init(nodes: [Node], initializers: [String: Tensor], inputs: [ValueInfo], outputs: [ValueInfo],
                opsets: [String: Int], name: String = "", producer: String = "", metadata: [String: String] = [:]) {
        self.nodes = nodes; self.initializers = initializers; self.inputs = inputs; self.outputs = outputs
        self.opsets = opsets; self.name = name; self.producer = producer; self.metadata = metadata
    }

    /// The ai.onnx opset the model imports.
    public var opset: Int { opsets[""] ?? opsets["ai.onnx"] ?? 1 }

    public func opset(forDomain domain: String) -> Int {
        if domain.isEmpty || domain == "ai.onnx" { return opset }
        return opsets[domain] ?? 1
    }

    /// Node producing each value name.
    public var producers: [String: Int] {
        var m: [String: Int] = [:]
        for (i, n) in nodes.enumerated() { for o in n.outputs where !o.isEmpty { m[o] = i } }
        return m
    }

    /// Nodes reading each value name.
    public var consumers: [String: [Int]] {
        var m: [String: [Int]] = [:]
        for (i, n) in nodes.enumerated() { for v in Set(n.inputs) where !v.isEmpty { m[v, default: []].append(i) } }
        return m
    }

    public func node(named name: String) -> Node? { nodes.first { $0.name == name } }
}
