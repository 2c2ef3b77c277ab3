import Foundation
import XCTest
@testable import Search

final class StatisticsTests: XCTestCase {
    func testMeanAndStandardError() {
        XCTAssertEqual(Statistics.mean([1, 2, 3, 4]), 2.5)
        XCTAssertEqual(Statistics.mean([]), 0)
        // s^2 = (2.25 + 0.25 + 0.25 + 2.25) / 3 = 5/3; se = sqrt(5/3) / 2.
        XCTAssertEqual(Statistics.standardDeviation([1, 2, 3, 4]), (5.0 / 3).squareRoot(), accuracy: 1e-12)
        XCTAssertEqual(Statistics.standardError([1, 2, 3, 4]), (5.0 / 3).squareRoot() / 2, accuracy: 1e-12)
        XCTAssertEqual(Statistics.standardError([7]), 0)
    }

    func testQuantileInterpolatesLikeNumpy() {
        let x = [1.0, 2, 3, 4, 5]
        XCTAssertEqual(Statistics.quantile(sorted: x, 0), 1)
        XCTAssertEqual(Statistics.quantile(sorted: x, 1), 5)
        XCTAssertEqual(Statistics.quantile(sorted: x, 0.5), 3)
        XCTAssertEqual(Statistics.quantile(sorted: x, 0.1), 1.4, accuracy: 1e-12) // numpy.quantile([1..5], 0.1)
    }

    /// Values from the binomial formula: p = min(1, 2 * sum_{k <= min(b,c)} C(b+c, k) / 2^(b+c)).
    func testMcNemarExactKnownValues() {
        XCTAssertEqual(Statistics.mcnemarExactP(b: 10, c: 2), 79.0 / 2048, accuracy: 1e-12) // 0.0386
        XCTAssertEqual(Statistics.mcnemarExactP(b: 10, c: 2), 0.0386, accuracy: 5e-5)
        XCTAssertEqual(Statistics.mcnemarExactP(b: 2, c: 10), 79.0 / 2048, accuracy: 1e-12)
        XCTAssertEqual(Statistics.mcnemarExactP(b: 20, c: 5), 0.004077315330505371, accuracy: 1e-12)
        XCTAssertEqual(Statistics.mcnemarExactP(b: 5, c: 0), 0.0625, accuracy: 1e-12)
        XCTAssertEqual(Statistics.mcnemarExactP(b: 0, c: 9), 0.00390625, accuracy: 1e-12)
        XCTAssertEqual(Statistics.mcnemarExactP(b: 7, c: 3), 0.34375, accuracy: 1e-12)
        XCTAssertEqual(Statistics.mcnemarExactP(b: 100, c: 70), 0.02584438758134169, accuracy: 1e-9)
        XCTAssertEqual(Statistics.mcnemarExactP(b: 6, c: 6), 1)
        XCTAssertEqual(Statistics.mcnemarExactP(b: 30, c: 31), 1)
        XCTAssertEqual(Statistics.mcnemarExactP(b: 0, c: 0), 1)
        XCTAssertEqual(Statistics.mcnemarExactP(b: 1, c: 0), 1)
    }

    /// GSL's binomial CDF against an exact sum over a grid of small counts.
    func testMcNemarMatchesBinomialSum() {
        func exact(_ b: Int, _ c: Int) -> Double {
            let n = b + c
            if n == 0 { return 1 }
            var term = pow(0.5, Double(n)) // C(n, 0) / 2^n
            var sum = 0.0
            for k in 0...min(b, c) {
                sum += term
                term *= Double(n - k) / Double(k + 1)
            }
            return min(1, 2 * sum)
        }
        for b in 0...25 { for c in 0...25 {
            XCTAssertEqual(Statistics.mcnemarExactP(b: b, c: c), exact(b, c), accuracy: 1e-12, "b=\(b) c=\(c)")
        } }
    }

    func testMcNemarCountsDiscordantPairs() {
        let ref: [Bool] = [true, true, true, false, false, true, false]
        let cand: [Bool] = [true, false, false, true, false, true, false]
        let r = Statistics.mcnemar(reference: ref, candidate: cand)
        XCTAssertEqual(r.b, 2)
        XCTAssertEqual(r.c, 1)
        XCTAssertEqual(r.p, 1)
    }

    /// Synthetic paired 0/1 outcomes: FP32 right with p = 0.9; the candidate loses 5% of
    /// FP32's right answers and fixes 1% of its wrong ones, so the true drop is
    /// 100 * (0.9 * 0.05 - 0.1 * 0.01) = 4.4 points.
    static func synthetic(n: Int, seed: UInt64) -> (ref: [Double], cand: [Double]) {
        let rng = SeededRandom(seed: seed)
        var ref: [Double] = [], cand: [Double] = []
        for _ in 0..<n {
            let r = rng.uniform() < 0.9
            let u = rng.uniform()
            let c = r ? u >= 0.05 : u < 0.01
            ref.append(r ? 100 : 0); cand.append(c ? 100 : 0)
        }
        return (ref, cand)
    }

    func testBootstrapIsDeterministicPerSeed() {
        let (ref, cand) = Self.synthetic(n: 400, seed: 7)
        let a = Statistics.pairedBootstrapCI(reference: ref, candidate: cand, resamples: 1000, seed: 42)
        let b = Statistics.pairedBootstrapCI(reference: ref, candidate: cand, resamples: 1000, seed: 42)
        XCTAssertEqual(a, b)
        // 0/1 scores put the replicate means on a grid of 100/n, where two seeds can land
        // on the same quantiles; continuous scores cannot.
        let noisy = cand.enumerated().map { $0.element + Double($0.offset % 7) * 0.37 }
        let c = Statistics.pairedBootstrapCI(reference: ref, candidate: noisy, resamples: 1000, seed: 42)
        let d = Statistics.pairedBootstrapCI(reference: ref, candidate: noisy, resamples: 1000, seed: 43)
        XCTAssertEqual(c, Statistics.pairedBootstrapCI(reference: ref, candidate: noisy, resamples: 1000, seed: 42))
        XCTAssertNotEqual(c, d, "another seed, other replicates")
        XCTAssertEqual(a.confidence, 0.95)
        let drop = Statistics.mean(zip(ref, cand).map { $0 - $1 })
        XCTAssertTrue(a.contains(drop), "\(a) should contain the sample drop \(drop)")
        // The percentile interval is close to the normal one, drop +- 1.96 SE, on this many samples.
        let se = Statistics.standardError(zip(ref, cand).map { $0 - $1 })
        XCTAssertEqual(a.high - a.low, 2 * 1.96 * se, accuracy: 0.2 * 2 * 1.96 * se)
        // A higher level gives a wider interval.
        let wide = Statistics.pairedBootstrapCI(reference: ref, candidate: cand, resamples: 1000, confidence: 0.99, seed: 42)
        XCTAssertLessThan(wide.low, a.low)
        XCTAssertGreaterThan(wide.high, a.high)
    }

    func testBootstrapCoversTheTrueDrop() {
        let trueDrop = 100 * (0.9 * 0.05 - 0.1 * 0.01)
        var covered = 0
        let trials = 40
        for t in 0..<trials {
            let (ref, cand) = Self.synthetic(n: 500, seed: UInt64(1000 + t))
            let ci = Statistics.pairedBootstrapCI(reference: ref, candidate: cand, resamples: 1000, seed: UInt64(t))
            if ci.contains(trueDrop) { covered += 1 }
        }
        print("bootstrap 95% CI covered the true drop \(trueDrop) in \(covered)/\(trials) synthetic data sets")
        // Nominal 95%: 38 of 40 expected; fewer than 34 would happen with probability < 1%.
        XCTAssertGreaterThanOrEqual(covered, 34)
    }

    func testBootstrapOfIdenticalScoresIsZeroWidth() {
        let x = [100.0, 0, 100, 100]
        let ci = Statistics.pairedBootstrapCI(reference: x, candidate: x, seed: 1)
        XCTAssertEqual(ci.low, 0)
        XCTAssertEqual(ci.high, 0)
    }
}
