import ONNX

/// How a node runs: its resolved inputs (nil for omitted optional inputs) in, outputs out.
/// `opset` is the opset the model imports for the node's domain, for ops whose semantics
/// changed between versions (attributes that became inputs, for example).
public typealias OpFunction = (_ node: Node, _ inputs: [Tensor?], _ opset: Int) throws -> [Tensor]

/// One node's op with its attributes already read (`OpEntry.bind`): inputs in, outputs out.
typealias BoundOp = @Sendable (_ inputs: [Tensor?], _ prepared: PreparedWeights?) throws -> [Tensor]

/// A supported op: the first ai.onnx opset whose semantics the implementation covers.
public struct OpEntry: Sendable {
    public let since: Int
    public let run: @Sendable (_ node: Node, _ inputs: [Tensor?], _ opset: Int) throws -> [Tensor]
    /// `run` given the session's weights prepared from constant inputs (Conv: packed for
    /// the FP32 GEMM); nil for ops that prepare nothing.
    let runPrepared: (@Sendable (_ node: Node, _ inputs: [Tensor?], _ opset: Int, _ prepared: PreparedWeights) throws -> [Tensor])?
    /// `runPrepared` for one node with its attributes read once, when the session is made,
    /// instead of at every run (each read hashes the attribute's name: a Conv read ~12 per
    /// run, a third of its per-node cost at batch 1). Nil for ops that read them per run, and
    /// from `bind` for a node whose attributes it cannot read: that node then runs through
    /// `run`, which reports the problem when the node executes, as before.
    let bind: (@Sendable (_ node: Node, _ opset: Int) -> BoundOp?)?
    public init(since: Int = 1, _ run: @escaping @Sendable (_ node: Node, _ inputs: [Tensor?], _ opset: Int) throws -> [Tensor]) {
        self.since = since; self.run = run; self.runPrepared = nil; self.bind = nil
    }
    init(since: Int, _ run: @escaping @Sendable (_ node: Node, _ inputs: [Tensor?], _ opset: Int, _ prepared: PreparedWeights?) throws -> [Tensor],
         bind: (@Sendable (_ node: Node, _ opset: Int) -> BoundOp?)? = nil) {
        self.since = since
        self.run = { try run($0, $1, $2, nil) }
        self.runPrepared = { try run($0, $1, $2, $3) }
        self.bind = bind
    }
}

/// The op-type table: every op mpq executes, by family. Each family file owns its table.
public enum OpRegistry {
    public static let table: [String: OpEntry] = {
        var t: [String: OpEntry] = [:]
        for family in [ElementwiseOps.table, ActivationOps.table, ShapeOps.table,
                       LinearOps.table, ConvOps.table, PoolOps.table, NormalizationOps.table,
                       ReduceOps.table, ResizeOps.table, QuantizeOps.table, DetectionOps.table] {
            t.merge(family) { a, _ in a }
        }
        return t
    }()

    /// Ops mpq claims, sorted: used by `mpq inspect`, conformance and docs.
    public static var supportedOps: [String] { table.keys.sorted() }

    /// The entry for a node, or the load-time error that names it.
    public static func entry(for node: Node, opset: Int) throws -> OpEntry {
        let domainOK = node.domain.isEmpty || node.domain == "ai.onnx"
        guard domainOK, let e = table[node.opType], opset >= e.since else {
            throw ModelError.unsupportedOp(node: node.name, opType: node.opType, domain: node.domain, opset: opset)
        }
        return e
    }
}

// Helpers shared by op implementations.
extension Node {
    /// Attribute that may be an input from some opset on (Clip min/max, Pad pads, ...).
    func required(_ inputs: [Tensor?], _ i: Int, _ what: String) throws -> Tensor {
        guard i < inputs.count, let t = inputs[i] else { throw OpError("missing required input \(i) (\(what))") }
        return t
    }
}

/// Checks a shape computed from inputs or attributes before anything is allocated from
/// it: a negative dim, an element count that overflows Int, or a tensor over
/// `TensorLimits.maxBytes` is an error naming `what` (the session adds the node).
@discardableResult
func checkedCount(_ shape: [Int], dtype: DType = .float32, _ what: @autoclosure () -> String = "output") throws -> Int {
    if let problem = TensorLimits.sizeProblem(shape, dtype: dtype) { throw OpError("\(what()): \(problem)") }
    return TensorLimits.product(shape)!
}

/// Normalises an axis that indexes one of the tensor's dimensions: unlike
/// `normalizeAxis`, a scalar (rank 0) has none, so any axis is an error (ops that index
/// `shape[axis]` would otherwise go out of bounds on a scalar from a malformed graph).
@inlinable
public func dimensionAxis(_ axis: Int, rank: Int) throws -> Int {
    guard rank >= 1 else { throw OpError("axis \(axis) needs an input with at least one dimension, got a scalar") }
    return try normalizeAxis(axis, rank: rank)
}

/// Normalises a possibly negative axis against a rank, or throws.
@inlinable
public func normalizeAxis(_ axis: Int, rank: Int) throws -> Int {
    let a = axis < 0 ? axis + rank : axis
    guard a >= 0, a < max(rank, 1) else { throw OpError("axis \(axis) out of range for rank \(rank)") }
    return a
}
