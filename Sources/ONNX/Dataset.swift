import Foundation

/// Model inputs bound to the arrays of an `.npz` file (or a folder of `.npz` shards),
/// checked against the graph's inputs once, then sliced into batches. Arrays are named after
/// the inputs (a single-input model also accepts `input`); labels, when present, are under
/// `labels`. Large inputs are streamed from disk batch by batch (Dataset+Streaming.swift,
/// docs/scale.md); everything else is held in memory.
public struct Dataset: Sendable {
    public let path: String
    /// Feeds per graph input name, each with the samples along dimension 0.
    let columns: [String: DataColumn]
    /// Class indices, `labelsPerSample` per sample, row-major.
    public let labels: [Int64]?
    /// 1 for labels [N]; T for per-position labels [N, T] (sequence metrics, docs/metrics.md).
    public let labelsPerSample: Int
    /// The arrays held in memory, for metrics that read extra arrays (masks, boxes...): every
    /// array of the file, except the inputs that are streamed.
    public let extras: [String: Tensor]
    public let count: Int
    /// Rows of the underlying columns this dataset sees (a split of streamed data), in order;
    /// nil for all of them.
    let rowIndices: [Int]?

    /// Feeds per graph input name, whole. Streamed inputs are read into memory: for tests
    /// and small sets; evaluation goes through `batch`.
    public var arrays: [String: Tensor] { batch(0..<count) }

    /// Whether any input is read from disk batch by batch.
    public var isStreamed: Bool { columns.values.contains { $0.stream != nil } }

    /// Reads and checks `path`, an `.npz` file or a folder of `.npz` shards
    /// (docs/data-validation.md, docs/scale.md). `allowNonfinite` lets NaN/Inf in float
    /// inputs through (`--allow-nonfinite`); `loading` decides which inputs are streamed.
    public init(path: String, graph: Graph, allowNonfinite: Bool = false, loading: DataLoading = .auto) throws {
        // A plain .npy (one array: a single-input model's samples) is always read by rows.
        if FileKind(path: path) == .directory || loading == .streaming || Numpy.isNPY(path: path)
            || (loading == .auto && Dataset.inputBytes(path: path, graph: graph) > Dataset.streamingThresholdBytes) {
            self = try Dataset.streamed(path: path, graph: graph, allowNonfinite: allowNonfinite)
            return
        }
        try self.init(arrays: try Numpy.readNPZ(path: path), path: path, graph: graph, allowNonfinite: allowNonfinite)
    }

    public init(arrays file: [String: Tensor], path: String, graph: Graph, allowNonfinite: Bool = false) throws {
        self.path = path
        var bound: [String: Tensor] = [:]
        for input in graph.inputs {
            var t: Tensor
            let arrayName: String
            if let a = file[input.name] { t = a; arrayName = input.name }
            else if graph.inputs.count == 1, let a = file["input"] { t = a; arrayName = "input" }
            else { throw ModelError.missingInput(input: input.name, path: path, available: Array(file.keys)) }
            t = try Dataset.conform(t, to: input, array: arrayName, path: path)
            if !allowNonfinite { try Dataset.checkFinite(t, array: arrayName, path: path) }
            bound[input.name] = t
        }
        let counts = Set(bound.values.map { $0.shape.first ?? 1 })
        guard counts.count <= 1 else {
            throw ModelError.badData(path: path, reason: "inputs disagree on the sample count: " +
                bound.map { "\($0.key) has \($0.value.shape.first ?? 1)" }.sorted().joined(separator: ", "))
        }
        if !allowNonfinite {
            // Arrays metrics read besides the inputs (boxes, masks...) are data too.
            for (name, t) in file.sorted(by: { $0.key < $1.key }) where bound[name] == nil && name != "labels" && t.rank >= 1 {
                try Dataset.checkFinite(t, array: name, path: path)
            }
        }
        let n = counts.first ?? 0
        guard n > 0 else {
            throw ModelError.badData(path: path, reason: "no samples: " +
                bound.map { "'\($0.key)' has shape \(Tensor.describe($0.value.shape))" }.sorted().joined(separator: ", "))
        }
        if let l = file["labels"] {
            try Dataset.checkLabels(l, samples: n, path: path)
            labels = l.ints
            labelsPerSample = l.rank == 2 ? l.shape[1] : 1
        } else { labels = nil; labelsPerSample = 1 }
        columns = bound.mapValues { DataColumn(tensor: $0) }
        extras = file
        count = n
        rowIndices = nil
    }

    /// Labels are class indices: an integer array of shape [N], no value below 0, or [N, T]
    /// per position (T >= 2; [N, 1] is refused as the usual column-vector slip) where negative
    /// values are padding that the metric checks against its ignore index. The upper bound
    /// needs the model's output width, so the metric checks it (Metric.swift).
    static func checkLabels(_ l: Tensor, samples n: Int, path: String) throws {
        guard !l.dtype.isFloating, l.dtype != .bool else {
            throw ModelError.badArray(path: path, array: "labels", reason: "must hold integer class indices, it has \(l.dtype) values (save it with .astype(np.int64))")
        }
        guard (l.rank == 1 || (l.rank == 2 && l.shape[1] >= 2)), l.shape[0] == n else {
            throw ModelError.badArray(path: path, array: "labels", reason: "must have shape [\(n)] (one class index per sample) or [\(n), T] with T >= 2 (per position), it has \(Tensor.describe(l.shape))")
        }
        if l.rank == 2 { return }
        // uint64 values above Int64.max are stored as negative bit patterns: also out of range.
        if let row = l.ints.firstIndex(where: { $0 < 0 }) {
            let value = l.dtype == .uint64 ? String(UInt64(bitPattern: l.ints[row])) : String(l.ints[row])
            throw ModelError.badArray(path: path, array: "labels", reason: "row \(row) holds \(value); class indices cannot be negative")
        }
    }

    /// NaN or infinite values in a float array: the first row and how many.
    static func checkFinite(_ t: Tensor, array: String, path: String) throws {
        guard t.dtype.isFloating, let first = t.floats.firstIndex(where: { !$0.isFinite }) else { return }
        let bad = t.floats[first...].reduce(0) { $0 + ($1.isFinite ? 0 : 1) }
        let row = t.shape.dropFirst().reduce(1, *)
        throw ModelError.badArray(path: path, array: array, reason: "holds \(bad) NaN or infinite value\(bad == 1 ? "" : "s"), the first in row \(row > 0 ? first / row : 0) (\(t.floats[first])); pass --allow-nonfinite if that is intended")
    }

    /// Checks dtype and shape against the model input and converts floats/ints as needed.
    /// Integers are range-checked against the input's type before the cast (a uint64 token
    /// id must not wrap to -1).
    static func conform(_ t: Tensor, to input: ValueInfo, array: String? = nil, path: String = "") throws -> Tensor {
        var t = t
        if let want = input.dtype {
            switch (want.isFloating, t.dtype.isFloating) {
            case (true, true): t.dtype = .float32
            case (false, false):
                if let (row, value) = firstOutOfRange(t, for: want) {
                    throw ModelError.badArray(path: path, array: array ?? input.name, reason: "row \(row) holds \(value), outside the range of input '\(input.name)' (\(want.rawValue))")
                }
                t.dtype = want
            default:
                throw ModelError.inputDTypeMismatch(input: input.name, expected: want.rawValue, actual: t.dtype.rawValue)
            }
        }
        if let shape = input.shape {
            let ok = shape.count == t.rank && zip(shape.dropFirst(), t.shape.dropFirst()).allSatisfy { $0 == nil || $0 == $1 }
            guard ok, t.rank >= 1 else {
                throw ModelError.inputShapeMismatch(input: input.name, expected: input.shapeDescription,
                                                    actual: Tensor.describe(t.shape))
            }
        }
        guard t.rank >= 1 else {
            throw ModelError.inputShapeMismatch(input: input.name, expected: "an array with the samples along dimension 0",
                                                actual: "a scalar")
        }
        return t
    }

    /// The first value of integer tensor `t` that `want` cannot represent: (row, value as text).
    static func firstOutOfRange(_ t: Tensor, for want: DType) -> (Int, String)? {
        let range: ClosedRange<Int64>
        switch want {
        case .int8: range = Int64(Int8.min)...Int64(Int8.max)
        case .uint8: range = 0...Int64(UInt8.max)
        case .int16: range = Int64(Int16.min)...Int64(Int16.max)
        case .uint16: range = 0...Int64(UInt16.max)
        case .int32: range = Int64(Int32.min)...Int64(Int32.max)
        case .uint32: range = 0...Int64(UInt32.max)
        case .bool: range = 0...1
        case .uint64: range = (t.dtype == .uint64 ? Int64.min : 0)...Int64.max   // uint64 bit patterns stay as they are
        default: range = Int64.min...Int64.max
        }
        // A uint64 array holds values above Int64.max as negative bit patterns.
        let sourceUnsigned64 = t.dtype == .uint64 && want != .uint64
        guard let i = t.ints.firstIndex(where: { !range.contains($0) || (sourceUnsigned64 && $0 < 0) }) else { return nil }
        let row = t.shape.dropFirst().reduce(1, *)
        let text = t.dtype == .uint64 ? String(UInt64(bitPattern: t.ints[i])) : String(t.ints[i])
        return (row > 0 ? i / row : 0, text)
    }

    /// Samples `range` of every input, ready to feed. A streamed input that cannot be read
    /// any more (the file changed or vanished after it was checked) stops the process with
    /// the file's name: callers cannot handle it better, and the data was verified at open.
    public func batch(_ range: Range<Int>) -> [String: Tensor] {
        do { return try readBatch(range) } catch {
            fatalError("data \(path) became unreadable during the run: \(error)")
        }
    }

    /// Samples `range` of every input; throws when a streamed input cannot be read.
    public func readBatch(_ range: Range<Int>) throws -> [String: Tensor] {
        try columns.mapValues { try $0.rows(range, through: rowIndices) }
    }

    /// Labels of `range`, if the file has labels.
    public func labels(_ range: Range<Int>) -> [Int64]? {
        labels.map { Array($0[range.lowerBound * labelsPerSample..<range.upperBound * labelsPerSample]) }
    }

    /// Batch ranges covering every sample.
    public func batches(size: Int) -> [Range<Int>] {
        stride(from: 0, to: count, by: max(size, 1)).map { $0..<min($0 + max(size, 1), count) }
    }

    /// The subset of samples at `indices` (for splits), labels and extras included. Streamed
    /// inputs are not copied: the subset reads their rows through the indices.
    public func subset(_ indices: [Int], path: String) -> Dataset {
        let through = rowIndices.map { all in indices.map { all[$0] } } ?? indices
        return Dataset(path: path, columns: columns.mapValues { $0.stream != nil ? $0 : DataColumn(tensor: $0.tensor!.gather(indices)) },
                       labels: labels.map { l in indices.flatMap { l[$0 * labelsPerSample..<($0 + 1) * labelsPerSample] } },
                       labelsPerSample: labelsPerSample,
                       extras: extras.filter { $0.value.shape.first == count }.mapValues { $0.gather(indices) },
                       count: indices.count, rowIndices: isStreamed ? through : nil)
    }

    init(path: String, columns: [String: DataColumn], labels: [Int64]?, labelsPerSample: Int = 1, extras: [String: Tensor], count: Int,
         rowIndices: [Int]?) {
        self.path = path; self.columns = columns; self.labels = labels; self.labelsPerSample = labelsPerSample
        self.extras = extras; self.count = count
        self.rowIndices = rowIndices
    }
}

extension Tensor {
    /// Rows `range` along dimension 0.
    public func slice(_ range: Range<Int>) -> Tensor {
        let row = shape.dropFirst().reduce(1, *)
        var t = self
        t.shape[0] = range.count
        if dtype.isFloating { t.floats = Array(floats[range.lowerBound * row..<range.upperBound * row]) }
        else { t.ints = Array(ints[range.lowerBound * row..<range.upperBound * row]) }
        return t
    }

    /// Rows at `indices` along dimension 0.
    public func gather(_ indices: [Int]) -> Tensor {
        let row = shape.dropFirst().reduce(1, *)
        var t = self
        t.shape[0] = indices.count
        if dtype.isFloating { t.floats = indices.flatMap { floats[$0 * row..<($0 + 1) * row] } }
        else { t.ints = indices.flatMap { ints[$0 * row..<($0 + 1) * row] } }
        return t
    }
}
