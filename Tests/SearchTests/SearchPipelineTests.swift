import Foundation
import XCTest
import Kernels
import ONNX
@testable import Search

/// `SearchPipeline`, the library's entry point: a Swift user gets from a model, its splits
/// and a scorer to a validated map without the command line, and the pipeline's pieces are
/// the ones the search runs on.
final class SearchPipelineTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures").path

    func pipeline(scorer: Scorer) throws -> SearchPipeline {
        let f = Self.fixtures
        let graph = try ModelLoader.load(path: "\(f)/breast_cancer_raw_mlp.onnx")
        let splits = try DataSplits.load(calibration: "\(f)/breast_cancer_raw_mlp_calib.npz", search: "\(f)/breast_cancer_raw_mlp_search.npz",
                                         holdout: "\(f)/breast_cancer_raw_mlp_holdout.npz", graph: graph)
        return try SearchPipeline(session: Session(graph: GraphPasses.optimize(graph)), modelDigest: graph.digest, modelName: "mlp",
                                  splits: splits, scorer: scorer, options: PipelineOptions(batchSize: 32, scheme: .inputs))
    }

    func testSweepOnThePipelineMeetsEachBudget() throws {
        let p = try pipeline(scorer: Metric.top1.scorer())
        XCTAssertEqual(p.evaluator.fp32Score, 97.1831, accuracy: 1e-4)
        let budgets = [Budget(value: 2, type: .absolute), Budget(value: 30, type: .absolute)]
        let sensitivity = try p.sensitivity(mode: .auto, smallestBudget: budgets[0])
        XCTAssertEqual(sensitivity.layers.count, p.runtime.layerNames.count, "all-INT8 loses 24.6 points: the layers are ranked")
        let runner = p.runner(sensitivity: sensitivity, validator: try p.validator(seed: 7, resamples: 200))
        var seen: [Double] = []
        try p.sweep(budgets.reversed().map { SearchPlan(budget: $0, strategy: .greedy) }, runner: runner) { plan, outcome in
            seen.append(plan.budget.value)
            XCTAssertLessThanOrEqual(outcome.best.evaluation.drop, plan.budget.value)
            XCTAssertTrue(outcome.met)
        }
        XCTAssertEqual(seen, [2, 30], "smallest budget first")
    }

    func testScorerValidatesEverySplitBeforeCalibrating() throws {
        // ctc-exact needs [N, L] targets; the MLP's labels are [N].
        XCTAssertThrowsError(try pipeline(scorer: Metric.ctcExact.scorer())) {
            guard case .badLabels(let path, _)? = $0 as? MetricError else { return XCTFail("\($0)") }
            XCTAssertTrue(path.hasSuffix("breast_cancer_raw_mlp_search.npz"), path)
        }
    }
}
