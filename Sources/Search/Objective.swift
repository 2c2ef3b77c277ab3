import Foundation
import Kernels
import ONNX

/// What the search maximises while the drop stays within budget.
public enum Objective: String, CaseIterable, Codable, Sendable {
    /// Share of quantizable MACs that run in INT8 (default).
    case macs
    /// Share of the FP32 -> INT8 time saving measured end to end in mpq's runtime
    /// (`LayerTable.measureLatency`); layers that make the model slower in INT8 stay FP32.
    case latency
    /// Share of weight bytes saved (4 -> 1 byte per INT8 weight).
    case size
}

/// Per-layer facts the objectives and reports use.
public struct LayerInfo: Codable, Equatable, Sendable {
    public var name: String
    public var op: String
    public var macs: Int
    public var weightCount: Int
    /// End-to-end seconds per sample of the whole model on the measured batch (`--objective
    /// latency`): with this layer alone in FP32 and every other layer INT8, and all-INT8.
    /// Their difference is what running this layer in INT8 saves, Q/DQ boundaries included.
    public var fp32Seconds: Double?
    public var int8Seconds: Double?

    public init(name: String, op: String, macs: Int, weightCount: Int, fp32Seconds: Double? = nil, int8Seconds: Double? = nil) {
        self.name = name; self.op = op; self.macs = macs; self.weightCount = weightCount
        self.fp32Seconds = fp32Seconds; self.int8Seconds = int8Seconds
    }

    /// Seconds per sample saved by running this layer in INT8; negative when the model is
    /// slower with it in INT8. Nil when not measured.
    public var latencySaving: Double? {
        guard let f = fp32Seconds, let i = int8Seconds else { return nil }
        return f - i
    }

    /// This layer's contribution to `objective` when it runs in INT8. Signed for latency, so
    /// a map that keeps a slower-in-INT8 layer INT8 scores lower than the same map without.
    public func benefit(_ objective: Objective) -> Double {
        switch objective {
        case .macs: return Double(macs)
        case .size: return Double(weightCount * 3)
        case .latency: return latencySaving ?? 0
        }
    }

    /// Measured slower in INT8 than in FP32: the latency objective keeps it FP32.
    public var slowerInInt8: Bool { (latencySaving ?? 0) < 0 }
}

/// The layer table of a model under a runtime: MACs and weights from one FP32 run of a
/// sample batch, and optionally each layer's end-to-end latency saving (`LatencyProbe`).
public enum LayerTable {
    public static func build(runtime: MixedPrecisionRuntime, sample: [String: Tensor], measureLatency: Bool,
                             repeats: Int = 5) throws -> [LayerInfo] {
        let session = runtime.session
        let saved = runtime.map
        defer { try? runtime.apply(saved) }
        try runtime.apply(runtime.allFP32)
        let rows = sample.values.first?.shape.first ?? 1
        var infos: [String: LayerInfo] = [:]
        let names = Set(runtime.layerNames)
        _ = try session.run(sample) { node, ins, outs in
            guard names.contains(node.name) else { return }
            infos[node.name] = LayerInfo(name: node.name, op: node.opType,
                                         macs: Layers.macs(node, inputShapes: ins.map { $0?.shape }, outputShapes: outs.map(\.shape)) / max(rows, 1),
                                         weightCount: node.input(1).flatMap { session.constants[$0]?.count } ?? 0)
        }
        if measureLatency {
            let timing = try LatencyProbe(runtime: runtime, sample: sample, repeats: repeats).layerToggles()
            for (name, t) in timing {
                infos[name]?.fp32Seconds = t.layerFP32
                infos[name]?.int8Seconds = t.allInt8
            }
        }
        return runtime.layerNames.compactMap { infos[$0] }
    }

    /// The objective value of a map: the INT8 share of the total benefit, at most 1 (the
    /// total counts positive benefits only; a slower-in-INT8 layer kept INT8 subtracts).
    public static func objective(_ objective: Objective, map: PrecisionMap, layers: [LayerInfo]) -> Double {
        let total = layers.reduce(0) { $0 + max(0, $1.benefit(objective)) }
        guard total > 0 else { return 0 }
        let int8 = Set(map.int8Layers)
        return layers.filter { int8.contains($0.name) }.reduce(0) { $0 + $1.benefit(objective) } / total
    }
}
