import Foundation
import ONNX

/// One budget of a sweep: what the search found and how it held up on the holdout split.
/// Drops and budgets are in points.
public struct SweepRow: Codable, Equatable, Sendable {
    public var budget: Double
    /// How the budget was given, e.g. "absolute" or "relative"; named in the test case when not absolute.
    public var budgetType: String
    /// Share of quantizable layers in INT8, 0-1.
    public var int8Share: Double
    public var searchDrop: Double
    public var holdoutDrop: Double
    public var ciLow: Double
    public var ciHigh: Double
    /// Whether the holdout validation met the budget under the sweep's criterion.
    public var met: Bool
    /// Whether the budget was `--require`d (the command fails if a required budget is not met).
    public var required: Bool

    public init(budget: Double, budgetType: String = "absolute", int8Share: Double, searchDrop: Double, holdoutDrop: Double,
                ciLow: Double, ciHigh: Double, met: Bool, required: Bool) {
        self.budget = budget; self.budgetType = budgetType; self.int8Share = int8Share; self.searchDrop = searchDrop
        self.holdoutDrop = holdoutDrop; self.ciLow = ciLow; self.ciHigh = ciHigh; self.met = met; self.required = required
    }
}

/// A JUnit XML report of a budget sweep, for CI systems: one test case per budget, a
/// `<failure>` for every budget whose holdout validation missed it. The bytes depend only
/// on the inputs (no clock, no host name): a timestamp appears only when one is given.
public struct JUnitReport: Sendable {
    public var suiteName = "mpq sweep"
    public var rows: [SweepRow]
    /// Suite properties in order; `init` puts model, metric, seed and criterion first.
    public var properties: [(name: String, value: String)]
    public var criterion: BudgetCriterion
    public var timestamp: String?

    public init(rows: [SweepRow], modelDigest: String, metric: Metric, seed: UInt64, criterion: BudgetCriterion,
                confidence: Double? = nil, extraProperties: [(name: String, value: String)] = [], timestamp: String? = nil) {
        self.init(rows: rows, modelDigest: modelDigest, metricName: metric.rawValue, seed: seed, criterion: criterion,
                  confidence: confidence, extraProperties: extraProperties, timestamp: timestamp)
    }

    /// `metricName`: a built-in metric's name or `command` (Scorer.name).
    public init(rows: [SweepRow], modelDigest: String, metricName: String, seed: UInt64, criterion: BudgetCriterion,
                confidence: Double? = nil, extraProperties: [(name: String, value: String)] = [], timestamp: String? = nil) {
        self.rows = rows
        self.criterion = criterion
        self.timestamp = timestamp
        var props: [(name: String, value: String)] = [("model_digest", modelDigest), ("metric", metricName),
                                                      ("seed", String(seed)), ("criterion", criterion.rawValue)]
        if let confidence { props.append(("confidence", Self.number(confidence))) }
        self.properties = props + extraProperties
    }

    public var failures: Int { rows.filter { !$0.met }.count }

    /// Test case name of a row: "budget 1%", or "budget 5% (relative)".
    public static func caseName(_ row: SweepRow) -> String {
        let kind = row.budgetType.isEmpty || row.budgetType == "absolute" ? "" : " (\(row.budgetType))"
        return "budget \(number(row.budget))%\(kind)"
    }

    /// The XML document, UTF-8, ending in a newline.
    public func xml() -> String {
        var s = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        s += "<testsuites name=\(Self.attr(suiteName)) tests=\"\(rows.count)\" failures=\"\(failures)\" errors=\"0\">\n"
        var suite = "  <testsuite name=\(Self.attr(suiteName)) tests=\"\(rows.count)\" failures=\"\(failures)\" errors=\"0\" skipped=\"0\""
        if let timestamp { suite += " timestamp=\(Self.attr(timestamp))" }
        s += suite + ">\n"
        if !properties.isEmpty {
            s += "    <properties>\n"
            for p in properties { s += "      <property name=\(Self.attr(p.name)) value=\(Self.attr(p.value))/>\n" }
            s += "    </properties>\n"
        }
        for row in rows {
            s += "    <testcase classname=\"mpq.budget\" name=\(Self.attr(Self.caseName(row)))"
            let detail = "int8 share \(Self.number(row.int8Share * 100))%, search drop \(Self.number(row.searchDrop)), "
                + "holdout drop \(Self.number(row.holdoutDrop)), CI [\(Self.number(row.ciLow)), \(Self.number(row.ciHigh))], "
                + "budget \(Self.number(row.budget)), criterion \(criterion.rawValue)\(row.required ? ", required" : "")"
            if row.met {
                s += ">\n      <system-out>\(Self.escape(detail))</system-out>\n    </testcase>\n"
            } else {
                let measured = criterion == .point ? "holdout drop \(Self.number(row.holdoutDrop))"
                                                   : "CI upper bound \(Self.number(row.ciHigh))"
                let message = "\(measured) exceeds budget \(Self.number(row.budget))\(row.required ? " (required)" : "")"
                s += ">\n      <failure message=\(Self.attr(message)) type=\"BudgetNotMet\">\(Self.escape(detail))</failure>\n"
                s += "    </testcase>\n"
            }
        }
        s += "  </testsuite>\n</testsuites>\n"
        return s
    }

    public func write(to path: String) throws {
        try OutputFile.write(Data(xml().utf8), to: path)
    }

    /// Up to 4 decimals, trailing zeros dropped: 1 -> "1", 0.25 -> "0.25"; never "-0".
    public static func number(_ x: Double) -> String {
        guard x.isFinite else { return x.isNaN ? "nan" : (x > 0 ? "inf" : "-inf") }
        var s = String(format: "%.4f", x)
        if s.contains(".") {
            while s.hasSuffix("0") { s.removeLast() }
            if s.hasSuffix(".") { s.removeLast() }
        }
        return s == "-0" ? "0" : s
    }

    /// Escapes text for element content and attribute values; characters XML 1.0 forbids
    /// (control characters other than tab, newline, carriage return) become U+FFFD.
    public static func escape(_ text: String) -> String {
        var out = ""
        out.unicodeScalars.reserveCapacity(text.unicodeScalars.count)
        for u in text.unicodeScalars {
            switch u {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            case "\t": out += "&#9;"
            case "\n": out += "&#10;"
            case "\r": out += "&#13;"
            default:
                let v = u.value
                if v < 0x20 || v == 0xFFFE || v == 0xFFFF { out.unicodeScalars.append("\u{FFFD}") } else { out.unicodeScalars.append(u) }
            }
        }
        return out
    }

    /// A quoted, escaped attribute value.
    static func attr(_ text: String) -> String { "\"\(escape(text))\"" }
}
