import Foundation

/// Which inputs a `Dataset` reads from disk batch by batch instead of loading.
public enum DataLoading: String, Sendable, CaseIterable {
    /// Everything in memory (the only way before streaming; what small sets use).
    case memory
    /// Every model input streamed.
    case streaming
    /// Inputs streamed when a folder of shards is given or the file's inputs take more than
    /// `Dataset.streamingThresholdBytes` decoded.
    case auto
}

/// One graph input's samples: a tensor in memory, or rows streamed from `.npz` shards.
struct DataColumn: Sendable {
    var tensor: Tensor?
    var stream: StreamedRows?

    init(tensor: Tensor) { self.tensor = tensor }
    init(stream: StreamedRows) { self.stream = stream }

    /// Rows `range` of this column's samples; a streamed column maps them through `indices`
    /// (a split's rows of the underlying file), a tensor in memory already is the split.
    func rows(_ range: Range<Int>, through indices: [Int]?) throws -> Tensor {
        if let tensor { return tensor.slice(range) }
        return try stream!.rows(indices.map { Array($0[range]) } ?? Array(range))
    }
}

/// An input's rows across one or more shards (concatenated in name order), converted to the
/// input's type as they are read, like `Dataset.conform` converts a loaded array.
struct StreamedRows: Sendable {
    let parts: [NPZArrayStream]
    /// First row of each part in the concatenation, and the total at the end.
    let starts: [Int]
    let dtype: DType
    let rowShape: [Int]

    init(parts: [NPZArrayStream], dtype: DType) {
        self.parts = parts; self.dtype = dtype
        var s = [0]
        for p in parts { s.append(s.last! + p.rows) }
        starts = s
        rowShape = Array(parts[0].shape.dropFirst())
    }

    /// The rows at `rows` (any order), read in runs of consecutive rows within one shard.
    func rows(_ rows: [Int]) throws -> Tensor {
        var floats: [Float] = [], ints: [Int64] = []
        var i = 0
        while i < rows.count {
            let part = partIndex(rows[i])
            var j = i + 1
            while j < rows.count, rows[j] == rows[j - 1] + 1, rows[j] < starts[part + 1] { j += 1 }
            let local = rows[i] - starts[part]
            let t = try parts[part].rows(local..<local + (j - i))
            if dtype.isFloating { floats += t.floats } else { ints += t.ints }
            i = j
        }
        let shape = [rows.count] + rowShape
        return dtype.isFloating ? Tensor(shape: shape, floats: floats, dtype: dtype) : Tensor(shape: shape, ints: ints, dtype: dtype)
    }

    private func partIndex(_ row: Int) -> Int {
        var lo = 0, hi = parts.count - 1
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if starts[mid] <= row { lo = mid } else { hi = mid - 1 }
        }
        return lo
    }
}

extension Dataset {
    /// Inputs larger than this (decoded) are streamed by `DataLoading.auto`: 64 MiB, a few
    /// hundred batches of a 224x224 image model, below which loading is cheaper than
    /// re-reading the file on every pass.
    public static let streamingThresholdBytes = 64 << 20

    /// The `.npz` files of a shard folder, in name order.
    public static func shardFiles(_ folder: String) throws -> [String] {
        let names = try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.hasSuffix(".npz") }.sorted()
        guard !names.isEmpty else { throw ModelError.badData(path: folder, reason: "the folder holds no .npz shards") }
        return names.map { (folder as NSString).appendingPathComponent($0) }
    }

    /// Decoded bytes of the file's arrays that feed model inputs; 0 when the file cannot be
    /// read that way (the in-memory path then reports what is wrong, as it always has).
    static func inputBytes(path: String, graph: Graph) -> Int {
        guard FileKind(path: path) == .regular, let arrays = try? NPZArrayStream.open(path: path) else { return 0 }
        return graph.inputs.reduce(0) { total, input in
            guard let s = arrays[input.name] ?? (graph.inputs.count == 1 ? arrays["input"] : nil) else { return total }
            return total + s.shape.reduce(1, *) * (s.dtype.isFloating ? 4 : 8)
        }
    }

    /// A dataset whose inputs are streamed from `path` (a file or a folder of shards). Every
    /// streamed array is read through once here, in bounded memory, for the checks a load
    /// makes (type, shape, finite values, integer range, CRC-32), so a batch read later
    /// cannot find bad data.
    static func streamed(path: String, graph: Graph, allowNonfinite: Bool) throws -> Dataset {
        let isFolder = FileKind(path: path) == .directory
        let files = isFolder ? try shardFiles(path) : [path]
        let opened = try files.map { try NPZArrayStream.open(path: $0) }
        if graph.inputs.count != 1, let npy = files.first(where: { Numpy.isNPY(path: $0) }) {
            throw ModelError.badData(path: npy, reason: "an .npy file holds one array, so it can feed only a single-input model; this one has \(graph.inputs.count) inputs (\(graph.inputs.map(\.name).joined(separator: ", "))): give an .npz with an array per input")
        }
        // Which array feeds which input, by the first shard.
        var arrayFor: [String: String] = [:]
        for input in graph.inputs {
            if opened[0][input.name] != nil { arrayFor[input.name] = input.name }
            else if graph.inputs.count == 1, opened[0]["input"] != nil { arrayFor[input.name] = "input" }
            else { throw ModelError.missingInput(input: input.name, path: files[0], available: Array(opened[0].keys)) }
        }
        let names = Set(opened[0].keys)
        for (file, arrays) in zip(files, opened).dropFirst() where Set(arrays.keys) != names {
            throw ModelError.badData(path: file, reason: "shard holds arrays \(arrays.keys.sorted().joined(separator: ", ")), \(files[0]) holds \(names.sorted().joined(separator: ", ")); every shard needs the same arrays")
        }
        var columns: [String: DataColumn] = [:]
        var counts: [String: Int] = [:]
        for input in graph.inputs {
            let name = arrayFor[input.name]!
            var parts: [NPZArrayStream] = []
            var target: DType?
            for (file, arrays) in zip(files, opened) {
                let s = arrays[name]!
                // The shape and type checks a loaded array gets, on a stand-in with its full shape
                // and no values (the values are checked by the scan below).
                var empty = try s.rows(0..<0)
                empty.shape = s.shape
                let probe = try Dataset.conform(empty, to: input, array: name, path: file)
                if let t = target, t != probe.dtype { throw ModelError.badArray(path: file, array: name, reason: "has type \(s.dtype), the first shard's converts to \(t)") }
                if let first = parts.first, Array(first.shape.dropFirst()) != Array(s.shape.dropFirst()) {
                    throw ModelError.badArray(path: file, array: name, reason: "rows of shape \(Tensor.describe(Array(s.shape.dropFirst()))), the first shard's are \(Tensor.describe(Array(first.shape.dropFirst())))")
                }
                target = probe.dtype
                try s.scan { block, firstRow in
                    if let want = input.dtype, !want.isFloating, let (row, value) = Dataset.firstOutOfRange(block, for: want) {
                        throw ModelError.badArray(path: file, array: name, reason: "row \(firstRow + row) holds \(value), outside the range of input '\(input.name)' (\(want.rawValue))")
                    }
                    if !allowNonfinite {
                        // Name the row in the whole array, not in the block.
                        do { try Dataset.checkFinite(block, array: name, path: file) } catch { throw Dataset.shiftRow(error, by: firstRow) }
                    }
                }
                parts.append(s)
            }
            let column = StreamedRows(parts: parts, dtype: target!)
            columns[input.name] = DataColumn(stream: column)
            counts[input.name] = column.starts.last!
        }
        guard Set(counts.values).count <= 1 else {
            throw ModelError.badData(path: path, reason: "inputs disagree on the sample count: " +
                counts.map { "\($0.key) has \($0.value)" }.sorted().joined(separator: ", "))
        }
        let n = counts.values.first ?? 0
        guard n > 0 else { throw ModelError.badData(path: path, reason: "no samples") }
        // The other arrays (labels, masks, boxes) are loaded, each shard's concatenated.
        let streamedNames = Set(arrayFor.values)
        var loaded: [String: [Tensor]] = [:]
        for file in files where !Numpy.isNPY(path: file) {
            for (name, t) in try Numpy.readNPZ(path: file, skipping: streamedNames) { loaded[name, default: []].append(t) }
        }
        var extras: [String: Tensor] = [:]
        for (name, tensors) in loaded {
            extras[name] = tensors.count == 1 ? tensors[0] : try Tensor.concatenated(tensors, array: name, path: path)
        }
        if !allowNonfinite {
            for (name, t) in extras.sorted(by: { $0.key < $1.key }) where name != "labels" && t.rank >= 1 {
                try Dataset.checkFinite(t, array: name, path: path)
            }
        }
        var labels: [Int64]?
        var labelsPerSample = 1
        if let l = extras["labels"] {
            try Dataset.checkLabels(l, samples: n, path: path)
            labels = l.ints
            labelsPerSample = l.rank == 2 ? l.shape[1] : 1
        }
        return Dataset(path: path, columns: columns, labels: labels, labelsPerSample: labelsPerSample, extras: extras, count: n, rowIndices: nil)
    }

    /// `checkFinite`'s error with its row counted from `offset` (a block's first row).
    static func shiftRow(_ error: Error, by offset: Int) -> Error {
        guard offset > 0, case ModelError.badArray(let p, let a, let reason) = error,
              let r = reason.range(of: #"in row (\d+)"#, options: .regularExpression) else { return error }
        let row = Int(reason[r].dropFirst("in row ".count))! + offset
        return ModelError.badArray(path: p, array: a, reason: reason.replacingCharacters(in: r, with: "in row \(row)"))
    }
}

extension Tensor {
    /// Shards' arrays joined along dimension 0; their other dimensions and types must agree.
    static func concatenated(_ parts: [Tensor], array: String, path: String) throws -> Tensor {
        let first = parts[0]
        for p in parts.dropFirst() where p.rank < 1 || Array(p.shape.dropFirst()) != Array(first.shape.dropFirst()) || p.dtype != first.dtype {
            throw ModelError.badArray(path: path, array: array, reason: "shards disagree: \(p.dtype) \(Tensor.describe(p.shape)) and \(first.dtype) \(Tensor.describe(first.shape)); arrays are concatenated along the first dimension")
        }
        guard first.rank >= 1 else { throw ModelError.badArray(path: path, array: array, reason: "a scalar cannot be concatenated across shards") }
        let shape = [parts.reduce(0) { $0 + $1.shape[0] }] + first.shape.dropFirst()
        return first.dtype.isFloating ? Tensor(shape: shape, floats: parts.flatMap(\.floats), dtype: first.dtype)
                                      : Tensor(shape: shape, ints: parts.flatMap(\.ints), dtype: first.dtype)
    }
}
