import XCTest
@testable import Search

/// SplitResolution: what a split of n samples can confirm about a budget (docs/validation.md).
final class SplitResolutionTests: XCTestCase {
    func testTheDegradingMLPHoldoutCannotConfirmOnePoint() {
        // breast_cancer_raw_mlp: 142 holdout samples.
        let r = SplitResolution(samples: 142, budget: 1, confidence: 0.95)
        XCTAssertEqual(r.pointsPerSample, 100.0 / 142, accuracy: 1e-12)
        XCTAssertEqual(r.lostSamplesAllowed, 1)
        // 100 (1 - 0.025^(1/142)), computed independently in double precision.
        XCTAssertEqual(r.zeroLossUpperBound, 2.5643498484463234, accuracy: 1e-9)
        XCTAssertEqual(r.samplesNeeded, 368)
        XCTAssertFalse(r.canConfirmBudget)
        let note = try! XCTUnwrap(r.note(split: "holdout"))
        XCTAssertTrue(note.contains("142 samples cannot confirm a 1-point budget"), note)
        XCTAssertTrue(note.contains("at least 368 samples"), note)
    }

    func testSamplesNeededIsTheSmallestSplitThatConfirms() {
        for budget in [0.05, 0.5, 1, 2, 5, 37.5] {
            for confidence in [0.8, 0.95, 0.99] {
                let r = SplitResolution(samples: 100, budget: budget, confidence: confidence)
                let n = try! XCTUnwrap(r.samplesNeeded)
                XCTAssertTrue(SplitResolution(samples: n, budget: budget, confidence: confidence).canConfirmBudget, "\(budget) \(confidence)")
                if n > 1 {
                    XCTAssertFalse(SplitResolution(samples: n - 1, budget: budget, confidence: confidence).canConfirmBudget,
                                   "\(budget) \(confidence): \(n - 1) samples must not be enough")
                }
            }
        }
    }

    func testLargeSplitsConfirmAndEdgeBudgets() {
        let r = SplitResolution(samples: 2000, budget: 1)
        XCTAssertTrue(r.canConfirmBudget)
        XCTAssertNil(r.note(split: "holdout"))
        XCTAssertEqual(r.lostSamplesAllowed, 20)
        XCTAssertNil(SplitResolution(samples: 10_000, budget: 0).samplesNeeded, "a zero budget is never confirmed")
        XCTAssertFalse(SplitResolution(samples: 10_000, budget: 0).canConfirmBudget)
        XCTAssertEqual(SplitResolution(samples: 3, budget: 100).samplesNeeded, 1)
        XCTAssertEqual(SplitResolution(samples: 200, budget: 0.5).lostSamplesAllowed, 1, "exactly one sample's worth")
    }
}
