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
    public let data: Dataset
    public let metric: Metric
    public let batchSize: Int
    public let fp32Outputs: Outputs
    public let fp32Score: Double
    /// Per-sample FP32 points, for paired statistics.
    public let fp32Points: [Double]
    /// Applied to every batch's output before scoring (pooling token embeddings).
    public let transform: OutputTransform
    /// Post-processing of a detector's output (detection metrics only, docs/detection.md).
    public let detection: DetectionOptions
    private let truth: DetectionTruth?
    public private(set) var fullModelEquivalents: Double = 0
    public private(set) var evaluations = 0
    public private(set) var cacheBytes = 0
    /// z of the one-sided early-rejection test (docs/search.md).
    public var rejectionZ = 3.0
    /// No rejection before this many samples.
    public var minSamplesBeforeRejection = 100

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

    /// `cacheLimitBytes` bounds the cached activations in memory (`cache`, when given,
    /// replaces it and may add a disk spill); batches beyond the caches run in full.
    public init(runtime: MixedPrecisionRuntime, data: Dataset, metric: Metric, batchSize: Int = 64,
                cacheLimitBytes: Int = 2 << 30, cache: ActivationCacheOptions? = nil, transform: OutputTransform = .identity,
                detection: DetectionOptions = DetectionOptions(),
                progress: ((Int, Int) -> Void)? = nil) throws {
        if metric.needsLabels && data.labels == nil { throw MetricError.missingLabels(metric: metric.rawValue, path: data.path) }
        self.detection = detection
        truth = metric == .map50 || metric == .map50_95 ? try DetectionTruth(dataset: data) : nil
        try transform.check(data)
        self.transform = transform
        self.runtime = runtime
        self.data = data
        self.metric = metric
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
        var values: [Float] = []
        var width = 0
        var costs = [Double](repeating: 0, count: session.plan.count)
        let index = Dictionary(uniqueKeysWithValues: session.plan.enumerated().map { ($0.element.name, $0.offset) })
        let output = session.graph.outputs[0].name
        for (b, r) in batches.enumerated() {
            var all: [String: Tensor] = data.batch(r)
            let graphOutputs = try session.run(all) { node, ins, outs in
                for (name, t) in zip(node.outputs, outs) where !name.isEmpty { filler.observe(name, t, into: &all) }
                if b == 0, let i = index[node.name] {
                    costs[i] = Double(max(Layers.macs(node, inputShapes: ins.map { $0?.shape }, outputShapes: outs.map(\.shape)),
                                          outs.map(\.count).reduce(0, +)))
                }
            }
            guard let raw = graphOutputs[output] ?? all[output] else { throw MetricError.badOutput(output: output, reason: "not produced") }
            var y = try transform.apply(raw, dataset: data, range: r)
            if metric.isDetection { y = try detection.decode(y) }
            width = y.count / max(r.count, 1)
            if b == 0 { try checkLabels(metric, labels: data.labels, classes: width, path: data.path, output: output) }
            values += y.asFloats
            if b == 0 { filler.chooseWhatToKeep(nodeCost: costs, firstBatchRows: r.count) }
            try activations.store(all, base: .fp32, batch: b)
            progress?(r.upperBound, data.count)
        }
        self.cacheBytes = activations.statistics.memoryBytes + activations.statistics.diskBytes
        self.nodeCost = costs
        self.totalCost = max(costs.reduce(0, +), 1)
        fp32Outputs = Outputs(values: values, rows: data.count, width: width)
        fp32Points = sampleScores(metric, outputs: fp32Outputs, labels: data.labels, reference: fp32Outputs).map { $0 * metric.pointsPerSample }
        fp32Score = metric.isDetection ? DetectionMetrics.score(metric, outputs: fp32Outputs, reference: fp32Outputs, truth: truth)
            : fp32Points.reduce(0, +) / Double(max(fp32Points.count, 1))
        fullModelEquivalents = 1
    }

    static func key(_ map: PrecisionMap) -> String { map.int8Layers.joined(separator: "\u{1}") }

    /// Scores `map`. With `rejectAbove` (a budget in points), stops as soon as the drop is
    /// clearly larger than it (per-sample metrics only: retrieval is scored on the full split).
    public func evaluate(_ map: PrecisionMap, rejectAbove budget: Double? = nil, keepOutputs: Bool = false) throws -> (Evaluation, Outputs?) {
        let key = Self.key(map)
        if !keepOutputs, let m = memo[key], m.complete || (budget != nil && m.drop > budget!) { return (m, nil) }
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
        var values: [Float] = []
        values.reserveCapacity(fp32Outputs.values.count)
        var candPoints: [Double] = []
        var done = 0
        var complete = true
        // Re-execute from whichever cached run differs from this map later in the graph.
        let order = Dictionary(uniqueKeysWithValues: runtime.session.plan.enumerated().map { ($0.element.name, $0.offset) })
        func firstChange(_ s: Set<String>) -> Int { s.map { order[$0] ?? 0 }.min() ?? Int.max }
        let useInt8Base = activations.has(.int8) && firstChange(int8Changed) > firstChange(fp32Changed)
        for (b, r) in batches.enumerated() {
            var y: Tensor
            if buildInt8Cache {
                let (outs, values) = try activations.runKeeping(runtime.session, feeds: data.batch(r))
                y = outs[output]!
                try activations.store(values, base: .int8, batch: b)
                cost += Double(r.count) / Double(data.count)
            } else if let cache = try activations.load(useInt8Base ? .int8 : .fp32, batch: b) {
                let (outs, executed) = try activations.rerun(runtime.session, cached: cache, feeds: data.batch(r),
                                                             changed: useInt8Base ? int8Changed : fp32Changed)
                y = outs[output]!
                cost += executed.reduce(0) { $0 + nodeCost[$1] } / totalCost * Double(r.count) / Double(data.count)
            } else {
                y = try runtime.session.run(data.batch(r))[output]!
                cost += Double(r.count) / Double(data.count)
            }
            y = try transform.apply(y, dataset: data, range: r)
            if metric.isDetection { y = try detection.decode(y) }
            let batchOut = Outputs(values: y.asFloats, rows: r.count, width: fp32Outputs.width)
            let refBatch = Outputs(values: Array(fp32Outputs.values[r.lowerBound * fp32Outputs.width..<r.upperBound * fp32Outputs.width]),
                                   rows: r.count, width: fp32Outputs.width)
            if metric.isPerSample {
                candPoints += sampleScores(metric, outputs: batchOut, labels: data.labels(r), reference: refBatch).map { $0 * metric.pointsPerSample }
            }
            values += batchOut.values
            done = r.upperBound
            if let budget, metric.isPerSample, done < data.count, done >= minSamplesBeforeRejection,
               clearlyOver(budget: budget, fp32: fp32Points[0..<done], candidate: candPoints) {
                complete = false
                break
            }
        }
        if buildInt8Cache && !complete { activations.discard(.int8) }
        cacheBytes = activations.statistics.memoryBytes + activations.statistics.diskBytes
        if !metric.isPerSample {
            candPoints = sampleScores(metric, outputs: Outputs(values: values, rows: data.count, width: fp32Outputs.width),
                                      labels: data.labels, reference: fp32Outputs).map { $0 * metric.pointsPerSample }
        }
        var score = candPoints.reduce(0, +) / Double(max(candPoints.count, 1))
        var fp = metric.isDetection ? fp32Score : fp32Points[0..<done].reduce(0, +) / Double(max(done, 1))
        if metric.isDetection {
            score = DetectionMetrics.score(metric, outputs: Outputs(values: values, rows: data.count, width: fp32Outputs.width),
                                           reference: fp32Outputs, truth: truth)
            fp = fp32Score
        }
        var eval = Evaluation(score: score, drop: fp - score, samples: done, complete: complete, sqnr: nil, kl: nil)
        var outs: Outputs?
        if complete {
            let o = Outputs(values: values, rows: data.count, width: fp32Outputs.width)
            eval.sqnr = outputSQNR(reference: fp32Outputs, candidate: o)
            eval.kl = meanSoftmaxKL(reference: fp32Outputs, candidate: o)
            if keepOutputs { outs = o }
        }
        memo[key] = eval
        fullModelEquivalents += cost
        try store?.record(map.int8Layers, rejectAbove: budget, evaluation: eval, cost: cost)
        return (eval, outs)
    }

    /// The one-sided test of docs/search.md: the mean paired drop minus z standard errors
    /// is above the budget.
    func clearlyOver(budget: Double, fp32: ArraySlice<Double>, candidate: [Double]) -> Bool {
        let n = Double(candidate.count)
        let d = zip(fp32, candidate).map { $0 - $1 }
        let mean = d.reduce(0, +) / n
        let variance = d.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / max(n - 1, 1)
        return mean - rejectionZ * (variance / n).squareRoot() > budget
    }
}

/// 10 log10(signal power / noise power) of the candidate's outputs against FP32.
public func outputSQNR(reference: Outputs, candidate: Outputs) -> Double {
    var signal = 0.0, noise = 0.0
    for (r, c) in zip(reference.values, candidate.values) {
        signal += Double(r) * Double(r); noise += Double(r - c) * Double(r - c)
    }
    if noise == 0 { return 200 }      // identical: report a large finite value, JSON has no infinity
    return 10 * log10(max(signal, 1e-30) / noise)
}

/// Mean over samples of KL(softmax(reference) || softmax(candidate)).
public func meanSoftmaxKL(reference: Outputs, candidate: Outputs) -> Double {
    guard reference.rows > 0, reference.width > 1 else { return 0 }
    func softmax(_ v: ArraySlice<Float>) -> [Double] {
        let m = Double(v.max() ?? 0)
        let e = v.map { exp(Double($0) - m) }
        let s = e.reduce(0, +)
        return e.map { $0 / s }
    }
    var total = 0.0
    for i in 0..<reference.rows {
        let p = softmax(reference.row(i)), q = softmax(candidate.row(i))
        for (a, b) in zip(p, q) where a > 0 { total += a * log(a / max(b, 1e-300)) }
    }
    return total / Double(reference.rows)
}
