import Foundation

/// Inputs of `mpq report`: a precision map, optionally a sweep and measured latencies.
public struct ReportInput {
    public var map: PrecisionMapDocument
    public var sweep: [SweepRow]
    /// Seconds per sample for FP32, all-INT8 and the map, when measured.
    public var latency: (fp32: Double, int8All: Double, mixed: Double)?

    public init(map: PrecisionMapDocument, sweep: [SweepRow] = [], latency: (fp32: Double, int8All: Double, mixed: Double)? = nil) {
        self.map = map; self.sweep = sweep; self.latency = latency
    }

    /// Weight bytes with every quantizable layer FP32, and with the map's INT8 layers at one byte per weight.
    public var sizes: (fp32: Int, mixed: Int) {
        let fp32 = map.layers.reduce(0) { $0 + $1.weightBytes }
        let mixed = map.layers.reduce(0) { $0 + ($1.precision == .int8 ? $1.weightBytes / 4 : $1.weightBytes) }
        return (fp32, mixed)
    }

    /// Reads the `rows` of a sweep file written by `mpq sweep`.
    public static func sweepRows(_ data: Data) throws -> [SweepRow] {
        struct File: Decodable { let rows: [SweepRow] }
        let dec = JSONDecoder()
        dec.keyDecodingStrategy = .convertFromSnakeCase
        return try dec.decode(File.self, from: data).rows
    }
}

/// Text helpers shared by the HTML and Markdown reports.
enum ReportFormat {
    static func points(_ v: Double) -> String { String(format: "%.2f", v) }
    static func percent(_ v: Double) -> String { String(format: "%.1f%%", v * 100) }
    static func bytes(_ n: Int) -> String {
        n >= 1 << 20 ? String(format: "%.2f MiB", Double(n) / Double(1 << 20))
            : n >= 1 << 10 ? String(format: "%.1f KiB", Double(n) / 1024) : "\(n) B"
    }
    static func millis(_ s: Double) -> String {
        s < 1e-3 ? String(format: "%.1f µs", s * 1e6) : String(format: "%.3f ms", s * 1e3)
    }
    static func budget(_ v: Double) -> String { v == v.rounded() ? String(Int(v)) : String(v) }
    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
    static func modelName(_ path: String) -> String { URL(fileURLWithPath: path).lastPathComponent }
}

/// The Markdown report, for CI comments.
public enum MarkdownReport {
    public static func render(_ input: ReportInput) -> String {
        let m = input.map, h = m.result.holdout, s = m.result.search
        let size = input.sizes
        typealias F = ReportFormat
        var out = "### mpq: \(F.modelName(m.model.path)), budget \(F.budget(m.budget.value))% (\(m.budget.type)), metric \(m.metric)\n\n"
        out += "| model | FP32 | INT8 (all) | mixed | drop (95% CI) | INT8 share (MACs) | weights | latency / sample |\n"
        out += "|---|---:|---:|---:|---:|---:|---:|---:|\n"
        let latency = input.latency.map { "\(F.millis($0.fp32)) → \(F.millis($0.mixed))" } ?? "not measured"
        out += "| \(F.modelName(m.model.path)) | \(F.points(h.fp32)) | \(F.points(h.int8All)) | \(F.points(h.mixed)) | "
        out += "\(F.points(h.drop)) (\(F.points(h.ci95[0]))..\(F.points(h.ci95[1]))) | \(F.percent(m.int8MacFraction)) | "
        out += "\(F.bytes(size.fp32)) → \(F.bytes(size.mixed)) | \(latency) |\n\n"
        out += "\(m.budgetMet ? "✅ budget met" : "❌ budget NOT met") on \(h.samples) holdout samples (\(h.criterion) estimate). "
        out += "Search split: FP32 \(F.points(s.fp32)), mixed \(F.points(s.mixed)), drop \(F.points(s.drop)). "
        out += "\(m.strategy) search, objective \(m.objective), calibration \(m.calibration.method) on \(m.calibration.samples) samples, seed \(m.seed).\n\n"
        let fp32 = m.layers.filter { $0.precision == .fp32 }.map { "`\($0.name)`" }
        out += fp32.isEmpty ? "Every quantizable layer runs in INT8.\n" : "Kept in FP32: \(fp32.joined(separator: ", ")).\n"
        if !input.sweep.isEmpty {
            out += "\n| budget | INT8 share | search drop | holdout drop (CI) | met |\n|---:|---:|---:|---:|:---:|\n"
            for r in input.sweep {
                out += "| \(F.budget(r.budget))% | \(F.percent(r.int8Share)) | \(F.points(r.searchDrop)) | \(F.points(r.holdoutDrop)) (\(F.points(r.ciLow))..\(F.points(r.ciHigh))) | \(r.met ? "yes" : "**no**") |\n"
            }
        }
        return out
    }
}
