import ONNX

/// Where a layer runs.
public enum Precision: String, Codable, Sendable, CaseIterable {
    case int8, fp32
}

/// Layer name -> precision: what the runtime executes. Layers not named run in FP32.
/// The JSON form (docs/precision-map.md) carries the model digest and provenance fields
/// that the search writes; the runtime reads only `layers`.
public struct PrecisionMap: Codable, Equatable, Sendable {
    public var version: Int = 1
    public var modelDigest: String?
    public var layers: [String: Precision]

    public init(layers: [String: Precision], modelDigest: String? = nil) {
        self.layers = layers; self.modelDigest = modelDigest
    }

    public static func uniform(_ p: Precision, layers names: [String]) -> PrecisionMap {
        PrecisionMap(layers: Dictionary(uniqueKeysWithValues: names.map { ($0, p) }))
    }

    public var int8Layers: [String] { layers.filter { $0.value == .int8 }.map(\.key).sorted() }

    private enum CodingKeys: String, CodingKey { case version, modelDigest, layers, model }
    private struct Entry: Decodable { let name: String; let precision: Precision }
    private struct Model: Decodable { let digest: String? }

    /// Reads both the bare form `{"layers": {"name": "int8"}}` and the full document the
    /// search writes (`schema: mpq.precision-map/1`, `layers: [{name, precision, ...}]`,
    /// `model: {digest}`).
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        version = try c.decodeIfPresent(Int.self, forKey: .version) ?? 1
        modelDigest = try c.decodeIfPresent(String.self, forKey: .modelDigest)
            ?? c.decodeIfPresent(Model.self, forKey: .model)?.digest
        if let dict = try? c.decode([String: Precision].self, forKey: .layers) {
            layers = dict
        } else {
            let entries = try c.decode([Entry].self, forKey: .layers)
            layers = Dictionary(entries.map { ($0.name, $0.precision) }, uniquingKeysWith: { _, b in b })
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(version, forKey: .version)
        try c.encodeIfPresent(modelDigest, forKey: .modelDigest)
        try c.encode(layers, forKey: .layers)
    }
}
