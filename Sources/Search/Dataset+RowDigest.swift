import Foundation
import ONNX

/// A 128-bit hash of one sample's model inputs: two independently seeded 64-bit lanes
/// over the row's values (float bit patterns or integers), arrays in name order. Exact
/// duplicates collide by construction; distinct rows collide with probability ~2^-128 per pair.
public struct RowDigest: Hashable, Sendable {
    public let high: UInt64
    public let low: UInt64
}

extension Dataset {
    /// One digest per sample, in data order (labels and other extra arrays are not hashed:
    /// the same input under another label is still the same input).
    public func rowDigests() -> [RowDigest] {
        var a = [UInt64](repeating: 0x243F_6A88_85A3_08D3, count: count)
        var b = [UInt64](repeating: 0x1319_8A2E_0370_7344, count: count)
        @inline(__always) func mix(_ h: UInt64, _ w: UInt64, _ k: UInt64) -> UInt64 {
            var x = (h ^ w) &* k
            x ^= x >> 31
            return x &* 0x94D0_49BB_1331_11EB ^ (x >> 29)
        }
        // Batch by batch, so streamed data (docs/scale.md) is hashed in bounded memory; each
        // row's lanes see its arrays in name order whatever the batch size.
        for range in batches(size: 1024) {
            let feeds = batch(range)
            for name in feeds.keys.sorted() {
                let t = feeds[name]!
                let width = t.count / max(range.count, 1)
                // Float bit patterns or integers, one 64-bit word per value.
                let words: [UInt64] = t.dtype.isFloating ? t.floats.map { UInt64($0.bitPattern) } : t.ints.map { UInt64(bitPattern: $0) }
                for r in 0..<range.count {
                    let i = range.lowerBound + r
                    for w in words[r * width..<(r + 1) * width] {
                        a[i] = mix(a[i], w, 0x9E37_79B9_7F4A_7C15); b[i] = mix(b[i], w, 0xBF58_476D_1CE4_E5B9)
                    }
                }
            }
        }
        return (0..<count).map { RowDigest(high: a[$0], low: b[$0]) }
    }

    /// "rows:" + SHA-256 of the row digests in order: what a calibration table records of the
    /// data it was computed on (docs/calibration.md). Same rows in the same order, same digest.
    public func contentDigest(_ rows: [RowDigest]? = nil) -> String {
        var bytes = Data()
        for r in rows ?? rowDigests() {
            withUnsafeBytes(of: r.high.bigEndian) { bytes.append(contentsOf: $0) }
            withUnsafeBytes(of: r.low.bigEndian) { bytes.append(contentsOf: $0) }
        }
        return "rows:" + SHA256.hex(bytes)
    }
}

/// Rows shared by two splits: `rows` samples of `later` whose inputs also occur in `earlier`.
public struct SplitOverlap: Equatable, Sendable {
    public let earlier: String
    public let later: String
    public let rows: Int
}

/// Splits that share samples by content (docs/search.md, "Splits").
public enum DataSplitError: Error, CustomStringConvertible {
    case overlap([SplitOverlap])
    /// A calibration table computed on the search or holdout split itself.
    case tableFromSplit(table: String, split: String)

    public var description: String {
        switch self {
        case .overlap(let o):
            let list = o.map { "\($0.rows) row\($0.rows == 1 ? "" : "s") of \($0.later) also in \($0.earlier)" }.joined(separator: "; ")
            return "the splits share samples by content (model inputs hashed per row): \(list). A search or holdout score on rows the earlier steps saw is optimistic; remove the duplicates, or pass --allow-overlap to accept them"
        case .tableFromSplit(let t, let s):
            return "calibration table \(t) was computed on the same data as \(s) (its data_digest matches); calibrate on a separate split, or pass --allow-overlap"
        }
    }
}

extension DataSplits {
    /// Overlaps between named splits, each later split against every earlier one (calibration,
    /// search, holdout order); pairs without shared rows are left out.
    public static func overlaps(_ splits: [(name: String, data: Dataset)]) -> [SplitOverlap] {
        let digests = splits.map { $0.data.rowDigests() }
        var found: [SplitOverlap] = []
        for j in splits.indices {
            for i in 0..<j {
                let earlier = Set(digests[i])
                let n = digests[j].filter { earlier.contains($0) }.count
                if n > 0 { found.append(SplitOverlap(earlier: "\(splits[i].name) (\(splits[i].data.path))", later: "\(splits[j].name) (\(splits[j].data.path))", rows: n)) }
            }
        }
        return found
    }

    /// Throws `DataSplitError.overlap` when the splits share rows, unless `allowOverlap`;
    /// returns the overlaps (for a warning when allowed).
    @discardableResult
    public static func checkDisjoint(_ splits: [(name: String, data: Dataset)], allowOverlap: Bool) throws -> [SplitOverlap] {
        let o = overlaps(splits)
        if !o.isEmpty && !allowOverlap { throw DataSplitError.overlap(o) }
        return o
    }

    /// Shared rows between the three splits.
    public var overlaps: [SplitOverlap] {
        Self.overlaps([("calibration", calibration), ("search", search), ("holdout", holdout)])
    }

    /// The three splits checked against each other.
    @discardableResult
    public func checkDisjoint(allowOverlap: Bool) throws -> [SplitOverlap] {
        try Self.checkDisjoint([("calibration", calibration), ("search", search), ("holdout", holdout)], allowOverlap: allowOverlap)
    }
}
