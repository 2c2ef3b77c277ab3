import Foundation

/// An accuracy budget: the largest acceptable drop. `absolute` is in points (the seed's
/// convention: 95.5 -> 94.2 is a 1.3% degradation); `relative` is a percentage of the
/// FP32 score.
public struct Budget: Codable, Equatable, Sendable {
    public enum Kind: String, Codable, Sendable, CaseIterable { case absolute, relative }
    public var value: Double
    public var type: Kind

    public init(value: Double, type: Kind = .absolute) { self.value = value; self.type = type }

    /// Parses `1%`, `1`, `0.5%`: a plain decimal number in [0, 100] (scores are points
    /// out of 100, so no budget can exceed 100); nil otherwise (hex, NaN, `150%`, `-1`).
    public init?(parsing text: String, type: Kind = .absolute) {
        let t = text.trimmingCharacters(in: .whitespaces)
        guard let v = Budget.decimal(t.hasSuffix("%") ? String(t.dropLast()) : t), v >= 0, v <= 100 else { return nil }
        self.init(value: v, type: type)
    }

    /// A plain decimal number (`12`, `-0.5`, `1e-3`), finite; nil for anything else that
    /// `Double(_:)` would accept: hex (`0x10`), `nan`, `inf`, surrounding spaces.
    public static func decimal(_ text: String) -> Double? {
        var s = Substring(text)
        if s.first == "-" || s.first == "+" { s = s.dropFirst() }
        var mantissa = s, exponent: Substring?
        if let e = s.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            mantissa = s[..<e]; exponent = s[s.index(after: e)...]
        }
        let parts = mantissa.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        guard !mantissa.isEmpty, parts.count <= 2, parts.contains(where: { !$0.isEmpty }),
              parts.allSatisfy({ $0.allSatisfy { $0.isASCII && $0.isNumber } }) else { return nil }
        if var e = exponent {
            if e.first == "-" || e.first == "+" { e = e.dropFirst() }
            guard !e.isEmpty, e.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        }
        guard let v = Double(text), v.isFinite else { return nil }
        return v
    }

    /// The budget in points for a model whose FP32 score is `fp32`.
    public func points(fp32: Double) -> Double {
        type == .absolute ? value : value / 100 * fp32
    }

    public var label: String { type == .absolute ? "\(formatted(value))%" : "\(formatted(value))% relative" }
}

/// Shortest decimal form of a number (1 -> "1", 0.25 -> "0.25").
func formatted(_ v: Double) -> String {
    v == v.rounded() ? String(Int(v)) : String(v)
}
