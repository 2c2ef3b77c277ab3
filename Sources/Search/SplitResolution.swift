import Foundation

/// What a split of `samples` samples can confirm about a budget on a per-sample binary metric
/// (top1, top5, agreement, exact sequence match): each sample is worth 100 / n points, so the
/// measured drop moves in steps of that size and a map whose true drop is within the budget
/// can miss it on a small split by one or two samples of noise (docs/validation.md, "When the
/// holdout is too small to promise a budget").
///
/// The yardstick is the best any map can do: one that loses no sample on the split. Its exact
/// (Clopper-Pearson) upper bound on the share of samples lost, at the one-sided level
/// (1 + confidence) / 2 that the two-sided interval of the validation leaves on each side, is
/// 1 - ((1 - confidence) / 2)^(1/n). When that bound exceeds the budget, no outcome on this
/// split can show with that confidence that a map with INT8 layers keeps the budget: the
/// search still runs and reports, and says so.
public struct SplitResolution: Codable, Equatable, Sendable {
    public var samples: Int
    /// The budget in points.
    public var budget: Double
    public var confidence: Double
    /// 100 / samples.
    public var pointsPerSample: Double
    /// How many lost samples the budget allows: floor(budget / pointsPerSample).
    public var lostSamplesAllowed: Int
    /// Upper confidence bound, in points, on the drop of a map that loses no sample here.
    public var zeroLossUpperBound: Double
    /// The fewest samples for which `zeroLossUpperBound <= budget`; nil for a zero budget
    /// (no split is large enough).
    public var samplesNeeded: Int?

    public init(samples: Int, budget: Double, confidence: Double = 0.95) {
        precondition(samples > 0, "a split with no samples resolves nothing")
        precondition(confidence > 0 && confidence < 1, "confidence must lie in (0, 1), got \(confidence)")
        self.samples = samples
        self.budget = budget
        self.confidence = confidence
        pointsPerSample = 100 / Double(samples)
        // The tiny epsilon keeps 1.0 / 0.5 from flooring to 1 below an exact multiple.
        lostSamplesAllowed = max(0, Int((budget / pointsPerSample + 1e-9).rounded(.down)))
        let tail = (1 - confidence) / 2
        zeroLossUpperBound = 100 * (1 - pow(tail, 1 / Double(samples)))
        if budget <= 0 {
            samplesNeeded = nil
        } else if budget >= 100 {
            samplesNeeded = 1
        } else {
            // Smallest n with 1 - tail^(1/n) <= b, i.e. n >= ln(tail) / ln(1 - b).
            var n = Int((log(tail) / log(1 - budget / 100)).rounded(.up))
            while n > 1 && Self.bound(n - 1, tail) <= budget { n -= 1 }
            while Self.bound(n, tail) > budget { n += 1 }
            samplesNeeded = max(1, n)
        }
    }

    private static func bound(_ n: Int, _ tail: Double) -> Double { 100 * (1 - pow(tail, 1 / Double(n))) }

    /// True when a map that loses no sample here is confirmed within the budget.
    public var canConfirmBudget: Bool { zeroLossUpperBound <= budget }

    /// One sentence for the user when the split cannot confirm the budget; nil when it can.
    public func note(split: String) -> String? {
        guard !canConfirmBudget else { return nil }
        let need = samplesNeeded.map { "at least \($0) samples" } ?? "more samples than any split has (a zero budget)"
        return String(format: "the %@ split's %d samples cannot confirm a %g-point budget: one sample is %.2f points (the budget allows %d lost), and even a map that loses no sample there has a %.0f%% upper bound of %.2f points; confirming it takes %@",
                      split, samples, budget, pointsPerSample, lostSamplesAllowed, confidence * 100,
                      zeroLossUpperBound, need)
    }
}
