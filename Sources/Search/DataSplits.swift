import Foundation
import ONNX

/// The three disjoint splits: calibration (activation ranges), search (every candidate is
/// scored on it) and holdout (only the final answer is scored on it).
public struct DataSplits {
    public let calibration: Dataset
    public let search: Dataset
    public let holdout: Dataset
    /// How the splits were made, for the output's provenance.
    public let description: String

    public init(calibration: Dataset, search: Dataset, holdout: Dataset, description: String) {
        self.calibration = calibration; self.search = search; self.holdout = holdout; self.description = description
    }

    /// Three files, one per split.
    public static func load(calibration: String, search: String, holdout: String, graph: Graph,
                            allowNonfinite: Bool = false) throws -> DataSplits {
        let paths = [calibration, search, holdout]
        guard Set(paths).count == 3 else {
            throw ModelError.badData(path: search, reason: "the calibration, search and holdout files must be three different files")
        }
        return DataSplits(calibration: try Dataset(path: calibration, graph: graph, allowNonfinite: allowNonfinite),
                          search: try Dataset(path: search, graph: graph, allowNonfinite: allowNonfinite),
                          holdout: try Dataset(path: holdout, graph: graph, allowNonfinite: allowNonfinite),
                          description: "files: calibration \(calibration), search \(search), holdout \(holdout)")
    }

    /// One file split by `fractions` (calibration, search, holdout) after a seeded shuffle.
    public static func split(_ path: String, fractions: [Double], seed: UInt64, graph: Graph,
                             allowNonfinite: Bool = false) throws -> DataSplits {
        guard fractions.count == 3, fractions.allSatisfy({ $0 > 0 }), abs(fractions.reduce(0, +) - 1) < 1e-6 else {
            throw ModelError.badData(path: path, reason: "--split needs three positive fractions summing to 1, got \(fractions)")
        }
        let all = try Dataset(path: path, graph: graph, allowNonfinite: allowNonfinite)
        let order = SeededRandom(seed: seed).permutation(all.count)
        let nCal = Int((fractions[0] * Double(all.count)).rounded())
        let nSearch = Int((fractions[1] * Double(all.count)).rounded())
        guard nCal >= 1, nSearch >= 1, all.count - nCal - nSearch >= 1 else {
            throw ModelError.badData(path: path, reason: "\(all.count) samples are too few to split \(fractions)")
        }
        let cal = Array(order[0..<nCal]).sorted()
        let search = Array(order[nCal..<nCal + nSearch]).sorted()
        let hold = Array(order[(nCal + nSearch)...]).sorted()
        return DataSplits(calibration: all.subset(cal, path: "\(path)[calibration]"),
                          search: all.subset(search, path: "\(path)[search]"),
                          holdout: all.subset(hold, path: "\(path)[holdout]"),
                          description: "\(path) split \(fractions.map { String($0) }.joined(separator: ",")) with seed \(seed)")
    }
}
