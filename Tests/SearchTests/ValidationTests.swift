import Foundation
import XCTest
import Kernels
import ONNX
@testable import Search

/// Holdout validation on the committed digits CNN fixture, with the runtime built exactly
/// as Int8ParityTests builds it (minmax calibration on the calibration split).
final class ValidationTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures").path

    static func digits() throws -> (MixedPrecisionRuntime, Dataset) {
        let graph = try ModelLoader.load(path: "\(fixtures)/digits_cnn.onnx")
        let session = try Session(graph: GraphPasses.optimize(graph))
        let calib = try Dataset(path: "\(fixtures)/digits_calib.npz", graph: graph)
        let holdout = try Dataset(path: "\(fixtures)/digits_holdout.npz", graph: graph)
        let table = try Calibrator(session: session).calibrate(dataset: calib, options: CalibrationOptions(method: .minmax),
                                                               modelDigest: graph.digest)
        return (try MixedPrecisionRuntime(session: session, calibration: table), holdout)
    }

    func testAllInt8OnDigitsHoldout() throws {
        let (runtime, holdout) = try Self.digits()
        let v = try HoldoutValidator(runtime: runtime, holdout: holdout, metric: .top1, batchSize: 64, seed: 3)
        let r = try v.validate(runtime.allInt8, budget: 1, confidence: 0.95)
        print("digits all-INT8 on holdout: \(r)")
        XCTAssertEqual(r.samples, 359)
        XCTAssertEqual(r.fp32, 98.89, accuracy: 0.005, "ONNX Runtime's FP32 holdout top-1 (355/359)")
        XCTAssertEqual(r.fp32, HoldoutValidator.round4(100.0 * 355 / 359))
        XCTAssertEqual(r.mixed, r.int8All)
        XCTAssertEqual(r.drop, r.fp32 - r.mixed, accuracy: 1e-4)
        XCTAssertEqual(r.ci.count, 2)
        XCTAssertLessThanOrEqual(r.ci[0], r.drop)
        XCTAssertGreaterThanOrEqual(r.ci[1], r.drop)
        XCTAssertEqual(r.budgetMetPoint, r.drop <= r.budget)
        XCTAssertEqual(r.budgetMetUpper, r.ci[1] <= r.budget)
        XCTAssertTrue(!r.budgetMetUpper || r.budgetMetPoint, "the upper bound is the stricter criterion")
        XCTAssertEqual(r.met(.point), r.budgetMetPoint)
        XCTAssertEqual(r.met(.upper), r.budgetMetUpper)
        XCTAssertEqual(r.seed, 3)
        XCTAssertEqual(r.resamples, 2000)
        XCTAssertEqual(r.confidence, 0.95)
        XCTAssertEqual(r.budget, 1)
        let p = try XCTUnwrap(r.mcnemarP)
        XCTAssertGreaterThan(p, 0)
        XCTAssertLessThanOrEqual(p, 1)

        // McNemar from the cached outputs directly.
        let fp32 = sampleScores(.top1, outputs: try v.fp32Outputs(), labels: holdout.labels, reference: nil).map { $0 > 0 }
        let int8 = sampleScores(.top1, outputs: try v.int8Outputs(), labels: holdout.labels, reference: nil).map { $0 > 0 }
        let m = Statistics.mcnemar(reference: fp32, candidate: int8)
        XCTAssertEqual(p, HoldoutValidator.significant4(m.p))
        XCTAssertEqual(r.drop, HoldoutValidator.round4(100 * Double(m.b - m.c) / 359), accuracy: 1e-9)

        // A budget of 0 fails the point criterion exactly when INT8 lost anything.
        let strict = try v.validate(runtime.allInt8, budget: 0)
        XCTAssertEqual(strict.budgetMetPoint, r.drop <= 0)
        XCTAssertFalse(strict.budgetMetUpper && strict.ci[1] > 0)
        // The same map validates to the same bytes; FP32 and all-INT8 ran once each.
        let again = try v.validate(runtime.allInt8, budget: 1, confidence: 0.95)
        // Sorted keys: a plain JSONEncoder orders keys by hash, which differs between runs
        // ("196 bytes is not equal to 196 bytes", issue 10).
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        XCTAssertEqual(try enc.encode(again), try enc.encode(r))
        XCTAssertEqual(again, r)
        XCTAssertEqual(v.passes, 2)
        XCTAssertEqual(runtime.map, PrecisionMap(layers: [:]), "the runtime's map is restored")
    }

    func testSweepReusesFP32AndInt8Outputs() throws {
        let (runtime, holdout) = try Self.digits()
        let v = try HoldoutValidator(runtime: runtime, holdout: holdout, metric: .top1, resamples: 500, seed: 0)
        let fp = try v.validate(runtime.allFP32, budget: 0.5)
        XCTAssertEqual(fp.drop, 0)
        XCTAssertEqual(fp.ci, [0, 0])
        XCTAssertEqual(fp.mcnemarP, 1)
        XCTAssertTrue(fp.budgetMetPoint && fp.budgetMetUpper)
        XCTAssertEqual(fp.mixed, fp.fp32)
        // A partial map: the first layer in INT8; one more pass, each time.
        var layers = runtime.allFP32.layers
        layers[runtime.layerNames[0]] = .int8
        let partial = PrecisionMap(layers: layers)
        let a = try v.validate(partial, budget: 0.5)
        let b = try v.validate(partial, budget: 2)
        XCTAssertEqual(v.passes, 4) // FP32, all-INT8, partial twice
        XCTAssertEqual(a.mixed, b.mixed)
        XCTAssertEqual(a.ci, b.ci)
        XCTAssertEqual(a.fp32, fp.fp32)
        XCTAssertEqual(a.int8All, fp.int8All)
        XCTAssertEqual(b.budgetMetUpper, b.ci[1] <= 2)
        XCTAssertEqual(a.drop, a.fp32 - a.mixed, accuracy: 1e-4)
    }

    func testReferenceMetrics() throws {
        let (runtime, holdout) = try Self.digits()
        let agree = try HoldoutValidator(runtime: runtime, holdout: holdout, metric: .agreement, seed: 1)
            .validate(runtime.allInt8, budget: 1)
        XCTAssertEqual(agree.fp32, 100, "FP32 agrees with itself")
        XCTAssertEqual(agree.drop, 100 - agree.mixed, accuracy: 1e-4)
        XCTAssertNotNil(agree.mcnemarP)
        let cos = try HoldoutValidator(runtime: runtime, holdout: holdout, metric: .cosine, seed: 1)
            .validate(runtime.allInt8, budget: 1)
        XCTAssertEqual(cos.fp32, 100, accuracy: 1e-4)
        XCTAssertNil(cos.mcnemarP, "cosine scores are not binary")
        XCTAssertGreaterThan(cos.mixed, 90)
        XCTAssertLessThanOrEqual(cos.ci[0], cos.drop)
        XCTAssertGreaterThanOrEqual(cos.ci[1], cos.drop)
        print("digits all-INT8 holdout: agreement \(agree.mixed) (p \(agree.mcnemarP!)), cosine \(cos.mixed) CI \(cos.ci)")
    }

    /// The raw-feature breast-cancer MLP loses 13 points in all-INT8 (ONNX Runtime's QDQ
    /// model: 115/142 against FP32's 134/142), and gets most back with /0/Gemm in FP32 (132/142).
    func testDegradingMLP() throws {
        let graph = try ModelLoader.load(path: "\(Self.fixtures)/breast_cancer_raw_mlp.onnx")
        let session = try Session(graph: GraphPasses.optimize(graph))
        let calib = try Dataset(path: "\(Self.fixtures)/breast_cancer_raw_mlp_calib.npz", graph: graph)
        let holdout = try Dataset(path: "\(Self.fixtures)/breast_cancer_raw_mlp_holdout.npz", graph: graph)
        let table = try Calibrator(session: session).calibrate(dataset: calib, options: CalibrationOptions(method: .minmax),
                                                               modelDigest: graph.digest)
        let runtime = try MixedPrecisionRuntime(session: session, calibration: table)
        let v = try HoldoutValidator(runtime: runtime, holdout: holdout, metric: .top1, seed: 0)
        let all = try v.validate(runtime.allInt8, budget: 1)
        var layers = runtime.allInt8.layers
        layers["/0/Gemm"] = .fp32
        let keep = try v.validate(PrecisionMap(layers: layers), budget: 2)
        print("breast_cancer_raw_mlp on holdout: all-INT8 \(all)\n  /0/Gemm in FP32 \(keep)")
        XCTAssertEqual(all.fp32, HoldoutValidator.round4(100.0 * 134 / 142))   // ORT FP32 94.37
        XCTAssertEqual(all.int8All, HoldoutValidator.round4(100.0 * 115 / 142)) // ORT QDQ 80.99
        XCTAssertEqual(all.drop, HoldoutValidator.round4(100.0 * 19 / 142))
        XCTAssertGreaterThan(all.ci[0], 0, "the loss is significant")
        XCTAssertLessThanOrEqual(all.ci[0], all.drop)
        XCTAssertGreaterThanOrEqual(all.ci[1], all.drop)
        // FP32 right and INT8 wrong on 23 samples, the reverse on 4: p = 2 sum_{k<=4} C(27,k) / 2^27.
        XCTAssertEqual(all.mcnemarP, HoldoutValidator.significant4(2 * 20854 / pow(2, 27)))
        XCTAssertFalse(all.budgetMetPoint)
        XCTAssertFalse(all.budgetMetUpper)

        XCTAssertEqual(keep.mixed, HoldoutValidator.round4(100.0 * 132 / 142)) // ORT 92.96
        XCTAssertEqual(keep.drop, HoldoutValidator.round4(100.0 * 2 / 142))
        XCTAssertLessThanOrEqual(keep.ci[0], keep.drop)
        XCTAssertGreaterThan(keep.ci[1], 2)
        XCTAssertEqual(keep.mcnemarP, 0.5) // b = 2, c = 0
        // The two criteria disagree: the measured drop fits a 2-point budget, its 95% upper bound does not.
        XCTAssertTrue(keep.budgetMetPoint)
        XCTAssertFalse(keep.budgetMetUpper)
        XCTAssertEqual(v.passes, 3)
    }

    func testBadInputs() throws {
        let (runtime, holdout) = try Self.digits()
        let v = try HoldoutValidator(runtime: runtime, holdout: holdout, metric: .top1)
        XCTAssertThrowsError(try v.validate(runtime.allInt8, budget: 1, confidence: 1))
        XCTAssertThrowsError(try v.validate(PrecisionMap(layers: ["nope": .int8]), budget: 1)) { error in
            XCTAssertTrue("\(error)".contains("nope"), "\(error)")
        }
    }

    func testRounding() {
        XCTAssertEqual(HoldoutValidator.round4(1.23456), 1.2346)
        XCTAssertEqual(HoldoutValidator.round4(-0.00001).sign, .plus)
        XCTAssertEqual(HoldoutValidator.significant4(0.000012345678), 0.00001235)
        XCTAssertEqual(HoldoutValidator.significant4(0), 0)
    }
}
