import Foundation
import Kernels
import ONNX

/// Everything a candidate's score and cost depend on, so a saved evaluation is replayed only
/// into a run that would have computed the same numbers (docs/search.md, "Resuming").
/// Each field is a readable description or a digest; `digest` hashes them all.
public struct SearchStateKey: Codable, Equatable, Sendable {
    /// Evaluation code can change between versions.
    public var mpqVersion: String
    /// The model's graph digest (nodes and weights).
    public var model: String
    /// The split files' SHA-256 digests, or the one file's digest with its split and seed.
    public var data: String
    /// SHA-256 of the calibration table (method, sample count and every range).
    public var calibration: String
    public var scheme: String
    /// 7 for `--weight-bits 7` runs; absent (nil) for 8, so older states keep their digests.
    public var weightBits: Int?
    /// The metric with its options: pooling, mask array, detection post-processing.
    public var metric: String
    public var seed: UInt64
    /// The resolved INT8 kernel path.
    public var kernelPath: String
    /// Batch size, activation-cache cap and early-rejection rule: they decide where a
    /// candidate is rejected and what it costs.
    public var evaluator: String

    public init(mpqVersion: String, model: String, data: String, calibration: String, scheme: String, metric: String,
                seed: UInt64, kernelPath: String, weightBits: Int? = nil, evaluator: String) {
        self.weightBits = weightBits
        self.mpqVersion = mpqVersion; self.model = model; self.data = data; self.calibration = calibration
        self.scheme = scheme; self.metric = metric; self.seed = seed; self.kernelPath = kernelPath; self.evaluator = evaluator
    }

    /// The key of a run on `evaluator`; `data` describes the splits (file digests), which
    /// only the caller knows.
    public init(evaluator e: CandidateEvaluator, data: String, seed: UInt64, mpqVersion: String) throws {
        let runtime = e.runtime
        let table = try deterministicJSONEncoder().encode(runtime.calibration)
        // The scorer's settings include a detector's resolved layout (outputs, orientation).
        let metric = "\(e.scorer.name) pool \(e.transform.pooling.rawValue) mask \(e.transform.mask)" + e.scorer.settings
        self.init(mpqVersion: mpqVersion, model: runtime.calibration.modelDigest, data: data,
                  calibration: "sha256:" + SHA256.hex(table), scheme: runtime.scheme.rawValue, metric: metric, seed: seed,
                  kernelPath: runtime.path.resolved.rawValue, weightBits: runtime.weightBits == .eight ? nil : runtime.weightBits.rawValue,
                  evaluator: "batch \(e.batchSize) cache \(e.cacheLimit) bytes\(e.activations.diskKey) reject alpha \(e.rejectionAlpha) over \(e.rejectionLooks) looks after \(e.minSamplesBeforeRejection) order \(e.visitSeed == nil ? "file" : "shuffled by the seed")")
    }

    /// SHA-256 over every field.
    public var digest: String {
        SHA256.hex((try? deterministicJSONEncoder().encode(self)) ?? Data())
    }

    /// The names of the fields that differ from `other`'s.
    public func differences(from other: SearchStateKey) -> [String] {
        var d: [String] = []
        if mpqVersion != other.mpqVersion { d.append("mpq version") }
        if model != other.model { d.append("model") }
        if data != other.data { d.append("data") }
        if calibration != other.calibration { d.append("calibration") }
        if scheme != other.scheme { d.append("scheme") }
        if weightBits != other.weightBits { d.append("weight bits") }
        if metric != other.metric { d.append("metric") }
        if seed != other.seed { d.append("seed") }
        if kernelPath != other.kernelPath { d.append("kernel path") }
        if evaluator != other.evaluator { d.append("batch size, cache or rejection rule") }
        return d
    }
}

/// The file `--state DIR/evaluations.json` of search and sweep: every candidate evaluation
/// the run computed, in order, with the work it cost.
public struct SearchState: Codable, Equatable, Sendable {
    public var schema = "mpq.search-state/1"
    public var digest: String
    public var key: SearchStateKey
    public var evaluations: [Record]

    /// One computed evaluation: the map (its INT8 layers), the early-rejection budget it ran
    /// under, its result, and its cost in full FP32 passes over the search split.
    public struct Record: Codable, Equatable, Sendable {
        public var int8Layers: [String]
        public var rejectAbove: Double?
        public var evaluation: Evaluation
        public var cost: Double
    }
}

public enum SearchStateError: Error, CustomStringConvertible {
    case mismatch(path: String, fields: [String])
    case unreadable(path: String, reason: String)

    public var description: String {
        switch self {
        case .mismatch(let p, let f):
            return "state file \(p) was made with another \(f.joined(separator: ", ")); delete it or use another --state"
        case .unreadable(let p, let r):
            return "state file \(p) is not a search state (\(r)); delete it or use another --state"
        }
    }
}

/// Saved evaluations that a `CandidateEvaluator` replays instead of recomputing, and the
/// file it appends new ones to (atomically: a run killed at any moment leaves a usable state).
public final class EvaluationStore {
    public let path: String
    public let key: SearchStateKey
    private var state: SearchState
    private var index: [String: Int] = [:]
    private var unsaved = 0
    private var lastSave = Date.distantPast
    private var lastSaveSeconds: TimeInterval = 0
    /// Seconds between saves (0: after every evaluation). A kill loses at most this much work
    /// (or five times the last save's duration, when a large state takes longer to write,
    /// so saving never takes more than a sixth of the run).
    public var saveInterval: TimeInterval = 0.2
    /// Evaluations replayed from the file by this process.
    public private(set) var replayed = 0
    /// Evaluations computed and recorded by this process.
    public private(set) var recorded = 0
    /// Called after each new record (tests throw from it to simulate a kill).
    var afterRecord: ((Int) throws -> Void)?

    /// Opens `path` for `key`: an existing state made with the same key is loaded, one made
    /// with another key is refused, a missing file starts empty.
    public init(path: String, key: SearchStateKey) throws {
        self.path = path
        self.key = key
        state = SearchState(digest: key.digest, key: key, evaluations: [])
        if FileKind(path: path) != .missing {
            try FileKind.requireRegularFile(path, expected: "a search state file")
            guard let data = FileManager.default.contents(atPath: path) else {
                throw SearchStateError.unreadable(path: path, reason: "cannot be read")
            }
            let saved: SearchState
            do { saved = try JSONDecoder().decode(SearchState.self, from: data) } catch {
                throw SearchStateError.unreadable(path: path, reason: "\(error)")
            }
            guard saved.schema == state.schema else {
                throw SearchStateError.unreadable(path: path, reason: "schema \(saved.schema), expected \(state.schema)")
            }
            guard saved.digest == key.digest && saved.key == key else {
                let fields = saved.key.differences(from: key)
                throw SearchStateError.mismatch(path: path, fields: fields.isEmpty ? ["digest"] : fields)
            }
            state.evaluations = saved.evaluations
            for (i, r) in saved.evaluations.enumerated() { index[Self.lookup(r.int8Layers, r.rejectAbove)] = i }
        }
    }

    /// Evaluations in the file (replayable).
    public var count: Int { state.evaluations.count }

    private static func lookup(_ int8Layers: [String], _ rejectAbove: Double?) -> String {
        // Double's description round-trips exactly, so the budget is matched bit for bit.
        int8Layers.joined(separator: "\u{1}") + "\u{2}" + (rejectAbove.map { "\($0)" } ?? "-")
    }

    /// The saved evaluation of a map under a rejection budget, if any.
    func replay(_ int8Layers: [String], rejectAbove: Double?) -> SearchState.Record? {
        guard let i = index[Self.lookup(int8Layers, rejectAbove)] else { return nil }
        replayed += 1
        return state.evaluations[i]
    }

    func record(_ int8Layers: [String], rejectAbove: Double?, evaluation: Evaluation, cost: Double) throws {
        let r = SearchState.Record(int8Layers: int8Layers, rejectAbove: rejectAbove, evaluation: evaluation, cost: cost)
        let k = Self.lookup(int8Layers, rejectAbove)
        if let i = index[k] { state.evaluations[i] = r } else { index[k] = state.evaluations.count; state.evaluations.append(r) }
        recorded += 1
        unsaved += 1
        if saveInterval == 0 || Date().timeIntervalSince(lastSave) >= max(saveInterval, 5 * lastSaveSeconds) { try save() }
        try afterRecord?(recorded)
    }

    /// Writes what is not saved yet (temp file, fsync, rename).
    public func save() throws {
        guard unsaved > 0 || FileKind(path: path) == .missing else { return }
        let start = Date()
        try OutputFile.write(try deterministicJSONEncoder().encode(state), to: path)
        unsaved = 0
        lastSave = Date()
        lastSaveSeconds = lastSave.timeIntervalSince(start)
    }
}
