import Foundation
import XCTest
import Kernels
import ONNX
@testable import Search

/// Label ranges need the model's output width (checked where the metric is computed), and
/// budgets and fractional flags are plain decimals (issue 10).
final class InputValidationTests: XCTestCase {
    func testLabelsOutsideTheOutputWidthAreRefusedForLabelMetrics() throws {
        XCTAssertNoThrow(try checkLabels(.top1, labels: [0, 9, 3], classes: 10, path: "d.npz", output: "logits"))
        XCTAssertThrowsError(try checkLabels(.top1, labels: [0, 9, 10], classes: 10, path: "d.npz", output: "logits")) {
            XCTAssertEqual($0 as? MetricError, .labelOutOfRange(path: "d.npz", row: 2, value: 10, classes: 10, output: "logits"))
            XCTAssertTrue("\($0)".contains("d.npz: 'labels' row 2 holds class 10, but output 'logits' has 10 classes"), "\($0)")
        }
        XCTAssertThrowsError(try checkLabels(.top5, labels: [Int64.max], classes: 10, path: "d.npz", output: "y"))
        XCTAssertThrowsError(try checkLabels(.top5, labels: [-1], classes: 10, path: "d.npz", output: "y"))
        // Label-free metrics ignore labels.
        XCTAssertNoThrow(try checkLabels(.agreement, labels: [99], classes: 10, path: "d.npz", output: "y"))
    }

    func testSearchAndHoldoutCheckLabelsAgainstTheModel() throws {
        let (runtime, holdout) = try ValidationTests.digits()
        var arrays = try Numpy.readNPZ(path: "\(ValidationTests.fixtures)/digits_holdout.npz")
        arrays["labels"]!.ints[200] = 10
        let bad = try Dataset(arrays: arrays, path: "bad.npz", graph: runtime.session.graph)
        XCTAssertThrowsError(try CandidateEvaluator(runtime: runtime, data: bad, metric: .top1)) {
            XCTAssertTrue("\($0)".contains("bad.npz: 'labels' row 200 holds class 10"), "\($0)")
        }
        let v = try HoldoutValidator(runtime: runtime, holdout: bad, metric: .top1, resamples: 10)
        XCTAssertThrowsError(try v.validate(runtime.allInt8, budget: 1)) {
            XCTAssertTrue("\($0)".contains("row 200"), "\($0)")
        }
        XCTAssertNoThrow(try CandidateEvaluator(runtime: runtime, data: holdout, metric: .top1))
    }

    func testBudgetsAndDecimalsAreStrict() {
        for ok in ["1", "1%", "0.5", "0.5%", ".5", "5.", "1e-2", "100", "100%", "0"] {
            XCTAssertNotNil(Budget(parsing: ok), ok)
        }
        for bad in ["150%", "100.5", "-1", "0x10", "0x1p3", "nan", "inf", "-inf", "", "%", "1%%", "1 %", "1,5", "١"] {
            XCTAssertNil(Budget(parsing: bad), bad)
        }
        XCTAssertEqual(Budget.decimal("-2.5e1"), -25)
        XCTAssertNil(Budget.decimal("1e"))
        XCTAssertNil(Budget.decimal("e5"))
        XCTAssertNil(Budget.decimal("1e400"))     // not finite
        XCTAssertNil(Budget.decimal(" 1"))
        XCTAssertNil(Budget.decimal("."))
    }

    func testJSONEncodingIsByteIdenticalAcrossEncodes() throws {
        // Many keys: with hash-ordered keys, two encodes of the same value differ.
        let value = Dictionary(uniqueKeysWithValues: (0..<64).map { ("layer_\($0)", $0) })
        let first = try deterministicJSONEncoder().encode(value)
        for _ in 0..<20 { XCTAssertEqual(try deterministicJSONEncoder().encode(value), first) }
        XCTAssertTrue(String(decoding: first, as: UTF8.self).hasPrefix("{\n  \"layer_0\" : 0,\n  \"layer_1\" : 1,\n  \"layer_10\""))
    }
}
