import Foundation
import Kernels
import ONNX

/// How a token-level output [N, L, D] becomes one embedding per sample [N, D] before any
/// metric sees it (docs/transformers.md).
public enum Pooling: String, CaseIterable, Codable, Sendable {
    /// The output as the model gives it, flattened per sample.
    case none
    /// Mean over the real tokens: positions where the mask is non-zero.
    case mean
    /// The first token (BERT's [CLS]).
    case cls
}

/// Why pooling failed; thrown as `MetricError.badPooling` (bad input, exit code 2).
enum PoolingProblem {
    static func missingMask(_ mask: String, path: String, available: [String]) -> MetricError {
        .badPooling(reason: "--pool mean needs the mask '\(mask)' in \(path) (arrays: \(available.sorted().joined(separator: ", "))); name it with --mask, or --mask none to average every token")
    }
    static func badMask(_ mask: String, expected: String, actual: String) -> MetricError {
        .badPooling(reason: "mask '\(mask)' must be \(expected) to pool the output, it is \(actual)")
    }
    static func badOutput(_ shape: String, pooling: String) -> MetricError {
        .badPooling(reason: "--pool \(pooling) needs a token-level output [N, L, D], the model gives \(shape)")
    }
}

/// What turns a batch of model outputs into the rows a metric scores. Applied per batch by
/// `Evaluator`, `CandidateEvaluator` and `HoldoutValidator`, so the full token-level
/// output of a split is never held.
public struct OutputTransform: Equatable, Sendable {
    public var pooling: Pooling
    /// Dataset array of the attention mask [N, L] for mean pooling; "none" averages every token.
    public var mask: String

    public init(pooling: Pooling = .none, mask: String = "attention_mask") {
        self.pooling = pooling; self.mask = mask
    }

    public static let identity = OutputTransform()

    var usesMask: Bool { pooling == .mean && mask != "none" }

    /// Throws unless `dataset` has what the transform reads.
    public func check(_ dataset: Dataset) throws {
        guard usesMask else { return }
        guard let m = dataset.extras[mask] else {
            throw PoolingProblem.missingMask(mask, path: dataset.path, available: Array(dataset.extras.keys))
        }
        guard m.rank == 2, m.shape[0] == dataset.count else {
            throw PoolingProblem.badMask(mask, expected: "[\(dataset.count), L]", actual: Tensor.describe(m.shape))
        }
    }

    /// The batch output `y` of samples `range` of `dataset`, pooled.
    public func apply(_ y: Tensor, dataset: Dataset, range: Range<Int>) throws -> Tensor {
        if pooling == .none { return y }
        guard y.rank >= 3 else { throw PoolingProblem.badOutput(Tensor.describe(y.shape), pooling: pooling.rawValue) }
        let mask = try usesMask ? batchMask(dataset, range) : nil
        return try apply(y, mask: mask)
    }

    /// Pools `y` [n, L, D...] with `mask` [n, L] (any dtype; nil: every token counts).
    public func apply(_ y: Tensor, mask: Tensor?) throws -> Tensor {
        if pooling == .none { return y }
        guard y.rank >= 3 else { throw PoolingProblem.badOutput(Tensor.describe(y.shape), pooling: pooling.rawValue) }
        let n = y.shape[0], l = y.shape[1], d = y.shape.dropFirst(2).reduce(1, *)
        let x = y.asFloats
        var out = [Float](repeating: 0, count: n * d)
        switch pooling {
        case .none:
            return y
        case .cls:
            for i in 0..<n { for j in 0..<d { out[i * d + j] = x[i * l * d + j] } }
        case .mean:
            if let mask {
                guard mask.shape == [n, l] else {
                    throw PoolingProblem.badMask(self.mask, expected: "[\(n), \(l)] like the output's first two dimensions",
                                                 actual: Tensor.describe(mask.shape))
                }
            }
            let weights = mask?.asFloats ?? [Float](repeating: 1, count: n * l)
            // As sentence-transformers: sum over tokens of mask * x, over max(sum of mask, 1e-9), in double.
            var acc = [Double](repeating: 0, count: d)
            for i in 0..<n {
                for j in 0..<d { acc[j] = 0 }
                var total = 0.0
                for t in 0..<l {
                    let w = Double(weights[i * l + t])
                    guard w != 0 else { continue }
                    total += w
                    let base = (i * l + t) * d
                    for j in 0..<d { acc[j] += w * Double(x[base + j]) }
                }
                let denominator = Swift.max(total, 1e-9)
                for j in 0..<d { out[i * d + j] = Float(acc[j] / denominator) }
            }
        }
        return Tensor(shape: [n] + y.shape.dropFirst(2), floats: out)
    }

    private func batchMask(_ dataset: Dataset, _ range: Range<Int>) throws -> Tensor {
        try check(dataset)
        return dataset.extras[mask]!.slice(range)
    }
}

// MARK: - Retrieval metrics

/// Per-sample retrieval agreement with the FP32 embeddings, over the whole set: 1 when the
/// FP32 nearest neighbour of row i (by cosine, i excluded) is among the candidate's `k`
/// nearest neighbours of row i, else 0. `k = 1` is "same nearest neighbour". With one row
/// there is no neighbour to disagree on: 1.
public func retrievalScores(outputs: Outputs, reference: Outputs, k: Int) -> [Double] {
    let n = outputs.rows
    guard n > 1 else { return [Double](repeating: 1, count: n) }
    let want = nearestNeighbours(reference, k: 1).map { $0[0] }
    let got = outputs.values == reference.values ? want.map { [$0] } : nearestNeighbours(outputs, k: k)
    return (0..<n).map { got[$0].contains(want[$0]) ? 1 : 0 }
}

/// The `k` nearest rows of every row by cosine similarity, itself excluded, best first;
/// ties go to the lower index. Similarities come from one SGEMM over unit-norm rows
/// (a zero row is similar to nothing), in blocks of rows so memory stays at block x N.
public func nearestNeighbours(_ e: Outputs, k: Int) -> [[Int]] {
    let n = e.rows, d = e.width
    let k = Swift.max(1, Swift.min(k, n - 1))
    guard n > 1 else { return [[Int]](repeating: [], count: n) }
    var unit = e.values
    for i in 0..<n {
        var s = 0.0
        for j in 0..<d { s += Double(unit[i * d + j]) * Double(unit[i * d + j]) }
        let inv = s > 0 ? Float(1 / s.squareRoot()) : 0
        for j in 0..<d { unit[i * d + j] *= inv }
    }
    let block = 256
    var result: [[Int]] = []
    result.reserveCapacity(n)
    var sims = [Float](repeating: 0, count: Swift.min(block, n) * n)
    for start in stride(from: 0, to: n, by: block) {
        let rows = Swift.min(block, n - start)
        unit.withUnsafeBufferPointer { pu in
            sims.withUnsafeMutableBufferPointer { ps in
                sgemm(transB: true, m: rows, n: n, k: d, a: pu.baseAddress! + start * d, lda: Swift.max(d, 1),
                      b: pu.baseAddress!, ldb: Swift.max(d, 1), c: ps.baseAddress!, ldc: n)
            }
        }
        for r in 0..<rows {
            let i = start + r
            // Insertion into a k-long list sorted by (similarity desc, index asc).
            var best: [(Float, Int)] = []
            best.reserveCapacity(k + 1)
            for j in 0..<n where j != i {
                let s = sims[r * n + j]
                if best.count == k, let last = best.last, !(s > last.0) { continue }
                var pos = best.count
                while pos > 0 && s > best[pos - 1].0 { pos -= 1 }
                best.insert((s, j), at: pos)
                if best.count > k { best.removeLast() }
            }
            result.append(best.map(\.1))
        }
    }
    return result
}
