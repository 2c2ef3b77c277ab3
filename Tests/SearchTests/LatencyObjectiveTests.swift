import Foundation
import XCTest
import Kernels
import ONNX
@testable import Search

/// `--objective latency` with an injected latency table (no timing in the assertions): a
/// layer measured slower in INT8 stays FP32 in greedy and GA answers, even with a budget
/// that would let every layer run INT8.
final class LatencyObjectiveTests: XCTestCase {
    /// The small MLP fixture, calibrated once for all tests here; no sensitivity analysis
    /// (with a budget every map meets, the objective alone decides).
    nonisolated(unsafe) static var shared: EvolutionarySearchTests.Setup?
    static func setup() throws -> EvolutionarySearchTests.Setup {
        if let s = shared { return s }
        let fixtures = EvolutionarySearchTests.fixtures
        let graph = try ModelLoader.load(path: "\(fixtures)/breast_cancer_raw_mlp.onnx")
        let session = try Session(graph: GraphPasses.optimize(graph))
        let calib = try Dataset(path: "\(fixtures)/breast_cancer_raw_mlp_calib.npz", graph: graph)
        let search = try Dataset(path: "\(fixtures)/breast_cancer_raw_mlp_search.npz", graph: graph)
        let table = try Calibrator(session: session).calibrate(dataset: calib, options: CalibrationOptions(method: .minmax),
                                                               modelDigest: graph.digest)
        let runtime = try MixedPrecisionRuntime(session: session, calibration: table)
        let evaluator = try CandidateEvaluator(runtime: runtime, data: search, metric: .top1)
        let layers = try LayerTable.build(runtime: runtime, sample: calib.batch(0..<8), measureLatency: false)
        let s = EvolutionarySearchTests.Setup(evaluator: evaluator, sensitivity: try SensitivityReport.notMeasured(evaluator: evaluator),
                                              layers: layers)
        shared = s
        return s
    }

    /// Every layer saves 1 ms per sample in INT8 except `slow`, which costs 1 ms.
    static func injected(_ layers: [LayerInfo], slow: String) -> [LayerInfo] {
        layers.map { l in
            var l = l
            l.int8Seconds = 1e-3
            l.fp32Seconds = l.name == slow ? 0 : 2e-3
            return l
        }
    }

    func testGreedyKeepsTheSlowerLayerFP32() throws {
        let s = try Self.setup()
        let names = s.evaluator.runtime.layerNames
        XCTAssertGreaterThanOrEqual(names.count, 2)
        let slow = names[1]
        let layers = Self.injected(s.layers, slow: slow)
        XCTAssertTrue(layers.first { $0.name == slow }!.slowerInInt8)
        let budget = 100.0     // any map is within budget: only the objective decides
        let latency = try GreedySearch(evaluator: s.evaluator, sensitivity: s.sensitivity, layers: layers, objective: .latency)
            .run(budget: budget)
        XCTAssertEqual(latency.map.layers[slow], .fp32)
        for name in names where name != slow { XCTAssertEqual(latency.map.layers[name], .int8, name) }
        XCTAssertEqual(latency.steps.first?.action, "slower-in-int8")
        XCTAssertEqual(latency.objective, 1, accuracy: 1e-12)
        // The Pareto replay starts from all-INT8 and must rebuild the pinned start map.
        let visited = ParetoFront.mapsVisited(byGreedy: latency.steps, start: s.evaluator.runtime.allInt8)
        XCTAssertEqual(visited.first?.layers[slow], .fp32)
        // The same search under the MAC objective keeps it INT8: the latency table decides.
        let macs = try GreedySearch(evaluator: s.evaluator, sensitivity: s.sensitivity, layers: layers, objective: .macs)
            .run(budget: budget)
        XCTAssertEqual(macs.map.layers[slow], .int8)
    }

    func testObjectivePenalisesASlowerLayerKeptInt8() throws {
        let s = try Self.setup()
        let names = s.evaluator.runtime.layerNames
        let layers = Self.injected(s.layers, slow: names[0])
        var without = s.evaluator.runtime.allInt8
        without.layers[names[0]] = .fp32
        let all = LayerTable.objective(.latency, map: s.evaluator.runtime.allInt8, layers: layers)
        XCTAssertEqual(LayerTable.objective(.latency, map: without, layers: layers), 1, accuracy: 1e-12)
        XCTAssertLessThan(all, 1)
    }

    func testEvolutionaryAndRunnerKeepTheSlowerLayerFP32() throws {
        let s = try Self.setup()
        let names = s.evaluator.runtime.layerNames
        let slow = names.last!
        let layers = Self.injected(s.layers, slow: slow)
        let ga = try EvolutionarySearch(evaluator: s.evaluator, sensitivity: s.sensitivity, layers: layers, objective: .latency,
                                        options: EvolutionaryOptions(populationSize: 8, generations: 6, seed: 3))
            .run(budget: 100)
        XCTAssertEqual(ga.search.map.layers[slow], .fp32)
        XCTAssertEqual(ga.search.objective, 1, accuracy: 1e-12)
    }

    /// The probe times whole-model runs: one entry per layer, positive and finite (values
    /// are the machine's; nothing is asserted about their order).
    func testLatencyProbeMeasuresEveryLayerEndToEnd() throws {
        let s = try Self.setup()
        let runtime = s.evaluator.runtime
        let sample = s.evaluator.data.batch(0..<4)
        let probe = LatencyProbe(runtime: runtime, sample: sample, repeats: 1)
        let t = try probe.layerToggles()
        XCTAssertEqual(Set(t.keys), Set(runtime.layerNames))
        for (_, v) in t { XCTAssertTrue(v.layerFP32 > 0 && v.layerFP32.isFinite && v.allInt8 > 0 && v.allInt8.isFinite) }
        let record = try probe.confirm(runtime.allInt8)
        XCTAssertEqual(record.batch, 4)
        XCTAssertGreaterThan(record.mapMs, 0)
    }
}
