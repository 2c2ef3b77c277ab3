import Foundation
import Kernels
import ONNX

/// What the search maximises while the drop stays within budget.
public enum Objective: String, CaseIterable, Codable, Sendable {
    /// Share of quantizable MACs that run in INT8 (default).
    case macs
    /// Share of the measured FP32 -> INT8 time saving (mpq's own kernels, boundaries included).
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
    /// Measured seconds per sample in FP32 and INT8 (input quantization included), if measured.
    public var fp32Seconds: Double?
    public var int8Seconds: Double?

    /// This layer's contribution to `objective` when it runs in INT8.
    public func benefit(_ objective: Objective) -> Double {
        switch objective {
        case .macs: return Double(macs)
        case .size: return Double(weightCount * 3)
        case .latency: return max(0, (fp32Seconds ?? 0) - (int8Seconds ?? 0))
        }
    }
}

/// The layer table of a model under a runtime: MACs and weights from one FP32 run of a
/// sample batch, and optionally per-layer timings of both precisions.
public enum LayerTable {
    public static func build(runtime: MixedPrecisionRuntime, sample: [String: Tensor], measureLatency: Bool,
                             repeats: Int = 5) throws -> [LayerInfo] {
        let session = runtime.session
        let saved = runtime.map
        defer { try? runtime.apply(saved) }
        try runtime.apply(runtime.allFP32)
        let rows = sample.values.first?.shape.first ?? 1
        var infos: [String: LayerInfo] = [:]
        var inputsOf: [String: [Tensor?]] = [:]
        let names = Set(runtime.layerNames)
        _ = try session.run(sample) { node, ins, outs in
            guard names.contains(node.name) else { return }
            infos[node.name] = LayerInfo(name: node.name, op: node.opType,
                                         macs: Layers.macs(node, inputShapes: ins.map { $0?.shape }, outputShapes: outs.map(\.shape)) / max(rows, 1),
                                         weightCount: node.input(1).flatMap { session.constants[$0]?.count } ?? 0)
            if measureLatency { inputsOf[node.name] = ins }
        }
        if measureLatency {
            for name in runtime.layerNames {
                guard let ins = inputsOf[name], let node = session.plan.first(where: { $0.name == name }) else { continue }
                let layer = runtime.layers[name]!
                func best(_ f: () throws -> Void) rethrows -> Double {
                    var t = Double.infinity
                    for _ in 0..<repeats { let s = Date(); try f(); t = min(t, Date().timeIntervalSince(s)) }
                    return t / Double(max(rows, 1))
                }
                let fp32 = try best { _ = try session.runNode(node, inputs: ins) }
                let int8 = try best { _ = try layer.run(ins, path: runtime.path) }
                infos[name]?.fp32Seconds = fp32
                infos[name]?.int8Seconds = int8
            }
        }
        return runtime.layerNames.compactMap { infos[$0] }
    }

    /// The objective value of a map: the INT8 share of the total benefit, in [0, 1].
    public static func objective(_ objective: Objective, map: PrecisionMap, layers: [LayerInfo]) -> Double {
        let total = layers.reduce(0) { $0 + $1.benefit(objective) }
        guard total > 0 else { return 0 }
        let int8 = Set(map.int8Layers)
        return layers.filter { int8.contains($0.name) }.reduce(0) { $0 + $1.benefit(objective) } / total
    }
}
