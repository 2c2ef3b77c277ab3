import Foundation
import ONNX

/// The user's own metric (`--metric-command CMD`, docs/metrics.md). Per evaluation it writes
/// OUTPUTS.npz (every graph output, rows in data order), DATA.npz (the evaluated split's
/// arrays) and REFERENCE.npz (the FP32 outputs) to a private temporary folder and runs
/// `CMD OUTPUTS.npz DATA.npz REFERENCE.npz` through `/bin/sh -c`. The command prints a JSON
/// array of per-sample scores in points (higher is better), or `{"score": x}` for a
/// split-level metric, which then has no confidence interval.
public final class CommandScorer: Scorer {
    public let command: String
    /// Graph outputs kept per sample, in name order: (name, shape without N, floats per sample).
    private var layout: [(name: String, shape: [Int], width: Int)] = []
    private let folder = FileManager.default.temporaryDirectory.appendingPathComponent("mpq-metric-\(UUID().uuidString)").path
    private var folderReady = false
    /// What DATA.npz and REFERENCE.npz hold now, so each is written once per split.
    private var dataKey: String?
    private var referenceValues: [Float]?
    private var referenceSpool: UUID?

    public init(command: String) { self.command = command }

    deinit { if folderReady { try? FileManager.default.removeItem(atPath: folder) } }

    public var name: String { "command" }
    public var settings: String { " command \(command)" }
    public var needsReference: Bool { true }
    /// One run of the command per evaluation, on the whole split.
    public var scoresBatchwise: Bool { false }

    /// Every graph output, flattened per sample and concatenated in name order (the command
    /// sees raw outputs: `--pool` does not apply).
    public func rows(_ outputs: [String: Tensor], output: String, transform: OutputTransform, data: Dataset,
                     range: Range<Int>) throws -> Tensor {
        let names = outputs.keys.sorted()
        let n = range.count
        let current = try names.map { name -> (name: String, shape: [Int], width: Int) in
            let t = outputs[name]!
            guard t.rank >= 1, t.shape[0] == n else {
                throw MetricError.badOutput(output: name, reason: "shape \(Tensor.describe(t.shape)) has no batch dimension of \(n), so --metric-command cannot get its rows")
            }
            let shape = Array(t.shape.dropFirst())
            return (name, shape, shape.reduce(1, *))
        }
        if layout.isEmpty { layout = current }
        guard layout.map(\.name) == current.map(\.name), layout.map(\.shape) == current.map(\.shape) else {
            throw MetricError.badOutput(output: output, reason: "graph outputs changed shape between batches; --metric-command needs fixed shapes per sample")
        }
        let width = current.reduce(0) { $0 + $1.width }
        var values = [Float](repeating: 0, count: n * width)
        var offset = 0
        for entry in current {
            let v = outputs[entry.name]!.asFloats
            for i in 0..<n {
                for j in 0..<entry.width { values[i * width + offset + j] = v[i * entry.width + j] }
            }
            offset += entry.width
        }
        return Tensor(shape: [n, width], floats: values)
    }

    /// The kept rows split back into the graph outputs, [N, ...] each.
    func arrays(_ o: Outputs) -> [String: Tensor] {
        var result: [String: Tensor] = [:]
        var offset = 0
        for entry in layout {
            var v = [Float](repeating: 0, count: o.rows * entry.width)
            for i in 0..<o.rows {
                for j in 0..<entry.width { v[i * entry.width + j] = o.values[i * o.width + offset + j] }
            }
            result[entry.name] = Tensor(shape: [o.rows] + entry.shape, floats: v)
            offset += entry.width
        }
        return result
    }

    /// The kept rows of a spool, split back into the graph outputs as `arrays` does, each
    /// entry read from the spool chunk by chunk (`--metric-command` on a large split).
    func sources(_ spool: RowSpool) -> [NPZEntrySource] {
        var offset = 0
        return layout.map { entry in
            let columns = offset..<offset + entry.width
            offset += entry.width
            let floatBytes = MemoryLayout<Float>.size
            return NPZEntrySource(name: entry.name, dtype: .float32, shape: [spool.rows] + entry.shape,
                                  dataBytes: spool.rows * entry.width * floatBytes) { start, count in
                // Whole floats of whole rows around the bytes asked for, then those bytes.
                let first = start / floatBytes, last = (start + count + floatBytes - 1) / floatBytes
                let rows = first / entry.width..<(last + entry.width - 1) / entry.width
                let all = try spool.values(rows)
                var picked = [Float](); picked.reserveCapacity(rows.count * entry.width)
                for i in 0..<rows.count { picked += all[i * spool.width + columns.lowerBound..<i * spool.width + columns.upperBound] }
                let skip = start - rows.lowerBound * entry.width * floatBytes
                return picked.withUnsafeBytes { Data($0[skip..<skip + count]) }
            }
        }
    }

    public var scoresFromDisk: Bool { true }

    public func score(spooled outputs: RowSpool, reference: RowSpool, data: Dataset, range: Range<Int>) throws -> SplitScores {
        let (out, dataPath, refPath) = try prepare(data: data, range: range)
        if referenceSpool != reference.identity {
            try Numpy.writeNPZ(streaming: sources(reference), path: refPath)
            referenceSpool = reference.identity; referenceValues = nil
        }
        try Numpy.writeNPZ(streaming: sources(outputs), path: out)
        return try run(paths: [out, dataPath, refPath], rows: outputs.rows)
    }

    public func score(_ outputs: Outputs, reference: Outputs?, data: Dataset, range: Range<Int>) throws -> SplitScores {
        let (out, dataPath, refPath) = try prepare(data: data, range: range)
        let ref = reference ?? outputs
        if referenceValues != ref.values {
            try Numpy.writeNPZ(arrays(ref), path: refPath)
            referenceValues = ref.values; referenceSpool = nil
        }
        try Numpy.writeNPZ(arrays(outputs), path: out)
        return try run(paths: [out, dataPath, refPath], rows: outputs.rows)
    }

    /// The folder and DATA.npz (written once per split), and the three paths.
    func prepare(data: Dataset, range: Range<Int>) throws -> (String, String, String) {
        let out = folder + "/OUTPUTS.npz", dataPath = folder + "/DATA.npz", refPath = folder + "/REFERENCE.npz"
        if !folderReady {
            do { try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true) } catch {
                throw MetricError.commandFailed(command: command, reason: "cannot run: no temporary folder \(folder) (\(error.localizedDescription))", stderr: "")
            }
            folderReady = true
        }
        let key = "\(data.path) \(range)"
        if dataKey != key {
            // Arrays with a row per sample, restricted to the rows scored.
            let rows = data.extras.filter { $0.value.rank >= 1 && $0.value.shape[0] == data.count }
            try Numpy.writeNPZ(rows.mapValues { range == 0..<data.count ? $0 : $0.slice(range) }, path: dataPath)
            dataKey = key
        }
        return (out, dataPath, refPath)
    }

    /// Runs the command and parses what it printed.
    func run(paths: [String], rows: Int) throws -> SplitScores {
        let stdoutPath = folder + "/stdout", stderrPath = folder + "/stderr"
        // A failure to create them shows as FileHandle's error just below, naming the path.
        _ = FileManager.default.createFile(atPath: stdoutPath, contents: nil)
        _ = FileManager.default.createFile(atPath: stderrPath, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", command + paths.map { " " + Self.quoted($0) }.joined()]
        process.standardInput = FileHandle.nullDevice
        // Files, not pipes: a command that prints a lot cannot block on a full pipe.
        let stdoutHandle = try FileHandle(forWritingTo: URL(fileURLWithPath: stdoutPath))
        let stderrHandle = try FileHandle(forWritingTo: URL(fileURLWithPath: stderrPath))
        defer { try? stdoutHandle.close(); try? stderrHandle.close() }
        process.standardOutput = stdoutHandle
        process.standardError = stderrHandle
        do { try process.run() } catch { throw failure("cannot start /bin/sh (\(error.localizedDescription))", stderrPath) }
        process.waitUntilExit()
        guard process.terminationReason == .exit, process.terminationStatus == 0 else {
            let how = process.terminationReason == .exit ? "exited with status \(process.terminationStatus)" : "was killed by signal \(process.terminationStatus)"
            throw failure(how, stderrPath)
        }
        let printed = FileManager.default.contents(atPath: stdoutPath) ?? Data()
        guard let json = try? JSONSerialization.jsonObject(with: printed, options: [.fragmentsAllowed]) else {
            throw failure("printed no JSON on stdout (want an array of \(rows) per-sample scores or {\"score\": x}; got \(Self.tail(printed, 200)))", stderrPath)
        }
        if let list = json as? [Any] {
            let scores = list.compactMap { ($0 as? NSNumber)?.doubleValue }
            guard scores.count == list.count else { throw failure("printed an array with non-numbers; want \(rows) numbers", stderrPath) }
            guard scores.count == rows else { throw failure("printed \(scores.count) scores for \(rows) samples", stderrPath) }
            if let k = scores.firstIndex(where: { !$0.isFinite }) { throw failure("score \(k) is not a finite number", stderrPath) }
            return .perSample(scores)
        }
        if let object = json as? [String: Any], let s = (object["score"] as? NSNumber)?.doubleValue {
            guard s.isFinite else { throw failure("printed a score that is not a finite number", stderrPath) }
            return .split(s)
        }
        throw failure("printed JSON that is neither an array of \(rows) scores nor {\"score\": x}", stderrPath)
    }

    /// The error to throw, after removing the temporary folder: the command line exits on it
    /// without unwinding to `deinit`.
    func failure(_ what: String, _ stderrPath: String) -> MetricError {
        let stderr = Self.tail(FileManager.default.contents(atPath: stderrPath) ?? Data(), 2000)
        try? FileManager.default.removeItem(atPath: folder)
        dataKey = nil; referenceValues = nil; referenceSpool = nil
        folderReady = false
        return .commandFailed(command: command, reason: what, stderr: stderr)
    }

    static func tail(_ data: Data, _ limit: Int) -> String {
        let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return text.count <= limit ? text : "..." + String(text.suffix(limit))
    }

    /// Single-quoted for /bin/sh.
    static func quoted(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'" }
}
