import Foundation
import ONNX

/// Where a run's time goes, per node: what `mpq profile` prints.
public struct NodeProfile: Codable, Equatable, Sendable {
    public var name: String
    public var opType: String
    /// Seconds over the timed runs, as the profile's `RunStatistic` summarises them.
    public var seconds: Double
    public var macs: Int
}

/// How timed runs are summarised. The median is the typical run. The minimum is the run least
/// disturbed by the rest of the machine: on a shared host whose neighbours slow every core for
/// seconds at a time, minima are what compares with another runtime's minima (ONNX Runtime's
/// profiler, timed the same way), and a node's minimum is its own best run (the nodes' minima
/// add up to no more than the fastest run).
public enum RunStatistic: String, Codable, CaseIterable, Sendable {
    case median, min

    public func of(_ values: [Double]) -> Double {
        switch self {
        case .median:
            let v = values.sorted()
            return v.isEmpty ? 0 : (v.count % 2 == 1 ? v[v.count / 2] : (v[v.count / 2 - 1] + v[v.count / 2]) / 2)
        case .min: return values.min() ?? 0
        }
    }
}

extension Session {
    /// Times every plan node over `runs` plain runs of `feeds` (after one warm-up) with the
    /// current overrides (INT8 layers included), as the runs execute them: image chains, the
    /// blocked layout and every fusion on (`RunTimer`). A node's time is the wall time from the
    /// previous node's end to its own end: its kernel plus resolving its inputs and freeing what
    /// it was the last to read; a chain's wall time is split over its nodes by their time inside
    /// it. A fused node shows 0 ms, its time on the node the fusion runs as (a SiLU's Sigmoid
    /// and Mul inside the Conv's). MACs come from one observed run (every node's shapes).
    /// Returns nodes in execution order, each with its median (or `statistic`) over the runs.
    /// `progress` hears (runs done, runs in all) after every timed run.
    public func profile(_ feeds: [String: Tensor], runs: Int, statistic: RunStatistic = .median,
                        progress: ((Int, Int) -> Void)? = nil) throws -> [NodeProfile] {
        var macs = [Int](repeating: 0, count: plan.count)
        _ = try run(feeds, keep: [], fusing: true, observeCodes: true) { node, ins, outs in
            if let i = self.planIndex[node.name] {
                macs[i] = Layers.macs(node, inputShapes: ins.map { $0?.shape }, outputShapes: outs.map(\.shape))
            }
        }
        _ = try run(feeds)    // the warm-up, as the timed runs go
        let timer = RunTimer(nodes: plan.count)
        runTimer = timer
        defer { runTimer = nil }
        var samples = [[Double]](repeating: [], count: plan.count)
        let total = max(1, runs)
        for run in 1...total {
            timer.reset()
            _ = try self.run(feeds)
            for i in plan.indices { samples[i].append(Double(timer.nanos[i]) / 1e9) }
            progress?(run, total)
        }
        return plan.enumerated().map { i, node in
            NodeProfile(name: node.name, opType: node.opType, seconds: statistic.of(samples[i]), macs: macs[i])
        }
    }

    /// Median (or `statistic`) seconds of `runs` plain runs of `feeds` after one warm-up: image
    /// chains, the blocked layout and every fusion on, as `run` goes (and as `profile` times its
    /// nodes; the median run and the nodes' medians need not add up exactly).
    public func timeRuns(_ feeds: [String: Tensor], runs: Int, statistic: RunStatistic = .median) throws -> Double {
        _ = try run(feeds)
        var samples: [Double] = []
        for _ in 0..<max(1, runs) {
            let start = DispatchTime.now().uptimeNanoseconds
            _ = try run(feeds)
            samples.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        return statistic.of(samples)
    }
}
