import Foundation
import Kernels
import ONNX

/// Where the candidate evaluator keeps the activations candidates re-execute from
/// (docs/caching.md): memory up to `memoryLimitBytes`, then, with a `directory`, plain files
/// under it up to `diskLimitBytes`.
public struct ActivationCacheOptions: Sendable, Equatable {
    public var memoryLimitBytes: Int
    public var directory: String?
    public var diskLimitBytes: Int

    public init(memoryLimitBytes: Int = 2 << 30, directory: String? = nil, diskLimitBytes: Int = 8 << 30) {
        self.memoryLimitBytes = memoryLimitBytes; self.directory = directory; self.diskLimitBytes = diskLimitBytes
    }
}

/// How well the cache served the candidates: a lookup is one batch of one candidate that
/// could re-execute from a cached run; a hit found that batch cached (in memory or on disk).
public struct CacheStatistics: Codable, Equatable, Sendable {
    /// "all" (every activation kept) or "frontier" (only the values crossing `cuts` cut points).
    public var mode = "all"
    public var cuts = 0
    public var lookups = 0
    public var memoryHits = 0
    public var diskHits = 0
    public var memoryBytes = 0
    public var diskBytes = 0
    public var hitRate: Double { lookups == 0 ? 0 : Double(memoryHits + diskHits) / Double(lookups) }

    /// One line for the text output of search and sensitivity.
    public var summary: String {
        let where_ = mode == "all" ? "every activation" : "frontier of \(cuts) cut\(cuts == 1 ? "" : "s")"
        return String(format: "cache: %@, %.1f%% hit rate (%d of %d batch re-executions; %d from disk), %.1f MiB in memory, %.1f MiB on disk",
                      where_, hitRate * 100, memoryHits + diskHits, lookups, diskHits,
                      Double(memoryBytes) / 1048576, Double(diskBytes) / 1048576)
    }
}

/// The activations of each search batch under the two base maps (all-FP32, all-INT8).
/// `keep` names the values stored (nil: all of them); a batch that does not fit anywhere is
/// not stored and its candidates run in full.
final class ActivationCache {
    enum Base: Int { case fp32 = 0, int8 = 1 }
    struct Key: Hashable { let base: Base; let batch: Int }
    private struct DiskEntry { let name: String; let dtype: DType; let shape: [Int]; let offset: Int; let count: Int }
    private enum Slot { case memory([String: Tensor]); case disk(path: String, entries: [DiskEntry], bytes: Int) }

    let options: ActivationCacheOptions
    /// Values stored per batch; nil keeps every value of the run.
    var keep: Set<String>?
    private(set) var statistics = CacheStatistics()
    private var slots: [Key: Slot] = [:]
    private var folder: String?
    private var fileCounter = 0
    /// The last schedule computed, per changed set: every batch of one candidate shares it.
    private var lastSchedule: (changed: Set<String>, available: Set<String>, schedule: [Int])?

    init(options: ActivationCacheOptions) { self.options = options }

    deinit { if let folder { try? FileManager.default.removeItem(atPath: folder) } }

    func has(_ base: Base) -> Bool { slots.keys.contains { $0.base == base } }

    static func bytes(_ t: Tensor) -> Int { t.dtype.isFloating ? 4 * t.count : 8 * t.count }

    /// Stores the kept part of `values`; false when it fits neither in memory nor on disk.
    @discardableResult
    func store(_ values: [String: Tensor], base: Base, batch: Int) throws -> Bool {
        let kept = keep.map { k in values.filter { k.contains($0.key) } } ?? values
        let size = kept.values.reduce(0) { $0 + Self.bytes($1) }
        if statistics.memoryBytes + size <= options.memoryLimitBytes {
            slots[Key(base: base, batch: batch)] = .memory(kept)
            statistics.memoryBytes += size
            return true
        }
        guard let dir = options.directory, statistics.diskBytes + size <= options.diskLimitBytes else { return false }
        let path = try spillFolder(under: dir) + "/\(base == .fp32 ? "fp32" : "int8")-\(batch)-\(fileCounter).bin"
        fileCounter += 1
        var entries: [DiskEntry] = []
        var data = Data(capacity: size)
        for name in kept.keys.sorted() {
            let t = kept[name]!
            entries.append(DiskEntry(name: name, dtype: t.dtype, shape: t.shape, offset: data.count, count: t.count))
            if t.dtype.isFloating { t.floats.withUnsafeBytes { data.append(contentsOf: $0) } }
            else { t.ints.withUnsafeBytes { data.append(contentsOf: $0) } }
        }
        guard FileManager.default.createFile(atPath: path, contents: data) else {
            throw CacheError.unwritable(path: path)
        }
        slots[Key(base: base, batch: batch)] = .disk(path: path, entries: entries, bytes: size)
        statistics.diskBytes += size
        return true
    }

    /// The cached values of `batch` under `base`, counted as a lookup (hit or miss).
    func load(_ base: Base, batch: Int) throws -> [String: Tensor]? {
        statistics.lookups += 1
        switch slots[Key(base: base, batch: batch)] {
        case .none: return nil
        case .memory(let values)?:
            statistics.memoryHits += 1
            return values
        case .disk(let path, let entries, _)?:
            // Mapped, then copied into the tensors' own arrays: the file may be reused.
            guard let data = try? Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped) else {
                throw CacheError.unreadable(path: path)
            }
            var values: [String: Tensor] = [:]
            data.withUnsafeBytes { raw in
                for e in entries {
                    if e.dtype.isFloating {
                        let p = raw.baseAddress!.advanced(by: e.offset).assumingMemoryBound(to: Float.self)
                        values[e.name] = Tensor(shape: e.shape, floats: Array(UnsafeBufferPointer(start: p, count: e.count)), dtype: e.dtype)
                    } else {
                        let p = raw.baseAddress!.advanced(by: e.offset).assumingMemoryBound(to: Int64.self)
                        values[e.name] = Tensor(shape: e.shape, ints: Array(UnsafeBufferPointer(start: p, count: e.count)), dtype: e.dtype)
                    }
                }
            }
            statistics.diskHits += 1
            return values
        }
    }

    /// Drops everything stored under `base` (an all-INT8 run stopped before its end).
    func discard(_ base: Base) {
        for (key, slot) in slots where key.base == base {
            switch slot {
            case .memory(let v): statistics.memoryBytes -= v.values.reduce(0) { $0 + Self.bytes($1) }
            case .disk(let path, _, let bytes): statistics.diskBytes -= bytes; try? FileManager.default.removeItem(atPath: path)
            }
            slots[key] = nil
        }
    }

    /// Re-executes a batch from `cached` (values of a run under the base map) and `feeds`:
    /// with every value kept, only the dirty nodes (`Session.runIncremental`); with a frontier,
    /// the schedule of `Session.frontierSchedule`. Returns the outputs and the nodes executed.
    func rerun(_ session: Session, cached: [String: Tensor], feeds: [String: Tensor],
               changed: Set<String>) throws -> (outputs: [String: Tensor], executed: [Int]) {
        guard keep != nil else { return try session.runIncremental(cache: cached, changedNodes: changed) }
        let values = cached.merging(feeds) { c, _ in c }
        let available = Set(values.keys)
        let schedule: [Int]
        if let last = lastSchedule, last.changed == changed, last.available == available { schedule = last.schedule } else {
            schedule = session.frontierSchedule(available: available, changedNodes: changed)
            lastSchedule = (changed, available, schedule)
        }
        return (try session.runFrontier(cache: values, schedule: schedule), schedule)
    }

    /// Runs a batch with the current overrides, returning the outputs and the values to store.
    func runKeeping(_ session: Session, feeds: [String: Tensor]) throws -> (outputs: [String: Tensor], values: [String: Tensor]) {
        guard let keep else { return try session.allActivations(feeds) }
        let result = try session.run(feeds, keep: keep)
        return (result, result)
    }

    /// What a resumable state must match besides the memory limit: the disk limit changes
    /// which batches are cached, hence the recorded costs. Empty without a disk spill, so
    /// states written before the spill existed still match.
    var diskKey: String { options.directory == nil ? "" : " disk \(options.diskLimitBytes) bytes" }

    func markFrontier(cuts: Int) { statistics.mode = "frontier"; statistics.cuts = cuts }

    private func spillFolder(under dir: String) throws -> String {
        if let folder { return folder }
        let f = (dir as NSString).appendingPathComponent("mpq-cache-\(ProcessInfo.processInfo.processIdentifier)-\(UUID().uuidString.prefix(8))")
        do { try FileManager.default.createDirectory(atPath: f, withIntermediateDirectories: true) } catch {
            throw CacheError.unwritable(path: f)
        }
        folder = f
        return f
    }
}

public enum CacheError: Error, CustomStringConvertible {
    case unwritable(path: String)
    case unreadable(path: String)
    public var description: String {
        switch self {
        case .unwritable(let p): return "cannot write the activation cache file \(p) (check --cache-dir)"
        case .unreadable(let p): return "cannot read back the activation cache file \(p)"
        }
    }
}
