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
}
