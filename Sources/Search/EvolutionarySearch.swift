import Foundation
import Kernels

/// Settings of the genetic algorithm (docs/search.md, "Evolutionary").
public struct EvolutionaryOptions: Codable, Equatable, Sendable {
    public var populationSize = 24
    /// Generations after the initial population, at most.
    public var generations = 30
    /// Wall-clock limit; checked between evaluations. A run it cuts short is not reproducible.
    public var timeLimitSeconds: Double?
    /// Stop when the best feasible objective has not improved for this many generations.
    public var stagnationGenerations = 8
    public var tournamentSize = 3
    /// Probability that a child is a uniform crossover of two parents rather than a copy of one.
    public var crossoverRate = 0.9
    /// Mean per-gene mutation probability; nil means 1 / number of layers.
    public var mutationRate: Double?
    /// The best individuals copied unchanged into the next generation.
    public var eliteCount = 2
    public var seed: UInt64 = 0

    public init(populationSize: Int = 24, generations: Int = 30, timeLimitSeconds: Double? = nil,
                stagnationGenerations: Int = 8, tournamentSize: Int = 3, crossoverRate: Double = 0.9,
                mutationRate: Double? = nil, eliteCount: Int = 2, seed: UInt64 = 0) {
        self.populationSize = populationSize; self.generations = generations; self.timeLimitSeconds = timeLimitSeconds
        self.stagnationGenerations = stagnationGenerations; self.tournamentSize = tournamentSize
        self.crossoverRate = crossoverRate; self.mutationRate = mutationRate; self.eliteCount = eliteCount; self.seed = seed
    }
}

/// Why the GA stopped.
public enum EvolutionaryStop: String, Codable, Sendable {
    case generations, stagnation, timeLimit = "time-limit"
}

/// The GA's answer: the best map as a `SearchResult`, and the Pareto front of every
/// complete evaluation it saw.
public struct EvolutionaryResult: Codable, Equatable, Sendable {
    public var search: SearchResult
    /// Non-dominated (drop, objective) points of all complete evaluations, sorted by objective.
    public var pareto: [ParetoPoint]
    public var seed: UInt64
    /// Generations run after the initial population.
    public var generations: Int
    /// Distinct maps evaluated.
    public var evaluatedMaps: Int
    public var stop: EvolutionaryStop
}

/// A genetic algorithm over arbitrary INT8/FP32 assignments of the runtime's layers:
/// tournament selection, uniform crossover, sensitivity-biased mutation, elitism. The
/// initial population holds the seeds (the greedy answer), all-INT8, the all-but-one maps
/// the sensitivity analysis found within budget, and random maps.
/// Feasible (complete and within budget) beats infeasible; among feasible the higher
/// objective wins, then the lower drop, then the smaller map key; among infeasible the
/// lower drop wins. All randomness comes from one `SeededRandom`, so the same seed and
/// inputs give the same result.
public struct EvolutionarySearch {
    public let evaluator: CandidateEvaluator
    public let sensitivity: SensitivityReport
    public let layers: [LayerInfo]
    public let objective: Objective
    public let options: EvolutionaryOptions

    public init(evaluator: CandidateEvaluator, sensitivity: SensitivityReport, layers: [LayerInfo],
                objective: Objective, options: EvolutionaryOptions = EvolutionaryOptions()) {
        self.evaluator = evaluator; self.sensitivity = sensitivity; self.layers = layers
        self.objective = objective; self.options = options
    }

    /// One evaluated genome.
    struct Individual {
        var genes: [Bool]           // true = INT8, in `runtime.layerNames` order
        var key: String
        var evaluation: Evaluation
        var objective: Double
        func feasible(_ budget: Double) -> Bool { evaluation.complete && evaluation.drop <= budget }
    }

    /// `a` is fitter than `b` under `budget` (a strict total order on distinct maps).
    static func fitter(_ a: Individual, _ b: Individual, budget: Double) -> Bool {
        let fa = a.feasible(budget), fb = b.feasible(budget)
        if fa != fb { return fa }
        if fa {
            if a.objective != b.objective { return a.objective > b.objective }
            if a.evaluation.drop != b.evaluation.drop { return a.evaluation.drop < b.evaluation.drop }
        } else {
            if a.evaluation.drop != b.evaluation.drop { return a.evaluation.drop < b.evaluation.drop }
            if a.objective != b.objective { return a.objective > b.objective }
        }
        return a.key < b.key
    }

    /// Per-layer mutation weights in `runtime.layerNames` order: `toFP32` grows with the
    /// layer's sensitivity (max of recovery and alone-INT8 drop, normalised to [0, 1]);
    /// `toInt8` grows with its objective benefit and shrinks with its sensitivity. Both lie
    /// in [0.2, 1.8] and average about 1, so the mean flip rate stays near the base rate.
    func mutationWeights(names: [String]) -> (toFP32: [Double], toInt8: [Double]) {
        let sens = Dictionary(uniqueKeysWithValues: sensitivity.layers.map { ($0.name, max(0, $0.recovery, $0.aloneInt8.drop)) })
        let ben = Dictionary(uniqueKeysWithValues: layers.map { ($0.name, $0.benefit(objective)) })
        let maxS = max(names.map { sens[$0] ?? 0 }.max() ?? 0, 1e-30)
        let maxB = max(names.map { ben[$0] ?? 0 }.max() ?? 0, 1e-30)
        let s = names.map { (sens[$0] ?? 0) / maxS }
        let b = names.map { (ben[$0] ?? 0) / maxB }
        func spread(_ v: [Double]) -> [Double] {
            let mean = v.reduce(0, +) / Double(max(v.count, 1))
            return v.map { min(1.8, max(0.2, mean > 0 ? $0 / mean : 1)) }
        }
        return (spread(s.map { 0.25 + $0 }), spread(zip(s, b).map { 0.25 + $1 * (1 - $0) }))
    }

    /// Runs the GA with `seeds` (typically the greedy answer) in the initial population.
    /// The best feasible map found is at least as good as every feasible seed: seeds are
    /// evaluated first, and the best individual ever seen is what is returned.
    public func run(budget: Double, seeds: [PrecisionMap] = [], progress: ((String) -> Void)? = nil) throws -> EvolutionaryResult {
        let names = evaluator.runtime.layerNames
        let known = Set(names)
        for seed in seeds {
            for name in seed.layers.keys.sorted() where !known.contains(name) {
                throw QuantizationError.unknownLayer(layer: name, known: names)
            }
        }
        let rng = SeededRandom(seed: options.seed)
        let start = Date()
        let count = names.count
        let populationSize = max(2, options.populationSize)
        let baseRate = options.mutationRate ?? 1 / Double(max(count, 1))
        let weights = mutationWeights(names: names)
        var seen: [String: Individual] = [:]
        var order: [String] = []            // evaluation order, for the Pareto front and determinism
        var outOfTime = false

        func key(_ genes: [Bool]) -> String { zip(names, genes).filter(\.1).map(\.0).sorted().joined(separator: "\u{1}") }
        func map(_ genes: [Bool]) -> PrecisionMap {
            PrecisionMap(layers: Dictionary(uniqueKeysWithValues: zip(names, genes).map { ($0, $1 ? .int8 : .fp32) }))
        }
        func evaluate(_ genes: [Bool]) throws -> Individual {
            let k = key(genes)
            if let known = seen[k] { return known }
            let m = map(genes)
            let (e, _) = try evaluator.evaluate(m, rejectAbove: budget)
            let ind = Individual(genes: genes, key: k, evaluation: e, objective: LayerTable.objective(objective, map: m, layers: layers))
            seen[k] = ind
            order.append(k)
            if let limit = options.timeLimitSeconds, Date().timeIntervalSince(start) > limit { outOfTime = true }
            return ind
        }
        func better(_ a: Individual, _ b: Individual) -> Bool { Self.fitter(a, b, budget: budget) }
        func mutate(_ genes: inout [Bool], rate: Double) {
            for i in 0..<count {
                let w = genes[i] ? weights.toFP32[i] : weights.toInt8[i]
                if rng.uniform() < min(1, rate * w) { genes[i].toggle() }
            }
        }
        /// One flip, the layer drawn in proportion to its weight: used to move a duplicate child.
        func forceMutate(_ genes: inout [Bool]) {
            guard count > 0 else { return }
            let w = (0..<count).map { genes[$0] ? weights.toFP32[$0] : weights.toInt8[$0] }
            var r = rng.uniform() * w.reduce(0, +)
            for i in 0..<count {
                r -= w[i]
                if r < 0 || i == count - 1 { genes[i].toggle(); return }
            }
        }
        func tournament(_ pop: [Individual]) -> Individual {
            var best = pop[rng.int(pop.count)]
            for _ in 1..<max(1, options.tournamentSize) {
                let c = pop[rng.int(pop.count)]
                if better(c, best) { best = c }
            }
            return best
        }

        // Initial population: seeds, all-INT8, then random maps (INT8 share drawn per individual).
        var population: [Individual] = []
        var keys = Set<String>()
        func add(_ ind: Individual) { if keys.insert(ind.key).inserted { population.append(ind) } }
        for seed in seeds { add(try evaluate(names.map { seed.layers[$0] == .int8 })) }
        add(try evaluate([Bool](repeating: true, count: count)))
        // The sensitivity analysis already measured every all-INT8-but-one map; those within
        // budget are free, often strong (greedy's ranking can pass them by), and take at most
        // a quarter of the population, highest objective first.
        var oneOut: [(genes: [Bool], objective: Double, key: String)] = []
        for l in sensitivity.layers where known.contains(l.name) && l.allButThis.complete && l.allButThis.drop <= budget {
            let genes = names.map { $0 != l.name }
            oneOut.append((genes, LayerTable.objective(objective, map: map(genes), layers: layers), key(genes)))
        }
        oneOut.sort { $0.objective != $1.objective ? $0.objective > $1.objective : $0.key < $1.key }
        for c in oneOut.prefix(populationSize / 4) where !outOfTime { add(try evaluate(c.genes)) }
        var tries = 0
        while population.count < populationSize && tries < 20 * populationSize && !outOfTime {
            tries += 1
            let p = 0.5 + 0.45 * rng.uniform()
            let genes = (0..<count).map { _ in rng.uniform() < p }
            if keys.contains(key(genes)) { continue }
            add(try evaluate(genes))
        }
        population.sort(by: better)
        var best = population[0]
        var steps = [step(best, budget: budget)]
        progress?("evolutionary: initial population \(population.count), best drop \(fmt(best.evaluation.drop)) objective \(fmt(best.objective))")

        var generation = 0
        var stale = 0
        var stop = EvolutionaryStop.generations
        while generation < options.generations {
            if outOfTime { stop = .timeLimit; break }
            if stale >= options.stagnationGenerations { stop = .stagnation; break }
            generation += 1
            var next = Array(population.prefix(min(options.eliteCount, population.count)))
            var nextKeys = Set(next.map(\.key))
            var attempts = 0
            while next.count < populationSize && !outOfTime && attempts < 20 * populationSize {
                attempts += 1
                let a = tournament(population), b = tournament(population)
                var genes = a.genes
                if rng.uniform() < options.crossoverRate {
                    for i in 0..<count where rng.uniform() < 0.5 { genes[i] = b.genes[i] }
                }
                mutate(&genes, rate: baseRate)
                var moves = 0
                // A map seen before adds no information: move it (a few single flips) to an unseen one.
                while moves < 4, case let k = key(genes), nextKeys.contains(k) || seen[k] != nil { forceMutate(&genes); moves += 1 }
                if nextKeys.contains(key(genes)) { continue }
                let child = try evaluate(genes)
                nextKeys.insert(child.key)
                next.append(child)
            }
            population = next.sorted(by: better)
            let previous = best
            if better(population[0], best) { best = population[0] }
            let improved = best.feasible(budget) && (!previous.feasible(budget) || best.objective > previous.objective)
            stale = improved ? 0 : stale + 1
            steps.append(step(best, budget: budget))
            progress?("evolutionary: generation \(generation), best drop \(fmt(best.evaluation.drop)) objective \(fmt(best.objective)), \(seen.count) maps")
        }
        if stop == .generations && outOfTime { stop = .timeLimit }

        var evaluation = best.evaluation
        let bestMap = map(best.genes)
        if !evaluation.complete { (evaluation, _) = try evaluator.evaluate(bestMap) }
        let result = SearchResult(strategy: "evolutionary", map: bestMap, evaluation: evaluation, objective: best.objective,
                                  withinBudget: evaluation.complete && evaluation.drop <= budget && best.genes.contains(true),
                                  steps: steps)
        let pairs = order.map { (map: map(seen[$0]!.genes), evaluation: seen[$0]!.evaluation) }
        return EvolutionaryResult(search: result, pareto: ParetoFront.front(pairs, objective: objective, layers: layers, budget: budget),
                                  seed: options.seed, generations: generation, evaluatedMaps: seen.count, stop: stop)
    }

    private func step(_ best: Individual, budget: Double) -> SearchStep {
        SearchStep(action: "generation", layer: nil, drop: best.evaluation.drop, objective: best.objective,
                   complete: best.evaluation.complete)
    }

    private func fmt(_ x: Double) -> String { String(format: "%.4f", x) }
}
