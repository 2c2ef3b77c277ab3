import Foundation
import Kernels
import ONNX

/// What an export produced: the file's bytes, a one-line summary and warnings for the user.
public struct ExportResult: Sendable {
    public var data: Data
    public var summary: String
    public var warnings: [String]
}

/// Where the file came from, written into the JSON formats.
struct ExportProvenance: Encodable {
    var mpqVersion: String
    var model: String
    var modelDigest: String
    var mapSha256: String
    var int8Layers: [String]
    var fp32Layers: [String]
    enum CodingKeys: String, CodingKey {
        case mpqVersion = "mpq_version", model, modelDigest = "model_digest", mapSha256 = "map_sha256"
        case int8Layers = "int8_layers", fp32Layers = "fp32_layers"
    }
}

/// `quantize_static` keyword arguments reproducing mpq's scheme with the map's FP32 layers
/// excluded (onnxruntime.quantization.quantize_static).
struct OrtExcludeConfig: Encodable {
    var nodesToExclude: [String]
    var opTypesToQuantize: [String]
    var perChannel = true
    var reduceRange = false
    var quantFormat = "QDQ"
    var activationType = "QUInt8"
    var weightType = "QInt8"
    var calibrateMethod: String
    var extraOptions = ["WeightSymmetric": true, "ActivationSymmetric": false]
    var mpq: ExportProvenance
    enum CodingKeys: String, CodingKey {
        case nodesToExclude = "nodes_to_exclude", opTypesToQuantize = "op_types_to_quantize", perChannel = "per_channel"
        case reduceRange = "reduce_range", quantFormat = "quant_format", activationType = "activation_type"
        case weightType = "weight_type", calibrateMethod = "calibrate_method", extraOptions = "extra_options", mpq
    }
}

/// NNCF's `IgnoredScope(names=[...])` for the FP32 layers.
struct NNCFIgnoredConfig: Encodable {
    struct Scope: Encodable { var names: [String] }
    var ignoredScope: Scope
    var mpq: ExportProvenance
    enum CodingKeys: String, CodingKey { case ignoredScope = "ignored_scope", mpq }
}

extension Exporter {
    /// The summary's note on INT8 Conv inputs the `ort` export rewrote for ONNX Runtime's direct
    /// kernel (docs/export.md), so that a user who opens the file knows why its stem differs from
    /// the original graph; empty when none was.
    static func inputRewrites(_ layers: [QDQLayer]) -> String {
        func plural(_ n: Int, _ word: String) -> String { "\(n) \(word)\(n == 1 ? "" : "s")" }
        let blocks = layers.filter { $0.spaceToDepth != nil }.count, padded = layers.filter { $0.inputChannelPad > 0 }.count
        var parts: [String] = []
        if blocks > 0 { parts.append(plural(blocks, "stride-2 stem") + " over space-to-depth blocks") }
        if padded > 0 { parts.append(plural(padded, "input") + " zero-padded to a multiple of 4 channels") }
        if parts.isEmpty { return "" }
        return "; for ONNX Runtime's direct INT8 Conv kernel, same integer sums: " + parts.joined(separator: ", ")
    }

    /// Writes `format` for the map. Only `qdq` needs quantization parameters
    /// (`calibration` fills in those a bare map lacks).
    public func export(_ format: ExportFormat, map: ExportMap, mapPath: String, calibration: CalibrationTable?,
                       version: String, scheme: ExecutionScheme? = nil,
                       weightType: QDQWeightType = .int8, weightBits: WeightBits? = nil) throws -> ExportResult {
        let layers = try self.layers(for: map, path: mapPath)
        let int8 = layers.filter { $0.precision == .int8 }.map(\.name)
        let fp32 = layers.filter { $0.precision == .fp32 }
        let counts = "\(int8.count) of \(layers.count) layers INT8, \(fp32.count) FP32"
        var warnings: [String] = []
        if format != .qdq && format != .json {
            let unnamed = fp32.filter { !$0.namedInFile }.map(\.name)
            if !unnamed.isEmpty {
                warnings.append("the model file leaves \(unnamed.count) FP32 layer\(unnamed.count == 1 ? "" : "s") unnamed (\(unnamed.prefix(4).joined(separator: ", "))\(unnamed.count > 4 ? ", ..." : "")): mpq's names for them are not names other tools know; name the nodes in the ONNX file")
            }
        }
        let provenance = ExportProvenance(mpqVersion: version, model: URL(fileURLWithPath: modelPath).lastPathComponent,
                                          modelDigest: digest, mapSha256: map.sha256, int8Layers: int8,
                                          fp32Layers: fp32.map(\.name))
        switch format {
        case .qdq:
            let written = try qdqModel(map: map, path: mapPath, calibration: calibration, version: version, scheme: scheme,
                                       weightType: weightType, weightBits: weightBits)
            let used = scheme ?? map.scheme ?? .inputs
            return ExportResult(data: written.data,
                                summary: "QDQ model (scheme \(used.rawValue), \(weightType.rawValue) weights), \(counts)"
                                    + Self.inputRewrites(written.layers),
                                warnings: warnings)
        case .ortExclude:
            let ops = Set(layers.map(\.op)).sorted()
            var config = OrtExcludeConfig(nodesToExclude: fp32.map(\.name), opTypesToQuantize: ops,
                                          calibrateMethod: Self.ortCalibrateMethod(map.document?.calibration.method),
                                          mpq: provenance)
            // Symmetric uint8 weights: quantize_static gives them zero point 128, like the qdq export.
            if weightType == .uint8 { config.weightType = "QUInt8" }
            // 7-bit weights are ORT's reduce_range ([-64, 64] for symmetric int8).
            if try map.resolvedWeightBits(requested: weightBits) == .seven { config.reduceRange = true }
            return ExportResult(data: try Self.json(config), summary: "quantize_static options, \(counts) (nodes_to_exclude)",
                                warnings: warnings)
        case .nncfIgnored:
            let config = NNCFIgnoredConfig(ignoredScope: .init(names: fp32.map(\.name)), mpq: provenance)
            return ExportResult(data: try Self.json(config), summary: "NNCF ignored scope, \(counts) (ignored)",
                                warnings: warnings)
        case .trtexec:
            let line = try Self.trtexecFlags(fp32: fp32.map(\.name))
            return ExportResult(data: Data((line + "\n").utf8), summary: "trtexec flags, \(counts) (pinned to fp32)",
                                warnings: warnings)
        case .json:
            return ExportResult(data: map.bytes, summary: "the precision map (\(counts))", warnings: warnings)
        }
    }

    /// ONNX Runtime's CalibrationMethod name for mpq's method (it has no MSE method: MinMax).
    static func ortCalibrateMethod(_ method: String?) -> String {
        switch method {
        case "entropy": return "Entropy"
        case "percentile": return "Percentile"
        default: return "MinMax"
        }
    }

    /// `--int8 --precisionConstraints=obey --layerPrecisions=a:fp32,b:fp32`, shell-quoted
    /// where a name needs it. trtexec splits the list on ',' and ':', so names holding
    /// them cannot be written.
    static func trtexecFlags(fp32: [String]) throws -> String {
        if let bad = fp32.first(where: { $0.contains(",") || $0.contains(":") }) {
            throw ExportError.invalidQuantization(layer: bad, reason: "trtexec --layerPrecisions cannot name a layer containing ',' or ':'")
        }
        guard !fp32.isEmpty else { return "--int8" }
        let value = "--layerPrecisions=" + fp32.map { "\($0):fp32" }.joined(separator: ",")
        let plain = value.unicodeScalars.allSatisfy { CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_./:,=-+").contains($0) }
        let quoted = plain ? value : "'" + value.replacingOccurrences(of: "'", with: "'\\''") + "'"
        return "--int8 --precisionConstraints=obey " + quoted
    }

    static func json<T: Encodable>(_ value: T) throws -> Data {
        var d = try deterministicJSONEncoder().encode(value)
        d.append(0x0a)
        return d
    }
}
