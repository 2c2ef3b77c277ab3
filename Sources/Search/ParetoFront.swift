import Foundation
import Kernels

/// One non-dominated precision map: no other map seen has both a lower drop and a
/// higher objective.
public struct ParetoPoint: Codable, Equatable, Sendable {
    /// Drop in points on the search split (complete evaluations only).
    public var drop: Double
    /// INT8 share of the objective, in [0, 1].
    public var objective: Double
    /// The map's INT8 layers, sorted; every other layer is FP32.
    public var int8Layers: [String]
    /// Whether `drop` is within the budget the front was computed for.
    public var feasible: Bool

    public init(drop: Double, objective: Double, int8Layers: [String], feasible: Bool) {
        self.drop = drop; self.objective = objective; self.int8Layers = int8Layers; self.feasible = feasible
    }
}

/// The drop/objective trade-off of a set of evaluated maps: minimise drop, maximise objective.
public enum ParetoFront {
    /// `a` dominates `b`: no worse on both axes and better on one.
    public static func dominates(_ a: ParetoPoint, _ b: ParetoPoint) -> Bool {
        a.drop <= b.drop && a.objective >= b.objective && (a.drop < b.drop || a.objective > b.objective)
    }

    /// The non-dominated subset of `points`, sorted by objective (ascending, so also by drop).
    /// Points equal on both axes keep one representative, the lexicographically smallest
    /// layer list, so the front does not depend on the input order.
    public static func front(_ points: [ParetoPoint]) -> [ParetoPoint] {
        // Sort by drop ascending, then objective descending, then layer key: a point is on the
        // front exactly when its objective beats every point before it.
        let sorted = points.sorted { a, b in
            if a.drop != b.drop { return a.drop < b.drop }
            if a.objective != b.objective { return a.objective > b.objective }
            return key(a.int8Layers) < key(b.int8Layers)
        }
        var out: [ParetoPoint] = []
        var bestObjective = -Double.infinity
        for p in sorted where p.objective > bestObjective {
            out.append(p)
            bestObjective = p.objective
        }
        return out      // drop ascending with objective strictly ascending: already sorted by objective
    }

    /// The front of arbitrary evaluated maps (the GA's, greedy's, or both merged). Incomplete
    /// (early-rejected) evaluations are left out: their drop is measured on part of the split.
    public static func front(_ pairs: [(map: PrecisionMap, evaluation: Evaluation)], objective: Objective,
                             layers: [LayerInfo], budget: Double) -> [ParetoPoint] {
        front(pairs.filter { $0.evaluation.complete }.map { pair in
            ParetoPoint(drop: pair.evaluation.drop,
                        objective: LayerTable.objective(objective, map: pair.map, layers: layers),
                        int8Layers: pair.map.int8Layers, feasible: pair.evaluation.drop <= budget)
        })
    }

    /// The front of two fronts (or any two point sets) together.
    public static func merge(_ a: [ParetoPoint], _ b: [ParetoPoint]) -> [ParetoPoint] { front(a + b) }

    /// The maps a greedy search measured, in order, rebuilt from its steps and its start map
    /// (all-INT8): "fallback" and "revert-kept" change the map; "revert-undone" measured the
    /// trial with the layer back in INT8 and left the map as it was. Evaluate them again with
    /// the same evaluator and budget (memoized, free) to get the pairs for `front`.
    public static func mapsVisited(byGreedy steps: [SearchStep], start: PrecisionMap) -> [PrecisionMap] {
        var map = start
        var out: [PrecisionMap] = []
        for step in steps {
            switch step.action {
            case "slower-in-int8":
                if let l = step.layer { map.layers[l] = .fp32 }
            case "start":
                out.append(map)
            case "fallback":
                if let l = step.layer { map.layers[l] = .fp32 }
                out.append(map)
            case "revert-kept":
                if let l = step.layer { map.layers[l] = .int8 }
                out.append(map)
            case "revert-undone":
                var trial = map
                if let l = step.layer { trial.layers[l] = .int8 }
                out.append(trial)
            default:
                continue
            }
        }
        return out
    }

    static func key(_ layers: [String]) -> String { layers.joined(separator: "\u{1}") }
}
