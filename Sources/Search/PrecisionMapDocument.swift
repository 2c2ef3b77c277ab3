import Foundation
import Kernels
import ONNX

/// The precision map file the search writes (`schema: mpq.precision-map/1`,
/// docs/precision-map.md). `mpq eval --precision map.json` reads its `layers`.
/// Encoded with sorted keys and snake_case; scores in points rounded to 4 decimals, so the
/// same inputs and seed give the same bytes (`wall_seconds` is null unless asked for).
public struct PrecisionMapDocument: Codable, Equatable, Sendable {
    public struct ModelRef: Codable, Equatable, Sendable { public var path: String; public var sha256: String; public var digest: String }
    public struct BudgetRef: Codable, Equatable, Sendable { public var value: Double; public var type: String; public var points: Double }
    public struct CalibrationRef: Codable, Equatable, Sendable { public var method: String; public var samples: Int }
    public struct SearchScores: Codable, Equatable, Sendable {
        public var fp32: Double; public var int8All: Double; public var mixed: Double; public var drop: Double; public var samples: Int
    }
    public struct HoldoutScores: Codable, Equatable, Sendable {
        public var fp32: Double; public var int8All: Double; public var mixed: Double; public var drop: Double
        public var ci95: [Double]; public var confidence: Double; public var mcnemarP: Double?
        /// Why `ci95` is only the point estimate (a split-level `--metric-command`); absent otherwise.
        public var ciNote: String? = nil
        /// Present when the holdout has too few samples to confirm the budget (SplitResolution):
        /// then a miss or a pass by a sample or two is noise, and the note says how many are needed.
        public var resolutionNote: String? = nil
        public var budgetMet: Bool; public var budgetMetUpper: Bool; public var criterion: String; public var samples: Int
    }
    public struct Results: Codable, Equatable, Sendable { public var search: SearchScores; public var holdout: HoldoutScores }
    public struct LayerSensitivityRef: Codable, Equatable, Sendable {
        public var dropAlone: Double; public var recovery: Double; public var sqnrDb: Double?; public var kl: Double?
    }
    public struct ActivationRef: Codable, Equatable, Sendable { public var tensor: String; public var scale: Float; public var zeroPoint: Int }
    public struct Layer: Codable, Equatable, Sendable {
        public var name: String; public var op: String; public var precision: Precision
        public var macs: Int; public var weightBytes: Int
        public var sensitivity: LayerSensitivityRef?
        public var activation: ActivationRef
        /// Input 1's quantization when it is an activation (activation x activation MatMul).
        public var activation2: ActivationRef?
        public var weightScales: [Float]
        /// `--objective latency`: microseconds per sample the whole model saves with this
        /// layer in INT8 (others INT8), measured end to end; negative = slower in INT8.
        public var int8SavingUs: Double?
    }
    /// `--objective latency`: the chosen map timed end to end next to FP32 and all-INT8 on
    /// the measured batch (ms per batch, best of `repeats`). Machine-dependent.
    public struct LatencyRecord: Codable, Equatable, Sendable {
        public var batch: Int; public var repeats: Int
        public var fp32Ms: Double; public var int8AllMs: Double; public var mapMs: Double
        public var kernelPath: String
    }

    public var schema = "mpq.precision-map/1"
    public var mpqVersion: String
    public var model: ModelRef
    public var metric: String
    public var budget: BudgetRef
    public var seed: UInt64
    public var strategy: String
    public var objective: String
    public var objectiveValue: Double
    public var calibration: CalibrationRef
    public var data: String
    public var kernelPath: String
    /// Where Q/DQ go: "ort" or "inputs" (absent in maps written before schemes: "inputs").
    public var scheme: String?
    /// `ort` scheme: every requantized tensor of this map with its parameters (the outputs
    /// of INT8 layers and region ops that ONNX Runtime runs on uint8), sorted by name.
    public var tensors: [ActivationRef]?
    /// `ort` scheme: the region ops (Add, Concat, MaxPool, ...) that run in INT8, sorted.
    public var int8RegionOps: [String]?
    /// 7 when the weights were quantized to [-64, 64] (`--weight-bits 7`); absent: 8.
    public var weightBits: Int? = nil
    public var result: Results
    public var budgetMet: Bool
    public var int8MacFraction: Double
    public var int8Layers: Int
    public var evaluations: Int
    public var fullModelEquivalents: Double
    public var wallSeconds: Double?
    /// Set by `--objective latency` only (the other objectives' bytes stay machine-independent).
    public var latency: LatencyRecord?
    public var layers: [Layer]
    public var pareto: [ParetoPoint]
    public var trajectory: [SearchStep]

    /// The map the runtime executes.
    public var precisionMap: PrecisionMap {
        PrecisionMap(layers: Dictionary(uniqueKeysWithValues: layers.map { ($0.name, $0.precision) }), modelDigest: model.digest)
    }

    public func jsonData() throws -> Data {
        var d = try deterministicJSONEncoder(snakeCase: true).encode(self)
        d.append(0x0a)
        return d
    }

    public static func decode(_ data: Data) throws -> PrecisionMapDocument {
        let dec = JSONDecoder()
        dec.keyDecodingStrategy = .convertFromSnakeCase
        return try dec.decode(PrecisionMapDocument.self, from: data)
    }

    /// The scheme fields of a map: its requantized tensors and INT8 region ops (`ort` only).
    public static func schemeEntries(map: PrecisionMap, runtime: MixedPrecisionRuntime) -> (tensors: [ActivationRef]?, regionOps: [String]?) {
        guard runtime.scheme == .ort else { return (nil, nil) }
        let plan = runtime.plan(for: map)
        let tensors = plan.requantized.keys.sorted().map { t in
            ActivationRef(tensor: t, scale: plan.requantized[t]!.scale, zeroPoint: Int(plan.requantized[t]!.zeroPoint))
        }
        return (tensors, plan.int8RegionOps.sorted())
    }

    /// The per-layer entries for a map: precision, size, sensitivity, quantization parameters.
    public static func layerEntries(map: PrecisionMap, runtime: MixedPrecisionRuntime, layers: [LayerInfo],
                                    sensitivity: SensitivityReport?) -> [Layer] {
        let info = Dictionary(uniqueKeysWithValues: layers.map { ($0.name, $0) })
        let sens = Dictionary(uniqueKeysWithValues: (sensitivity?.layers ?? []).map { ($0.name, $0) })
        let nodes = Dictionary(uniqueKeysWithValues: runtime.session.plan.map { ($0.name, $0) })
        return runtime.layerNames.map { name in
            let q = runtime.layers[name]!
            let s = sens[name]
            return Layer(name: name, op: info[name]?.op ?? nodes[name]?.opType ?? "?", precision: map.layers[name] ?? .fp32,
                         macs: info[name]?.macs ?? 0, weightBytes: 4 * (info[name]?.weightCount ?? 0),
                         sensitivity: s.map { LayerSensitivityRef(dropAlone: round4($0.aloneInt8.drop), recovery: round4($0.recovery),
                                                                  sqnrDb: $0.aloneInt8.sqnr.map(round4), kl: $0.aloneInt8.kl.map(round6)) },
                         activation: ActivationRef(tensor: nodes[name]?.input(0) ?? "", scale: q.inputQuant.scale,
                                                   zeroPoint: Int(q.inputQuant.zeroPoint)),
                         activation2: q.secondInputQuant.map { ActivationRef(tensor: nodes[name]?.input(1) ?? "", scale: $0.scale, zeroPoint: Int($0.zeroPoint)) },
                         weightScales: q.weightScales,
                         int8SavingUs: info[name]?.latencySaving.map { ($0 * 1e8).rounded() / 100 })
        }
    }
}

/// Rounds to 4 decimals: points are reported to 1e-4, which also keeps JSON bytes stable.
public func round4(_ v: Double) -> Double { (v * 10_000).rounded() / 10_000 }
func round6(_ v: Double) -> Double { (v * 1_000_000).rounded() / 1_000_000 }
