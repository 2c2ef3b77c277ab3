import Foundation

/// An accuracy budget: the largest acceptable drop. `absolute` is in points (the seed's
/// convention: 95.5 -> 94.2 is a 1.3% degradation); `relative` is a percentage of the
/// FP32 score.
public struct Budget: Codable, Equatable, Sendable {
    public enum Kind: String, Codable, Sendable, CaseIterable { case absolute, relative }
    public var value: Double
    public var type: Kind

    public init(value: Double, type: Kind = .absolute) { self.value = value; self.type = type }

    /// Parses `1%`, `1`, `0.5%`; nil when not a non-negative number.
    public init?(parsing text: String, type: Kind = .absolute) {
        let t = text.trimmingCharacters(in: .whitespaces)
        guard let v = Double(t.hasSuffix("%") ? String(t.dropLast()) : t), v >= 0, v.isFinite else { return nil }
        self.init(value: v, type: type)
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
