import Foundation
import Kernels

/// One measured step of a search, for the output's trajectory.
public struct SearchStep: Codable, Equatable, Sendable {
    public var action: String          // "slower-in-int8", "start", "fallback", "revert-kept", "revert-undone"
    public var layer: String?
    public var drop: Double
    public var objective: Double
    public var complete: Bool
}

/// A search's answer on the search split.
public struct SearchResult: Codable, Equatable, Sendable {
    public var strategy: String
    public var map: PrecisionMap
    public var evaluation: Evaluation
    public var objective: Double
    public var withinBudget: Bool
    public var steps: [SearchStep]
}

/// Greedy fallback then revert, every step measured:
/// 1. start all-INT8 (under `--objective latency`, less the layers measured slower in
///    INT8: they stay FP32 throughout, a "slower-in-int8" step each);
/// 2. while the drop is over budget, return to FP32 the next layer in order of measured
///    recovery per unit of objective cost (sensitivity), re-measuring after each;
/// 3. revert passes: try re-quantizing each fallen-back layer, largest objective benefit
///    first, keeping it INT8 when the budget still holds; repeat while a pass changes something.
/// Nothing assumes the drop is monotone along the ranking: step 3 catches layers that
/// step 2 returned needlessly.
public struct GreedySearch {
    public let evaluator: CandidateEvaluator
    public let sensitivity: SensitivityReport
    public let layers: [LayerInfo]
    public let objective: Objective

    public init(evaluator: CandidateEvaluator, sensitivity: SensitivityReport, layers: [LayerInfo], objective: Objective) {
        self.evaluator = evaluator; self.sensitivity = sensitivity; self.layers = layers; self.objective = objective
    }

    /// Layers kept FP32 from the start because INT8 would make the model slower.
    public var slowerInInt8: [String] {
        objective == .latency ? layers.filter(\.slowerInInt8).map(\.name) : []
    }

    /// Fallback order: most recovery per unit of benefit lost first; ties by model order.
    public func fallbackOrder() -> [String] {
        let pinned = Set(slowerInInt8)
        let benefit = Dictionary(uniqueKeysWithValues: layers.map { ($0.name, $0.benefit(objective)) })
        let total = max(benefit.values.reduce(0, +), 1e-30)
        let index = Dictionary(uniqueKeysWithValues: layers.enumerated().map { ($0.element.name, $0.offset) })
        func priority(_ s: LayerSensitivity) -> Double {
            let cost = max((benefit[s.name] ?? 0) / total, 1e-6)
            return max(s.recovery, s.aloneInt8.drop) / cost
        }
        return sensitivity.layers.filter { !pinned.contains($0.name) }.sorted {
            let a = priority($0), b = priority($1)
            return a != b ? a > b : index[$0.name, default: 0] < index[$1.name, default: 0]
        }.map(\.name)
    }

    public func run(budget: Double, progress: ((String) -> Void)? = nil) throws -> SearchResult {
        let runtime = evaluator.runtime
        var map = runtime.allInt8
        var steps: [SearchStep] = []
        func objectiveOf(_ m: PrecisionMap) -> Double { LayerTable.objective(objective, map: m, layers: layers) }
        for name in slowerInInt8 {
            map.layers[name] = .fp32
            steps.append(SearchStep(action: "slower-in-int8", layer: name, drop: 0, objective: objectiveOf(map), complete: false))
            progress?("greedy: \(name) stays FP32 (slower in INT8, measured end to end)")
        }
        var (current, _) = try evaluator.evaluate(map, rejectAbove: budget)
        steps.append(SearchStep(action: "start", layer: nil, drop: current.drop, objective: objectiveOf(map), complete: current.complete))
        var fallen: [String] = []
        for name in fallbackOrder() where !(current.complete && current.drop <= budget) {
            map.layers[name] = .fp32
            fallen.append(name)
            (current, _) = try evaluator.evaluate(map, rejectAbove: budget)
            steps.append(SearchStep(action: "fallback", layer: name, drop: current.drop, objective: objectiveOf(map), complete: current.complete))
            progress?("greedy: \(name) -> fp32, drop \(String(format: "%.3f", current.drop))")
        }
        // Revert passes, largest benefit first, repeated until one changes nothing: a layer
        // re-quantized late can make an earlier one affordable again (drops are not additive).
        let benefit = Dictionary(uniqueKeysWithValues: layers.map { ($0.name, $0.benefit(objective)) })
        var pending = fallen.sorted(by: { (benefit[$0] ?? 0, $1) > (benefit[$1] ?? 0, $0) })
        var changed = true
        while changed && !pending.isEmpty {
            changed = false
            for name in pending {
                var trial = map
                trial.layers[name] = .int8
                let (e, _) = try evaluator.evaluate(trial, rejectAbove: budget)
                let keep = e.complete && e.drop <= budget
                if keep { map = trial; current = e; changed = true }
                steps.append(SearchStep(action: keep ? "revert-kept" : "revert-undone", layer: name, drop: e.drop,
                                        objective: objectiveOf(map), complete: e.complete))
                progress?("greedy: revert \(name): drop \(String(format: "%.3f", e.drop)) \(keep ? "kept INT8" : "back to FP32")")
            }
            pending = pending.filter { map.layers[$0] == .fp32 }
        }
        if !current.complete { (current, _) = try evaluator.evaluate(map) }
        return SearchResult(strategy: "greedy", map: map, evaluation: current, objective: objectiveOf(map),
                            withinBudget: current.drop <= budget && !map.int8Layers.isEmpty, steps: steps)
    }
}
