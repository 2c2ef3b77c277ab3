import Foundation
import Kernels
import ONNX

/// The score of one precision map on the search split.
public struct Evaluation: Codable, Equatable, Sendable {
    /// Score in points on the samples evaluated.
    public var score: Double
    /// FP32 score minus `score` on the same samples.
    public var drop: Double
    public var samples: Int
    /// False when the candidate was rejected early, its drop clearly over the budget.
    public var complete: Bool
    /// Output signal-to-quantization-noise ratio against FP32, in dB (complete runs only).
    public var sqnr: Double?
    /// Mean KL divergence of softmax(output) from the FP32 one (complete runs only).
    public var kl: Double?
    /// Early-rejected runs: the lower confidence bound on the drop (mean - z se) at the look
    /// that rejected. The rejection holds for every budget below it, and only those.
    public var rejectionBound: Double?
}

/// Scores precision maps on the search split, cheaply:
/// - FP32 activations of every batch are computed once and cached (up to a memory cap, then
///   a frontier of them and an optional disk spill: docs/caching.md); a candidate
///   re-executes only the nodes downstream of its INT8 layers;
/// - batch-wise early rejection stops a candidate whose drop is already clearly over the
///   budget (docs/search.md states the rule);
/// - results are memoized per map.
/// `fullModelEquivalents` counts the work the run used, in units of one full FP32 pass over the
/// split: an evaluation replayed from a `store` counts what it cost when it was computed, so a
/// resumed run reports the same numbers as an uninterrupted one.
public final class CandidateEvaluator {
    public let runtime: MixedPrecisionRuntime
    /// The search split in visiting order (`visitSeed`); fp32Outputs and kept outputs follow it.
    public let data: Dataset
    /// The metric (Scorer.swift).
    public let scorer: Scorer
    public let batchSize: Int
    /// The FP32 outputs kept per sample, on disk (RowSpool): each candidate reads back one
    /// batch of them at a time, so memory does not grow with the split (docs/scale.md).
    let reference: RowSpool
    /// The FP32 outputs of the first batch: what checks of the output's shape need.
    public let fp32Sample: Outputs
    /// Every FP32 output, read back whole: for tests and small sets.
    public var fp32Outputs: Outputs { get throws { try reference.all() } }
    /// The most output bytes held in memory at once by the reference pass and any evaluation
    /// so far (kept rows, the batch being scored and its reference rows): one or two batches
    /// for per-sample metrics, the whole split's kept rows (detections, pooled embeddings)
    /// for split-level ones. Tests check it stays bounded.
    public private(set) var peakRetainedOutputBytes = 0
    public let fp32Score: Double
    /// Per-sample FP32 points, for paired statistics.
    public let fp32Points: [Double]
    /// Applied to every batch's output before scoring (pooling token embeddings).
    public let transform: OutputTransform
    public private(set) var fullModelEquivalents: Double = 0
    public private(set) var evaluations = 0
    public private(set) var cacheBytes = 0
    /// Family-wise false-rejection rate of early rejection over all the looks of one
    /// evaluation (docs/search.md): 1 - Φ(3), the old single-look rate of a 3-sigma rule.
    public var rejectionAlpha = 0.00135
    /// No rejection before this many samples.
    public var minSamplesBeforeRejection = 100
    /// The looks early rejection may take: batch ends with at least
    /// `minSamplesBeforeRejection` samples scored and some left.
    public var rejectionLooks: Int {
        batches.filter { $0.upperBound >= minSamplesBeforeRejection && $0.upperBound < data.count }.count
    }
    /// z of the one-sided test at each look: Bonferroni over the looks, Φ⁻¹(1 - alpha / looks),
    /// so the chance of rejecting a candidate exactly at the budget stays under `rejectionAlpha`
    /// whatever the split size and batch size.
    public var rejectionZ: Double { Statistics.normalQuantile(1 - rejectionAlpha / Double(max(rejectionLooks, 1))) }
    /// Seed of the order the search split is visited in (per-sample metrics): a seeded
    /// shuffle, so a file sorted by class cannot front-load one class's errors. nil keeps
    /// the file's order.
    public let visitSeed: UInt64?

    private let batches: [Range<Int>]
    /// FP32 activations per batch, and all-INT8 ones built on the first all-INT8 evaluation:
    /// a map that is mostly INT8 re-executes only from its first FP32 layer on.
    let activations: ActivationCache
    let cacheLimit: Int
    /// How the activation caches served the candidates (hit rate, mode, bytes).
    public var cacheStatistics: CacheStatistics { activations.statistics }
    private var nodeCost: [Double] = []
    private var totalCost: Double = 1
    private var memo: [String: Evaluation] = [:]
    /// Saved evaluations (`--state`): replayed with their recorded cost instead of computed,
    /// and every computed one is added to it.
    public var store: EvaluationStore?

    /// A built-in metric with its detection options.
    public convenience init(runtime: MixedPrecisionRuntime, data: Dataset, metric: Metric, batchSize: Int = 64,
                            cacheLimitBytes: Int = 2 << 30, cache: ActivationCacheOptions? = nil,
                            transform: OutputTransform = .identity,
                            detection: DetectionOptions = DetectionOptions(), visitSeed: UInt64? = 0,
                            progress: ((Int, Int) -> Void)? = nil) throws {
        try self.init(runtime: runtime, data: data, scorer: metric.scorer(ScorerOptions(detection: detection)),
                      batchSize: batchSize, cacheLimitBytes: cacheLimitBytes, cache: cache, transform: transform,
                      visitSeed: visitSeed, progress: progress)
    }

    /// `cacheLimitBytes` bounds the cached activations in memory (`cache`, when given,
    /// replaces it and may add a disk spill); batches beyond the caches run in full.
    /// `visitSeed`: the seeded visiting order of the split (per-sample metrics); nil keeps the file's order.
    /// The caches are indexed by batch of the visiting order: the reference pass fills them
    /// from the shuffled split and every candidate reads them back over the same batches.
    public init(runtime: MixedPrecisionRuntime, data input: Dataset, scorer: Scorer, batchSize: Int = 64,
                cacheLimitBytes: Int = 2 << 30, cache: ActivationCacheOptions? = nil,
                transform: OutputTransform = .identity, visitSeed: UInt64? = 0,
                progress: ((Int, Int) -> Void)? = nil) throws {
        try scorer.validate(input)
        // Early rejection reads the first batches as a sample of the split: shuffle them
        // (per-sample metrics only: split-level ones are never cut short, and their
        // tie-breaks follow the file's order).
        let data = scorer.scoresBatchwise && visitSeed != nil && input.count > 1
            ? input.subset(SeededRandom(seed: visitSeed!).permutation(input.count), path: input.path) : input
        self.visitSeed = scorer.scoresBatchwise ? visitSeed : nil
        try transform.check(data)
        self.transform = transform
        self.runtime = runtime
        self.data = data
        self.scorer = scorer
        self.batchSize = max(1, batchSize)
        self.batches = data.batches(size: self.batchSize)
        let cacheOptions = cache ?? ActivationCacheOptions(memoryLimitBytes: cacheLimitBytes)
        self.cacheLimit = cacheOptions.memoryLimitBytes
        self.activations = ActivationCache(options: cacheOptions)
        let filler = CacheFiller(cache: activations, runtime: runtime, rows: data.count, firstBatchRows: batches.first?.count ?? 1)
        let session = runtime.session
        let saved = runtime.map
        try runtime.apply(runtime.allFP32)
        defer { try? runtime.apply(saved) }
        // One FP32 pass: reference outputs, per-node costs, and the activation caches.
        var spool: RowSpool?
        var sample: Outputs?
        var points: [Double] = []
        var peak = 0
        var costs = [Double](repeating: 0, count: session.plan.count)
        let index = Dictionary(uniqueKeysWithValues: session.plan.enumerated().map { ($0.element.name, $0.offset) })
        let output = session.graph.outputs[0].name
        let graphOutputNames = session.graph.outputs.map(\.name)
        for (b, r) in batches.enumerated() {
            var all: [String: Tensor] = data.batch(r)
            let produced = try session.run(all) { node, ins, outs in
                for (name, t) in zip(node.outputs, outs) where !name.isEmpty { filler.observe(name, t, into: &all) }
                if b == 0, let i = index[node.name] {
                    costs[i] = Double(max(Layers.macs(node, inputShapes: ins.map { $0?.shape }, outputShapes: outs.map(\.shape)),
                                          outs.map(\.count).reduce(0, +)))
                }
            }
            // The run returns every graph output; in frontier mode `all` holds only the kept values.
            guard produced[output] ?? all[output] != nil else { throw MetricError.badOutput(output: output, reason: "not produced") }
            let outs = Dictionary(uniqueKeysWithValues: graphOutputNames.compactMap { n in (produced[n] ?? all[n]).map { (n, $0) } })
            let y = try scorer.rows(outs, output: output, transform: transform, data: data, range: r)
            let width = y.count / max(r.count, 1)
            let batch = Outputs(values: y.asFloats, rows: r.count, width: width, sampleShape: Array(y.shape.dropFirst()))
            if b == 0 {
                // The file's rows, so an error names the row as the file numbers it.
                try scorer.check(batch, data: input, output: output)
                sample = batch
                spool = try RowSpool(width: width, sampleShape: batch.sampleShape)
            }
            try spool!.append(batch.values)
            if scorer.scoresBatchwise {
                points += try scorer.score(batch, reference: batch, data: data, range: r).points ?? []
            }
            peak = max(peak, batch.values.count * MemoryLayout<Float>.size)
            if b == 0 { filler.chooseWhatToKeep(nodeCost: costs, firstBatchRows: r.count) }
            try activations.store(all, base: .fp32, batch: b)
            progress?(r.upperBound, data.count)
        }
        if spool == nil { spool = try RowSpool(width: 0, sampleShape: [0]) }
        self.reference = spool!
        self.fp32Sample = sample ?? Outputs(values: [], rows: 0, width: 0)
        self.cacheBytes = activations.statistics.memoryBytes + activations.statistics.diskBytes
        self.nodeCost = costs
        self.totalCost = max(costs.reduce(0, +), 1)
        if scorer.scoresBatchwise {
            fp32Points = points
            fp32Score = Statistics.mean(points)
        } else {
            // Split-level metrics score the whole split at once (read back from disk, or streamed).
            let fp32 = try scorer.score(spooled: reference, reference: reference, data: data, range: 0..<data.count)
            if !scorer.scoresFromDisk { peak = max(peak, reference.bytes) }
            fp32Points = fp32.points ?? []
            fp32Score = fp32.score
        }
        peakRetainedOutputBytes = peak
        fullModelEquivalents = 1
    }

    static func key(_ map: PrecisionMap) -> String { map.int8Layers.joined(separator: "\u{1}") }

    /// Scores `map`. With `rejectAbove` (a budget in points), stops as soon as the drop is
    /// clearly larger than it (per-sample metrics only: retrieval is scored on the full split).
    public func evaluate(_ map: PrecisionMap, rejectAbove budget: Double? = nil, keepOutputs: Bool = false) throws -> (Evaluation, Outputs?) {
        let key = Self.key(map)
        // A rejection is reused only for budgets below the bound that rejected it: its
        // partial drop alone is no evidence against a larger budget (sweep).
        if !keepOutputs, let m = memo[key], m.complete || (budget != nil && (m.rejectionBound ?? -Double.infinity) > budget!) { return (m, nil) }
        let fp32Changed = runtime.changedNodes(from: runtime.allFP32, to: map)
        let int8Changed = runtime.changedNodes(from: runtime.allInt8, to: map)
        let buildInt8Cache = !activations.has(.int8) && int8Changed.isEmpty
        // The all-INT8 map that builds the INT8 activation caches always runs, so later
        // candidates cost what they would have cost in an uninterrupted run.
        if !keepOutputs, !buildInt8Cache, let r = store?.replay(map.int8Layers, rejectAbove: budget) {
            evaluations += 1
            fullModelEquivalents += r.cost
            memo[key] = r.evaluation
            return (r.evaluation, nil)
        }
        try runtime.apply(map)
        evaluations += 1
        var cost = 0.0
        let output = runtime.session.graph.outputs[0].name
        let width = reference.width, shape = reference.sampleShape
        // A per-sample metric keeps its points and the running SQNR/KL; a split-level one
        // spools the rows to disk for one score of the whole split; `keepOutputs` keeps them.
        let keep = keepOutputs
        let spool = scorer.scoresBatchwise ? nil : try RowSpool(width: width, sampleShape: shape)
        var values: [Float] = []
        var comparison = OutputComparison()
        var candPoints: [Double] = []
        var done = 0
        var complete = true
        var bound: Double?
        let z = rejectionZ
        // Re-execute from whichever cached run differs from this map later in the graph.
        let order = Dictionary(uniqueKeysWithValues: runtime.session.plan.enumerated().map { ($0.element.name, $0.offset) })
        func firstChange(_ s: Set<String>) -> Int { s.map { order[$0] ?? 0 }.min() ?? Int.max }
        let useInt8Base = activations.has(.int8) && firstChange(int8Changed) > firstChange(fp32Changed)
        for (b, r) in batches.enumerated() {
            var y: [String: Tensor]
            if buildInt8Cache {
                let (outs, values) = try activations.runKeeping(runtime.session, feeds: data.batch(r))
                y = outs
                try activations.store(values, base: .int8, batch: b)
                cost += Double(r.count) / Double(data.count)
            } else if let cache = try activations.load(useInt8Base ? .int8 : .fp32, batch: b) {
                let (outs, executed) = try activations.rerun(runtime.session, cached: cache, feeds: data.batch(r),
                                                             changed: useInt8Base ? int8Changed : fp32Changed)
                y = outs
                cost += executed.reduce(0) { $0 + nodeCost[$1] } / totalCost * Double(r.count) / Double(data.count)
            } else {
                y = try runtime.session.run(data.batch(r))
                cost += Double(r.count) / Double(data.count)
            }
            let rows = try scorer.rows(y, output: output, transform: transform, data: data, range: r)
            let batchOut = Outputs(values: rows.asFloats, rows: r.count, width: width, sampleShape: shape)
            let refBatch = try reference.outputs(r)
            if scorer.scoresBatchwise {
                candPoints += try scorer.score(batchOut, reference: refBatch, data: data, range: r).points ?? []
            }
            comparison.add(reference: refBatch, candidate: batchOut)
            try spool?.append(batchOut.values)
            if keep { values += batchOut.values }
            peakRetainedOutputBytes = max(peakRetainedOutputBytes,
                                          (values.count + (keep ? 0 : batchOut.values.count) + refBatch.values.count) * MemoryLayout<Float>.size)
            done = r.upperBound
            if let budget, scorer.scoresBatchwise, !fp32Points.isEmpty, done < data.count, done >= minSamplesBeforeRejection {
                let lower = lowerBound(fp32: fp32Points[0..<done], candidate: candPoints, z: z)
                if lower > budget { complete = false; bound = lower; break }
            }
        }
        if buildInt8Cache && !complete { activations.discard(.int8) }
        cacheBytes = activations.statistics.memoryBytes + activations.statistics.diskBytes
        var score = candPoints.reduce(0, +) / Double(max(candPoints.count, 1))
        var fp = fp32Points[0..<min(done, fp32Points.count)].reduce(0, +) / Double(max(done, 1))
        if !scorer.scoresBatchwise {
            if !scorer.scoresFromDisk {
                peakRetainedOutputBytes = max(peakRetainedOutputBytes, values.count * MemoryLayout<Float>.size + spool!.bytes + reference.bytes)
            }
            let whole = try scorer.score(spooled: spool!, reference: reference, data: data, range: 0..<data.count)
            score = whole.score
            // A split-level score is compared with FP32's split-level score.
            if whole.points == nil || fp32Points.isEmpty { fp = fp32Score }
        }
        var eval = Evaluation(score: score, drop: fp - score, samples: done, complete: complete, sqnr: nil, kl: nil,
                              rejectionBound: bound)
        var outs: Outputs?
        if complete {
            eval.sqnr = comparison.sqnr
            eval.kl = comparison.meanKL
            if keepOutputs { outs = Outputs(values: values, rows: data.count, width: width, sampleShape: shape) }
        }
        memo[key] = eval
        fullModelEquivalents += cost
        try store?.record(map.int8Layers, rejectAbove: budget, evaluation: eval, cost: cost)
        return (eval, outs)
    }

    /// The one-sided bound of docs/search.md: the mean paired drop minus z standard errors;
    /// a candidate is rejected when it is above the budget.
    func lowerBound(fp32: ArraySlice<Double>, candidate: [Double], z: Double) -> Double {
        let n = Double(candidate.count)
        let d = zip(fp32, candidate).map { $0 - $1 }
        let mean = d.reduce(0, +) / n
        let variance = d.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / max(n - 1, 1)
        return mean - z * (variance / n).squareRoot()
    }
}
