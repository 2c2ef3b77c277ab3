import Foundation
import Kernels
import ONNX

public enum SearchStrategy: String, CaseIterable, Codable, Sendable {
    case greedy, evolutionary, both
}

/// What one search is asked to do.
public struct SearchPlan: Sendable {
    public var budget: Budget
    public var strategy: SearchStrategy
    public var objective: Objective
    public var evolutionary: EvolutionaryOptions
    public var criterion: BudgetCriterion
    public var confidence: Double

    public init(budget: Budget, strategy: SearchStrategy = .both, objective: Objective = .macs,
                evolutionary: EvolutionaryOptions = EvolutionaryOptions(), criterion: BudgetCriterion = .point,
                confidence: Double = 0.95) {
        self.budget = budget; self.strategy = strategy; self.objective = objective
        self.evolutionary = evolutionary; self.criterion = criterion; self.confidence = confidence
    }
}

/// A search's outcome: the chosen map on the search split, its holdout validation, the
/// Pareto front of everything measured.
public struct SearchOutcome: Sendable {
    public var best: SearchResult
    public var validation: ValidationResult
    public var pareto: [ParetoPoint]
    public var budgetPoints: Double
    /// The map has at least one INT8 layer and the holdout criterion holds.
    public var met: Bool
    /// What the holdout split can confirm about this budget (per-sample binary metrics
    /// only: those with a McNemar test); nil for other metrics.
    public var resolution: SplitResolution? = nil
}

/// Runs the strategies of a plan on one evaluator and validates the answer on the holdout
/// split. The evaluator, sensitivity and validator are shared, so a sweep over budgets
/// reuses every evaluation (memoized) and the FP32/all-INT8 holdout runs.
public struct SearchRunner {
    public let evaluator: CandidateEvaluator
    public let sensitivity: SensitivityReport
    public let layers: [LayerInfo]
    public let validator: HoldoutValidator

    public init(evaluator: CandidateEvaluator, sensitivity: SensitivityReport, layers: [LayerInfo], validator: HoldoutValidator) {
        self.evaluator = evaluator; self.sensitivity = sensitivity; self.layers = layers; self.validator = validator
    }

    public func run(_ plan: SearchPlan, progress: ((String) -> Void)? = nil) throws -> SearchOutcome {
        let budget = plan.budget.points(fp32: evaluator.fp32Score)
        var candidates: [SearchResult] = []
        var pareto: [ParetoPoint] = []
        var greedy: SearchResult?
        if plan.strategy != .evolutionary {
            let g = try GreedySearch(evaluator: evaluator, sensitivity: sensitivity, layers: layers, objective: plan.objective)
                .run(budget: budget, progress: progress)
            greedy = g
            candidates.append(g)
            let maps = ParetoFront.mapsVisited(byGreedy: g.steps, start: evaluator.runtime.allInt8)
            let pairs = try maps.map { ($0, try evaluator.evaluate($0, rejectAbove: budget).0) }
            pareto = ParetoFront.front(pairs.map { (map: $0.0, evaluation: $0.1) }, objective: plan.objective, layers: layers, budget: budget)
        }
        // A feasible map with the whole objective cannot be beaten: skip the GA then.
        let greedyIsOptimal = greedy.map { $0.withinBudget && $0.objective >= 1 - 1e-12 } ?? false
        if plan.strategy != .greedy && !greedyIsOptimal {
            let e = try EvolutionarySearch(evaluator: evaluator, sensitivity: sensitivity, layers: layers,
                                           objective: plan.objective, options: plan.evolutionary)
                .run(budget: budget, seeds: greedy.map { [$0.map] } ?? [], progress: progress)
            candidates.append(e.search)
            pareto = ParetoFront.merge(pareto, e.pareto)
        }
        // Feasible beats infeasible; then the higher objective; then the lower drop; then greedy first.
        let best = candidates.enumerated().min { a, b in
            let (x, y) = (a.element, b.element)
            if x.withinBudget != y.withinBudget { return x.withinBudget }
            if x.withinBudget && x.objective != y.objective { return x.objective > y.objective }
            if x.evaluation.drop != y.evaluation.drop { return x.evaluation.drop < y.evaluation.drop }
            return a.offset < b.offset
        }!.element
        progress?("validating on the holdout split")
        let validation = try validator.validate(best.map, budget: budget, confidence: plan.confidence)
        let met = !best.map.int8Layers.isEmpty && validation.met(plan.criterion)
        let resolution = validation.mcnemarP == nil ? nil
            : SplitResolution(samples: validation.samples, budget: budget, confidence: plan.confidence)
        return SearchOutcome(best: best, validation: validation, pareto: pareto, budgetPoints: budget, met: met,
                             resolution: resolution)
    }

    /// The precision map document for an outcome.
    public func document(_ outcome: SearchOutcome, plan: SearchPlan, modelPath: String, modelSHA256: String,
                         dataDescription: String, seed: UInt64, version: String, wallSeconds: Double?) -> PrecisionMapDocument {
        let runtime = evaluator.runtime
        let v = outcome.validation
        let best = outcome.best
        let allInt8 = (try? evaluator.evaluate(runtime.allInt8).0)?.score ?? 0
        let schemeFields = PrecisionMapDocument.schemeEntries(map: best.map, runtime: runtime)
        return PrecisionMapDocument(
            mpqVersion: version,
            model: .init(path: modelPath, sha256: modelSHA256, digest: runtime.calibration.modelDigest),
            metric: evaluator.scorer.name,
            budget: .init(value: plan.budget.value, type: plan.budget.type.rawValue, points: round4(outcome.budgetPoints)),
            seed: seed, strategy: best.strategy, objective: plan.objective.rawValue, objectiveValue: round4(best.objective),
            calibration: .init(method: runtime.calibration.method, samples: runtime.calibration.samples),
            data: dataDescription, kernelPath: runtime.path.resolved.rawValue,
            scheme: runtime.scheme.rawValue, tensors: schemeFields.tensors, int8RegionOps: schemeFields.regionOps,
            weightBits: runtime.weightBits == .eight ? nil : runtime.weightBits.rawValue,
            result: .init(search: .init(fp32: round4(evaluator.fp32Score), int8All: round4(allInt8), mixed: round4(best.evaluation.score),
                                        drop: round4(best.evaluation.drop), samples: evaluator.data.count),
                          holdout: .init(fp32: v.fp32, int8All: v.int8All, mixed: v.mixed, drop: v.drop, ci95: v.ci,
                                         confidence: v.confidence, mcnemarP: v.mcnemarP, ciNote: v.ciNote,
                                         resolutionNote: outcome.resolution?.note(split: "holdout"), budgetMet: v.budgetMetPoint,
                                         budgetMetUpper: v.budgetMetUpper, criterion: plan.criterion.rawValue, samples: v.samples)),
            budgetMet: outcome.met,
            int8MacFraction: round4(LayerTable.objective(.macs, map: best.map, layers: layers)),
            int8Layers: best.map.int8Layers.count,
            evaluations: evaluator.evaluations,
            fullModelEquivalents: round4(evaluator.fullModelEquivalents),
            wallSeconds: wallSeconds,
            layers: PrecisionMapDocument.layerEntries(map: best.map, runtime: runtime, layers: layers, sensitivity: sensitivity),
            pareto: outcome.pareto.map { ParetoPoint(drop: round4($0.drop), objective: round4($0.objective), int8Layers: $0.int8Layers, feasible: $0.feasible) },
            trajectory: best.steps.map { SearchStep(action: $0.action, layer: $0.layer, drop: round4($0.drop), objective: round4($0.objective), complete: $0.complete) })
    }
}
