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
        guard let (firstPath, first) = parts.first else { throw MergeError.noParts }
        var shards: [(path: String, shard: Shard)] = []
        for (path, r) in parts {
            guard let s = r.shard else { throw MergeError.notAPart(path: path, kind: "sensitivity") }
            shards.append((path, s.shard))
        }
        guard let key = first.key else {
            throw MergeError.wrongItems(path: firstPath, reason: "has no run key (written by an mpq without sharding support)")
        }
        for (path, r) in parts.dropFirst() {
            func differ(_ field: String, _ mine: String, _ theirs: String) -> MergeError {
                .mismatch(path: path, field: field, expected: mine, found: theirs, first: firstPath)
            }
            guard let k = r.key else { throw differ("run key", "present", "absent") }
            if let d = key.mergeDifference(from: k) { throw differ(d.field, d.mine, d.theirs) }
            if r.modelDigest != first.modelDigest { throw differ("model digest", first.modelDigest, r.modelDigest) }
            if r.metric != first.metric { throw differ("metric", first.metric, r.metric) }
            if r.calibrationMethod != first.calibrationMethod { throw differ("calibration method", first.calibrationMethod, r.calibrationMethod) }
            if r.searchSamples != first.searchSamples { throw differ("search samples", String(first.searchSamples), String(r.searchSamples)) }
            if r.shard!.items != first.shard!.items { throw differ("layer list", first.shard!.items.joined(separator: ","), r.shard!.items.joined(separator: ",")) }
            // Same inputs measure the same reference numbers; a difference means another build or machine bug.
            if r.fp32 != first.fp32 { throw differ("FP32 score", String(first.fp32), String(r.fp32)) }
            if r.allInt8 != first.allInt8 { throw differ("all-INT8 evaluation", "\(first.allInt8)", "\(r.allInt8)") }
        }
        try checkShardCoverage(shards)
        let all = first.shard!.items
        var byName: [String: LayerSensitivity] = [:]
        for (path, r) in parts {
            guard r.complete else { throw MergeError.wrongItems(path: path, reason: "is unfinished (its run stopped before measuring every layer of its shard)") }
            let expected = r.shard!.shard.share(of: all)
            guard r.layers.map(\.name) == expected else {
                throw MergeError.wrongItems(path: path, reason: "shard \(r.shard!.shard.label) should hold layers \(expected.joined(separator: ", ")), it holds \(r.layers.map(\.name).joined(separator: ", "))")
            }
            for l in r.layers { byName[l.name] = l }
        }
        var merged = first
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
