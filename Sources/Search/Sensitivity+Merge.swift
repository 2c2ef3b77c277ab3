import Foundation

extension SensitivityReport {
    /// Combines the parts of a sharded analysis (`mpq sensitivity --shard K/N`) into the report
    /// one machine writes. Every part must come from the same run: same key (model, data,
    /// calibration, seed, scheme, metric, options) and the same FP32 and all-INT8 results,
    /// which each part measured itself; shards 0..<N exactly once. The cost fields
    /// (`fullModelEquivalents`, `evaluations`) are the sum of the parts' work, so they are the
    /// only fields that differ from the unsharded report: every part paid for its own FP32
    /// reference and all-INT8 pass (docs/scale.md).
    public static func merge(_ parts: [(path: String, report: SensitivityReport)]) throws -> SensitivityReport {
        let all = try checkParts(parts.map { ($0.path, $0.report.key, $0.report.shard) }, kind: "sensitivity",
                                 itemList: "layer list", describe: { $0 }) { i, differ in
            let (first, r) = (parts[0].report, parts[i].report)
            if r.modelDigest != first.modelDigest { throw differ("model digest", first.modelDigest, r.modelDigest) }
            if r.metric != first.metric { throw differ("metric", first.metric, r.metric) }
            if r.calibrationMethod != first.calibrationMethod { throw differ("calibration method", first.calibrationMethod, r.calibrationMethod) }
            if r.searchSamples != first.searchSamples { throw differ("search samples", String(first.searchSamples), String(r.searchSamples)) }
            // Same inputs measure the same reference numbers; a difference means another build or machine bug.
            if r.fp32 != first.fp32 { throw differ("FP32 score", String(first.fp32), String(r.fp32)) }
            if r.allInt8 != first.allInt8 { throw differ("all-INT8 evaluation", "\(first.allInt8)", "\(r.allInt8)") }
        }
        var byName: [String: LayerSensitivity] = [:]
        for (path, r) in parts {
            guard r.complete else { throw MergeError.wrongItems(path: path, reason: "is unfinished (its run stopped before measuring every layer of its shard)") }
            let expected = r.shard!.shard.share(of: all)
            guard r.layers.map(\.name) == expected else {
                throw MergeError.wrongItems(path: path, reason: "shard \(r.shard!.shard.label) should hold layers \(expected.joined(separator: ", ")), it holds \(r.layers.map(\.name).joined(separator: ", "))")
            }
            for l in r.layers { byName[l.name] = l }
        }
        var merged = parts[0].report
        merged.layers = all.map { byName[$0]! }
        merged.shard = nil
        merged.complete = true
        merged.fullModelEquivalents = parts.reduce(0) { $0 + $1.report.fullModelEquivalents }
        merged.evaluations = parts.reduce(0) { $0 + $1.report.evaluations }
        return merged
    }

    /// Checks that this report can stand in for an analysis of the run keyed `key`
    /// (`search --sensitivity FILE`): finished, unsharded, same inputs.
    public func checkReusable(for key: SearchStateKey, path: String) throws {
        guard shard == nil else {
            throw MergeError.wrongItems(path: path, reason: "is one shard of an analysis; merge the parts first with mpq merge")
        }
        guard complete else { throw MergeError.wrongItems(path: path, reason: "is an unfinished analysis") }
        guard let mine = self.key else {
            throw MergeError.wrongItems(path: path, reason: "has no run key (written by an mpq without sharding support); rerun mpq sensitivity")
        }
        if let d = key.mergeDifference(from: mine) {
            throw MergeError.mismatch(path: path, field: d.field, expected: d.mine, found: d.theirs, first: "this run")
        }
    }
}
