import Foundation

/// The output SQNR and softmax KL of a candidate against FP32, summed batch by batch in data
/// order, so a run that keeps one batch of outputs at a time reports the same numbers, to the
/// bit, as one that kept them all (`outputSQNR`, `meanSoftmaxKL`).
public struct OutputComparison: Sendable {
    var signal = 0.0, noise = 0.0
    var klTotal = 0.0
    var rows = 0
    var width = 0

    public init() {}

    /// Adds the rows of one batch, in order after the ones added before.
    public mutating func add(reference: Outputs, candidate: Outputs) {
        reference.values.withUnsafeBufferPointer { r in
            candidate.values.withUnsafeBufferPointer { c in
                for i in 0..<min(r.count, c.count) {
                    signal += Double(r[i]) * Double(r[i]); noise += Double(r[i] - c[i]) * Double(r[i] - c[i])
                }
            }
        }
        width = reference.width
        if reference.width > 1 {
            // One running sum over every row, as the whole-split loop had: the same additions in the same order.
            for i in 0..<reference.rows { addKL(reference.row(i), candidate.row(i)) }
        }
        rows += reference.rows
    }

    /// 10 log10(signal power / noise power).
    public var sqnr: Double {
        if noise == 0 { return 200 }      // identical: report a large finite value, JSON has no infinity
        return 10 * log10(max(signal, 1e-30) / noise)
    }

    /// Mean over samples of KL(softmax(reference) || softmax(candidate)).
    public var meanKL: Double {
        guard rows > 0, width > 1 else { return 0 }
        return klTotal / Double(rows)
    }

    mutating func addKL(_ p: ArraySlice<Float>, _ q: ArraySlice<Float>) {
        func softmax(_ v: ArraySlice<Float>) -> [Double] {
            let m = Double(v.max() ?? 0)
            let e = v.map { exp(Double($0) - m) }
            let s = e.reduce(0, +)
            return e.map { $0 / s }
        }
        for (a, b) in zip(softmax(p), softmax(q)) where a > 0 { klTotal += a * log(a / max(b, 1e-300)) }
    }
}

/// 10 log10(signal power / noise power) of the candidate's outputs against FP32.
public func outputSQNR(reference: Outputs, candidate: Outputs) -> Double {
    var c = OutputComparison()
    c.add(reference: reference, candidate: candidate)
    return c.sqnr
}

/// Mean over samples of KL(softmax(reference) || softmax(candidate)).
public func meanSoftmaxKL(reference: Outputs, candidate: Outputs) -> Double {
    var c = OutputComparison()
    c.add(reference: reference, candidate: candidate)
    return c.meanKL
}
