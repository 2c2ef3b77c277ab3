import Foundation

/// One worker's share of an embarrassingly parallel job (sensitivity layers, sweep budgets):
/// shard `index` of `count`, 0-based like Kubernetes' JOB_COMPLETION_INDEX and a CI matrix.
/// Item `i` belongs to shard `i % count`: deterministic, needs no coordination, and spreads
/// neighbouring (similar-cost) layers over the workers (docs/scale.md).
public struct Shard: Codable, Equatable, Sendable {
    public var index: Int
    public var count: Int

    public init(index: Int, count: Int) {
        precondition(count >= 1 && (0..<count).contains(index), "shard \(index)/\(count)")
        self.index = index; self.count = count
    }

    /// Whether item `i` of the full list is this shard's.
    public func owns(_ i: Int) -> Bool { i % count == index }

    /// This shard's items of `all`, in their order.
    public func share<T>(of all: [T]) -> [T] {
        all.enumerated().filter { owns($0.offset) }.map(\.element)
    }

    public var label: String { "\(index)/\(count)" }
}

/// A part's shard and the full item list it was cut from, written into the part so that
/// `mpq merge` can check coverage and restore the order without the model.
public struct ShardPart<Item: Codable & Equatable & Sendable>: Codable, Equatable, Sendable {
    public var shard: Shard
    /// Every item of the unsharded job, in order (layer names, or budgets).
    public var items: [Item]
    public init(shard: Shard, items: [Item]) { self.shard = shard; self.items = items }
}

public enum MergeError: Error, CustomStringConvertible {
    case noParts
    case notAPart(path: String, kind: String)
    case mismatch(path: String, field: String, expected: String, found: String, first: String)
    case duplicateShard(index: Int, paths: [String])
    case missingShards(indices: [Int], count: Int)
    case wrongItems(path: String, reason: String)

    public var description: String {
        switch self {
        case .noParts: return "mpq merge needs at least one part"
        case .notAPart(let p, let k): return "\(p) is not a sharded \(k) part (written without --shard, or by another command)"
        case .mismatch(let p, let f, let e, let found, let first):
            return "\(p) differs from \(first) in \(f): \(found) instead of \(e); parts of one run must share model, data, calibration, seed, scheme, metric and options"
        case .duplicateShard(let i, let ps): return "shard \(i) is given twice: \(ps.joined(separator: ", "))"
        case .missingShards(let i, let n): return "shard\(i.count == 1 ? "" : "s") \(i.map(String.init).joined(separator: ", ")) of \(n) missing"
        case .wrongItems(let p, let r): return "\(p): \(r)"
        }
    }
}

/// The checks every `mpq merge` makes before combining parts of one sharded job: each file is
/// a part, all carry the first one's run key and item list (`itemList` names it in errors),
/// `sameRun` finds no other difference (given a part's index and its `differ` error maker),
/// and shards 0..<N appear once each. Returns the items of the unsharded job.
public func checkParts<Item>(_ parts: [(path: String, key: SearchStateKey?, part: ShardPart<Item>?)], kind: String,
                             itemList: String, describe: (Item) -> String,
                             sameRun: (Int, (String, String, String) -> MergeError) throws -> Void = { _, _ in }) throws -> [Item] {
    guard let first = parts.first else { throw MergeError.noParts }
    var shards: [(path: String, shard: Shard)] = []
    for p in parts {
        guard let s = p.part else { throw MergeError.notAPart(path: p.path, kind: kind) }
        shards.append((p.path, s.shard))
    }
    guard let key = first.key else {
        throw MergeError.wrongItems(path: first.path, reason: "has no run key (written by an mpq without sharding support)")
    }
    let items = first.part!.items
    func list(_ v: [Item]) -> String { v.map(describe).joined(separator: ",") }
    for (i, p) in parts.enumerated().dropFirst() {
        func differ(_ field: String, _ mine: String, _ theirs: String) -> MergeError {
            .mismatch(path: p.path, field: field, expected: mine, found: theirs, first: first.path)
        }
        guard let k = p.key else { throw differ("run key", "present", "absent") }
        if let d = key.mergeDifference(from: k) { throw differ(d.field, d.mine, d.theirs) }
        try sameRun(i, differ)
        if p.part!.items != items { throw differ(itemList, list(items), list(p.part!.items)) }
    }
    try checkShardCoverage(shards)
    return items
}

/// Checks that the parts' shards are exactly 0..<count once each.
public func checkShardCoverage(_ shards: [(path: String, shard: Shard)]) throws {
    guard let first = shards.first else { throw MergeError.noParts }
    let count = first.shard.count
    for s in shards where s.shard.count != count {
        throw MergeError.mismatch(path: s.path, field: "shard count", expected: String(count), found: String(s.shard.count),
                                  first: first.path)
    }
    let byIndex = Dictionary(grouping: shards, by: \.shard.index)
    if let dup = byIndex.filter({ $0.value.count > 1 }).min(by: { $0.key < $1.key }) {
        throw MergeError.duplicateShard(index: dup.key, paths: dup.value.map(\.path))
    }
    let missing = (0..<count).filter { byIndex[$0] == nil }
    if !missing.isEmpty { throw MergeError.missingShards(indices: missing, count: count) }
}

extension SearchStateKey {
    /// Fields two parts of one sharded run must share, with the first that differs named.
    /// The kernel path is left out: every path computes the same integers (the conformance
    /// tests check it bit for bit), so a heterogeneous cluster may mix them.
    public func mergeDifference(from other: SearchStateKey) -> (field: String, mine: String, theirs: String)? {
        let fields: [(String, String, String)] = [
            ("model digest", model, other.model), ("data", data, other.data), ("calibration", calibration, other.calibration),
            ("scheme", scheme, other.scheme), ("metric", metric, other.metric), ("seed", String(seed), String(other.seed)),
            ("evaluator options", evaluator, other.evaluator), ("mpq version", mpqVersion, other.mpqVersion),
        ]
        return fields.first { $0.1 != $0.2 }.map { (field: $0.0, mine: $0.1, theirs: $0.2) }
    }
}
