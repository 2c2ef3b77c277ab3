import Foundation
import ONNX

/// Where a run's time goes, per node: what `mpq profile` prints.
public struct NodeProfile: Codable, Equatable, Sendable {
    public var name: String
    public var opType: String
    /// Median seconds over the timed runs.
    public var seconds: Double
    public var macs: Int
}

extension Session {
    /// Times every plan node over `runs` runs of `feeds` (after one warm-up run) with the
    /// current overrides (INT8 layers included). A node's time is the wall time from the
    /// previous node's end to its own end: its kernel plus resolving its inputs and freeing
    /// what it was the last to read. Fusions run as in a plain run (a SiLU's Sigmoid and Mul show
    /// 0 ms, their time inside the Conv's). Returns nodes in execution order, each with its median.
    /// `progress` hears (runs done, runs in all) after every timed run.
    public func profile(_ feeds: [String: Tensor], runs: Int, progress: ((Int, Int) -> Void)? = nil) throws -> [NodeProfile] {
        var samples = [[Double]](repeating: [], count: plan.count)
        var macs = [Int](repeating: 0, count: plan.count)
        let index = Dictionary(uniqueKeysWithValues: plan.enumerated().map { ($0.element.name, $0.offset) })
        for run in 0...max(1, runs) {
            var last = DispatchTime.now().uptimeNanoseconds
            _ = try self.run(feeds, keep: [], fusing: true, observeCodes: true) { node, ins, outs in
                let now = DispatchTime.now().uptimeNanoseconds
                if run > 0, let i = index[node.name] {
                    samples[i].append(Double(now - last) / 1e9)
                    if run == 1 { macs[i] = Layers.macs(node, inputShapes: ins.map { $0?.shape }, outputShapes: outs.map(\.shape)) }
                }
                last = DispatchTime.now().uptimeNanoseconds
            }
            if run > 0 { progress?(run, max(1, runs)) }
        }
        return plan.enumerated().map { i, node in
            NodeProfile(name: node.name, opType: node.opType, seconds: Self.median(samples[i]), macs: macs[i])
        }
    }

    /// Median seconds of `runs` plain runs of `feeds` after one warm-up: image chains, the
    /// blocked layout and every fusion on, as `run` goes (`profile` observes every node and so
    /// runs none of them; on a chained CNN its nodes sum to more than this).
    public func timeRuns(_ feeds: [String: Tensor], runs: Int) throws -> Double {
        _ = try run(feeds)
        var samples: [Double] = []
        for _ in 0..<max(1, runs) {
            let start = DispatchTime.now().uptimeNanoseconds
            _ = try run(feeds)
            samples.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        return Self.median(samples)
    }

    static func median(_ values: [Double]) -> Double {
        let s = values.sorted()
        return s.isEmpty ? 0 : (s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2)
    }
}
