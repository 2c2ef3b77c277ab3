import ONNX

/// Re-execution from cached FP32 activations: when only some layers change precision, the
/// nodes upstream of every change give the same values as in the FP32 run, so they are
/// taken from the cache and only the nodes downstream of a changed layer run again.
/// This is what lets a search afford hundreds of candidates.
extension Session {
    /// Every value one FP32 run of a batch computed (node outputs and feeds).
    public func fp32Activations(_ feeds: [String: Tensor]) throws -> [String: Tensor] {
        let saved = overrides, savedCodes = codesInputNodes, savedFused = fusedOverrides
        overrides = [:]
        defer { overrides = saved; codesInputNodes = savedCodes; fusedOverrides = savedFused }
        var all: [String: Tensor] = feeds
        _ = try run(feeds) { node, _, outs in
            for (name, t) in zip(node.outputs, outs) where !name.isEmpty { all[name] = t }
        }
        return all
    }

    /// Every value one run of a batch computed with the current overrides.
    public func allActivations(_ feeds: [String: Tensor]) throws -> (outputs: [String: Tensor], values: [String: Tensor]) {
        var all: [String: Tensor] = feeds
        let outs = try run(feeds) { node, _, outs in
            for (name, t) in zip(node.outputs, outs) where !name.isEmpty { all[name] = t }
        }
        return (outs, all)
    }

    /// Runs with the current overrides, reusing `cache` (every value of a run on the same
    /// feeds) for every node that is not in `changedNodes` and reads no value that changed.
    /// With a cache from an FP32 run, `changedNodes` are the INT8 layers; from another
    /// mix, the layers whose precision differs from it. Returns the graph outputs and the
    /// indices (into `plan`) of the nodes executed.
    public func runIncremental(cache: [String: Tensor], changedNodes: Set<String>? = nil) throws -> (outputs: [String: Tensor], executed: [Int]) {
        var changed: [String: Tensor] = [:]
        var executed: [Int] = []
        for (i, node) in plan.enumerated() {
            let own = changedNodes.map { $0.contains(node.name) } ?? (overrides[node.name] != nil)
            let dirty = own || node.inputs.contains { !$0.isEmpty && changed[$0] != nil }
            guard dirty else { continue }
            let ins: [Tensor?] = try node.inputs.map { name in
                if name.isEmpty { return nil }
                if let t = changed[name] ?? cache[name] ?? constants[name] { return t }
                throw RuntimeError.missingValue(name: name, node: node.name)
            }
            let outs = try execute(node: node, index: i, inputs: ins)
            for (name, t) in zip(node.outputs, outs) where !name.isEmpty { changed[name] = t }
            executed.append(i)
        }
        var result: [String: Tensor] = [:]
        for o in graph.outputs {
            guard let t = changed[o.name] ?? cache[o.name] ?? constants[o.name] else {
                throw RuntimeError.missingValue(name: o.name, node: "graph output")
            }
            result[o.name] = t.materialized()
        }
        return (result, executed)
    }
}
