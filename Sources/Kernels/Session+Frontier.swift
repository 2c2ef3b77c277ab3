import ONNX

/// Re-execution from a partial cache (docs/caching.md). When every activation of a batch
/// does not fit in memory, the search keeps only the values that cross chosen cut points
/// of the plan (a frontier); a candidate then recomputes the few clean nodes between the
/// nearest cut and its first change, plus everything downstream of the change.
extension Session {
    /// The values a run that starts at plan node `position` needs from before it: graph
    /// inputs and outputs of earlier nodes that a node at or after `position` reads, plus
    /// graph outputs already produced. Constants are never part of it.
    public func liveValues(at position: Int) -> Set<String> {
        var produced = Set(graph.inputs.map(\.name).filter { constants[$0] == nil })
        for node in plan[..<min(position, plan.count)] { for o in node.outputs where !o.isEmpty { produced.insert(o) } }
        var live = Set<String>()
        for node in plan[min(position, plan.count)...] {
            for v in node.inputs where !v.isEmpty && produced.contains(v) { live.insert(v) }
        }
        for o in graph.outputs where produced.contains(o.name) { live.insert(o.name) }
        return live
    }

    /// The plan indices a run must execute when the values in `available` are known from a
    /// run of another map and `changedNodes` behave differently now: a node runs when one of
    /// its outputs is needed (by the graph outputs or by a node that runs) and that output is
    /// dirty (the node changed or reads a dirty value) or not available. Everything else is
    /// read from the cache, so the result equals a full run bit for bit.
    public func frontierSchedule(available: Set<String>, changedNodes: Set<String>) -> [Int] {
        var dirtyValues = Set<String>()
        var dirty = [Bool](repeating: false, count: plan.count)
        for (i, node) in plan.enumerated() {
            if changedNodes.contains(node.name) || node.inputs.contains(where: { !$0.isEmpty && dirtyValues.contains($0) }) {
                dirty[i] = true
                for o in node.outputs where !o.isEmpty { dirtyValues.insert(o) }
            }
        }
        var required = Set(graph.outputs.map(\.name))
        var schedule: [Int] = []
        for i in plan.indices.reversed() {
            let node = plan[i]
            let needed = node.outputs.contains { !$0.isEmpty && required.contains($0) }
            guard needed, dirty[i] || node.outputs.contains(where: { !$0.isEmpty && required.contains($0) && !available.contains($0) })
            else { continue }
            schedule.append(i)
            for v in node.inputs where !v.isEmpty && constants[v] == nil { required.insert(v) }
        }
        return schedule.reversed()
    }

    /// Runs `schedule` (from `frontierSchedule`) with the current overrides, reading every
    /// value it does not compute from `cache`. Values are freed after their last reader in
    /// the schedule. Returns the graph outputs.
    public func runFrontier(cache: [String: Tensor], schedule: [Int]) throws -> [String: Tensor] {
        var lastRead: [String: Int] = [:]
        for (k, i) in schedule.enumerated() { for v in plan[i].inputs where !v.isEmpty { lastRead[v] = k } }
        let outputNames = Set(graph.outputs.map(\.name))
        var computed: [String: Tensor] = [:]
        for (k, i) in schedule.enumerated() {
            let node = plan[i]
            let ins: [Tensor?] = try node.inputs.map { name in
                if name.isEmpty { return nil }
                if let t = computed[name] ?? cache[name] ?? constants[name] { return t }
                throw RuntimeError.missingValue(name: name, node: node.name)
            }
            let outs = try execute(node: node, index: i, inputs: ins)
            for (name, t) in zip(node.outputs, outs) where !name.isEmpty { computed[name] = t }
            for v in node.inputs where !v.isEmpty && lastRead[v] == k && !outputNames.contains(v) { computed[v] = nil }
        }
        var result: [String: Tensor] = [:]
        for o in graph.outputs {
            guard let t = computed[o.name] ?? cache[o.name] ?? constants[o.name] else {
                throw RuntimeError.missingValue(name: o.name, node: "graph output")
            }
            result[o.name] = t.materialized()
        }
        return result
    }
}
