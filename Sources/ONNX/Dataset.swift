import Foundation

/// Model inputs bound to the arrays of an `.npz` file, checked against the graph's inputs
/// once, then sliced into batches. Arrays are named after the inputs (a single-input model
/// also accepts `input`); labels, when present, are under `labels`.
public struct Dataset: Sendable {
    public let path: String
    /// Feeds per graph input name, each with the samples along dimension 0.
    public let arrays: [String: Tensor]
    public let labels: [Int64]?
    /// Every array of the file, for metrics that read extra arrays (masks, boxes...).
    public let extras: [String: Tensor]
    public let count: Int

    public init(path: String, graph: Graph) throws {
        try self.init(arrays: try Numpy.readNPZ(path: path), path: path, graph: graph)
    }

    public init(arrays file: [String: Tensor], path: String, graph: Graph) throws {
        self.path = path
        var bound: [String: Tensor] = [:]
        for input in graph.inputs {
            var t: Tensor
            if let a = file[input.name] { t = a }
            else if graph.inputs.count == 1, let a = file["input"] { t = a }
            else { throw ModelError.missingInput(input: input.name, path: path, available: Array(file.keys)) }
            t = try Dataset.conform(t, to: input)
            bound[input.name] = t
        }
        let counts = Set(bound.values.map { $0.shape.first ?? 1 })
        guard counts.count <= 1 else {
            throw ModelError.badData(path: path, reason: "inputs disagree on the sample count: " +
                bound.map { "\($0.key) has \($0.value.shape.first ?? 1)" }.sorted().joined(separator: ", "))
        }
        let n = counts.first ?? 0
        if let l = file["labels"] {
            guard !l.dtype.isFloating || l.floats.allSatisfy({ $0 == $0.rounded() }) else {
                throw ModelError.badData(path: path, reason: "'labels' must hold integer class indices, it has \(l.dtype) values with fractions")
            }
            guard l.shape.first == n, l.count == n else {
                throw ModelError.inputShapeMismatch(input: "labels", expected: "[\(n)]", actual: Tensor.describe(l.shape))
            }
            labels = l.asInts
        } else { labels = nil }
        arrays = bound
        extras = file
        count = n
    }

    /// Checks dtype and shape against the model input and converts floats/ints as needed.
    static func conform(_ t: Tensor, to input: ValueInfo) throws -> Tensor {
        var t = t
        if let want = input.dtype {
            switch (want.isFloating, t.dtype.isFloating) {
            case (true, true): t.dtype = .float32
            case (false, false): t.dtype = want; t.ints = t.ints.map(want.wrap)
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

    /// Samples `range` of every input, ready to feed.
    public func batch(_ range: Range<Int>) -> [String: Tensor] {
        arrays.mapValues { $0.slice(range) }
    }

    /// Labels of `range`, if the file has labels.
    public func labels(_ range: Range<Int>) -> [Int64]? { labels.map { Array($0[range]) } }

    /// Batch ranges covering every sample.
    public func batches(size: Int) -> [Range<Int>] {
        stride(from: 0, to: count, by: max(size, 1)).map { $0..<min($0 + max(size, 1), count) }
    }

    /// The subset of samples at `indices` (for splits), labels and extras included.
    public func subset(_ indices: [Int], path: String) -> Dataset {
        Dataset(path: path, arrays: arrays.mapValues { $0.gather(indices) },
                labels: labels.map { l in indices.map { l[$0] } },
                extras: extras.filter { $0.value.shape.first == count }.mapValues { $0.gather(indices) },
                count: indices.count)
    }

    private init(path: String, arrays: [String: Tensor], labels: [Int64]?, extras: [String: Tensor], count: Int) {
        self.path = path; self.arrays = arrays; self.labels = labels; self.extras = extras; self.count = count
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
