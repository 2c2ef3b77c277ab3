import Foundation
import Kernels
import ONNX

/// Chooses which activations the evaluator caches when not all of them fit (docs/caching.md).
///
/// A candidate that changes nodes from plan position `s` on must re-execute everything
/// downstream of them whatever is cached; what a cache saves is the prefix before `s`.
/// Storing the values live at a cut `p <= s` (the frontier at `p`) turns that prefix into
/// the clean nodes between `p` and `s`. The cut candidates are the positions where the
/// sensitivity analysis' candidates start (one layer INT8 in FP32, one layer FP32 in INT8);
/// a greedy pass adds the cut with the best saved cost per extra byte until the byte
/// budget per sample is spent. Searches reuse the same cuts: any map starts re-executing
/// at the nearest cut before its first change.
struct FrontierPlanner {
    let session: Session
    /// Plan positions where candidate runs start, ascending (deduplicated).
    let starts: [Int]
    /// For each start, how many single-layer candidates start there (the weight of its cost).
    let weights: [Int: Int]
    /// Non-feed values live at each candidate cut.
    let live: [Int: Set<String>]

    init(runtime: MixedPrecisionRuntime) {
        session = runtime.session
        let index = Dictionary(uniqueKeysWithValues: session.plan.enumerated().map { ($0.element.name, $0.offset) })
        var weights: [Int: Int] = [:]
        for name in runtime.layerNames {
            var alone = runtime.allFP32
            alone.layers[name] = .int8
            var allBut = runtime.allInt8
            allBut.layers[name] = .fp32
            for changed in [runtime.changedNodes(from: runtime.allFP32, to: alone),
                            runtime.changedNodes(from: runtime.allInt8, to: allBut)] {
                guard let s = changed.compactMap({ index[$0] }).min() else { continue }
                weights[s, default: 0] += 1
            }
        }
        self.weights = weights
        starts = weights.keys.sorted()
        let feeds = Set(session.graph.inputs.map(\.name))
        var live: [Int: Set<String>] = [:]
        for s in starts { live[s] = session.liveValues(at: s).subtracting(feeds) }
        self.live = live
    }

    /// Every value some cut could keep: what the first batch holds on to while the
    /// evaluator does not yet know which cuts fit.
    var union: Set<String> { live.values.reduce(into: Set<String>()) { $0.formUnion($1) } }

    /// The values to keep and the cuts chosen, given the cost of each plan node, each value's
    /// bytes per sample, and the bytes per sample the caches may use.
    func select(nodeCost: [Double], bytesPerRow: [String: Double], capacityPerRow: Double) -> (keep: Set<String>, cuts: [Int]) {
        var prefix = [0.0]
        for c in nodeCost { prefix.append(prefix.last! + c) }
        // Recomputation before the changes, summed over the single-layer candidates.
        func cost(_ cuts: [Int]) -> Double {
            starts.reduce(0) { total, s in
                let p = cuts.filter { $0 <= s }.max() ?? 0
                return total + Double(weights[s]!) * (prefix[s] - prefix[p])
            }
        }
        var chosen: [Int] = []
        var kept = Set<String>()
        var bytes = 0.0
        var current = cost(chosen)
        while true {
            var best: (ratio: Double, cut: Int, extra: Double, cost: Double)?
            for p in starts where !chosen.contains(p) && p > 0 {
                let extra = live[p]!.subtracting(kept).reduce(0) { $0 + (bytesPerRow[$1] ?? 0) }
                guard bytes + extra <= capacityPerRow else { continue }
                let c = cost(chosen + [p])
                let gain = current - c
                guard gain > 0 else { continue }
                let ratio = gain / max(extra, 1)
                if best == nil || ratio > best!.ratio { best = (ratio, p, extra, c) }
            }
            guard let b = best else { break }
            chosen.append(b.cut); kept.formUnion(live[b.cut]!); bytes += b.extra; current = b.cost
        }
        if chosen.isEmpty {
            // Not even one cut fits every batch: keep the cheapest useful one, so at least
            // the batches that fit are cached (the others run in full).
            let ranked = starts.filter { $0 > 0 }.map { p -> (Double, Int) in
                let extra = live[p]!.reduce(0) { $0 + (bytesPerRow[$1] ?? 0) }
                return ((current - cost([p])) / max(extra, 1), p)
            }
            if let p = ranked.filter({ $0.0 > 0 }).max(by: { $0.0 < $1.0 || ($0.0 == $1.0 && $0.1 > $1.1) })?.1 {
                chosen = [p]; kept = live[p]!
            }
        }
        return (kept, chosen.sorted())
    }
}

/// Fills the FP32 cache during the evaluator's reference pass. The first batch holds every
/// value while caching all of them could still fit (two bases, every batch, in memory);
/// past that it keeps only values some cut could need, and after the first batch the
/// planner picks the cuts: later batches keep exactly those values.
final class CacheFiller {
    let cache: ActivationCache
    let runtime: MixedPrecisionRuntime
    let rows: Int
    private var decided = false
    private var union: Set<String>?
    private var planner: FrontierPlanner?
    private var firstBatchBytes: [String: Int] = [:]
    private var total = 0
    private var allLimit: Double

    init(cache: ActivationCache, runtime: MixedPrecisionRuntime, rows: Int, firstBatchRows: Int) {
        self.cache = cache; self.runtime = runtime; self.rows = max(rows, 1)
        // Everything fits when two copies of every batch do.
        allLimit = Double(cache.options.memoryLimitBytes) * Double(max(firstBatchRows, 1)) / Double(2 * max(rows, 1))
    }

    func observe(_ name: String, _ t: Tensor, into all: inout [String: Tensor]) {
        if decided {
            if cache.keep?.contains(name) ?? true { all[name] = t }
            return
        }
        let size = ActivationCache.bytes(t)
        firstBatchBytes[name] = size
        total += size
        if union == nil && Double(total) > allLimit {
            let p = FrontierPlanner(runtime: runtime)
            let u = p.union
            planner = p
            let feeds = Set(runtime.session.graph.inputs.map(\.name))
            all = all.filter { u.contains($0.key) || feeds.contains($0.key) }
            union = u
        }
        if union?.contains(name) ?? true { all[name] = t }
    }

    /// After the first batch: every value (it all fits) or a frontier within the budget.
    func chooseWhatToKeep(nodeCost: [Double], firstBatchRows: Int) {
        defer { decided = true }
        guard let planner else { return }
        let perRow = firstBatchBytes.mapValues { Double($0) / Double(max(firstBatchRows, 1)) }
        let o = cache.options
        // Batches are stored whole, memory first: with a disk tier up to one batch's worth of
        // memory can stay unused (the batch that did not fit went to disk), so the budget
        // leaves room for one more batch; otherwise the all-INT8 copy may find no room.
        let spare = o.directory == nil ? 0 : firstBatchRows
        let capacity = Double(o.memoryLimitBytes + (o.directory == nil ? 0 : o.diskLimitBytes)) / Double(2 * rows + spare)
        let (keep, cuts) = planner.select(nodeCost: nodeCost, bytesPerRow: perRow, capacityPerRow: capacity)
        cache.keep = keep
        cache.markFrontier(cuts: cuts.count)
    }
}
