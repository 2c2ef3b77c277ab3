/// The types ONNX's operator schemas give the attributes mpq's ops read, checked at load.
///
/// Ops read attributes through `Node.int(_:)`, `Node.ints(_:)` and friends, which return
/// nil for a value of another type, so the op falls back to its default: a MaxPool whose
/// `strides` is a string would silently run with stride 1. Checking here turns that into
/// an error naming node, attribute and expected type. Attributes mpq does not read are
/// not checked (they cannot change an answer).
public enum AttributeSchema {
    public enum Kind: String, Sendable {
        case int, float, string, tensor, ints, floats, strings

        func matches(_ a: Attribute) -> Bool {
            switch (self, a) {
            case (.int, .int), (.float, .float), (.string, .string), (.tensor, .tensor),
                 (.ints, .ints), (.floats, .floats), (.strings, .strings): return true
            default: return false
            }
        }
    }

    /// By attribute name: every ONNX op mpq runs that has an attribute of this name gives
    /// it this type. Names whose type depends on the op (`value`) are in `perOp`.
    static let byName: [String: Kind] = {
        var t: [String: Kind] = [:]
        for n in ["axis", "group", "keepdims", "ceil_mode", "count_include_pad", "storage_order", "transA", "transB",
                  "to", "dtype", "output_dtype", "block_size", "allowzero", "antialias", "exclude_outside",
                  "exclusive", "reverse", "largest", "sorted", "select_last_index", "center_point_box",
                  "detect_negative", "detect_positive", "noop_with_empty_axes", "num_outputs", "training_mode",
                  "upper", "fmod", "k", "p", "size", "start", "end", "value_int", "broadcast", "saturate"] { t[n] = .int }
        for n in ["alpha", "beta", "gamma", "bias", "lambd", "epsilon", "momentum", "ratio", "min", "max",
                  "cubic_coeff_a", "extrapolation_value", "value_float"] { t[n] = .float }
        for n in ["auto_pad", "mode", "direction", "reduction", "approximate", "coordinate_transformation_mode",
                  "nearest_mode", "keep_aspect_ratio_policy", "value_string"] { t[n] = .string }
        for n in ["kernel_shape", "strides", "dilations", "pads", "output_padding", "output_shape", "axes", "perm",
                  "split", "starts", "ends", "shape", "value_ints"] { t[n] = .ints }
        for n in ["scales", "value_floats"] { t[n] = .floats }
        t["value_strings"] = .strings
        return t
    }()

    /// Int attributes that ONNX defines as booleans. Ops test them with `== 1` or `!= 0`,
    /// so any other value (2, 2^62) would silently mean one or the other.
    static let flags: Set<String> = [
        "keepdims", "ceil_mode", "count_include_pad", "storage_order", "transA", "transB", "allowzero",
        "antialias", "exclude_outside", "exclusive", "reverse", "largest", "sorted", "select_last_index",
        "center_point_box", "detect_negative", "detect_positive", "noop_with_empty_axes", "training_mode",
        "upper", "fmod",
    ]

    /// Per-op exceptions to `byName`.
    static let perOp: [String: [String: Kind]] = [
        "Constant": ["value": .tensor],
        "ConstantOfShape": ["value": .tensor],
        "Pad": ["value": .float],   // opset < 11: the constant is an attribute
    ]

    /// The type `opType` expects for `attribute`, or nil when mpq does not read it.
    public static func expected(_ opType: String, _ attribute: String) -> Kind? {
        perOp[opType]?[attribute] ?? byName[attribute]
    }

    /// Throws `ModelError.invalidAttribute` for the first attribute of the wrong type.
    public static func check(_ node: Node) throws {
        guard node.domain.isEmpty || node.domain == "ai.onnx" else { return }
        for (name, value) in node.attributes.sorted(by: { $0.key < $1.key }) {
            // An attribute no ONNX schema of the op defines (a misspelled `stride`) would be
            // ignored, and the op would run with its default: the ONNX checker refuses it too.
            if let known = AttributeNames.byOp[node.opType], !known.contains(name) {
                throw ModelError.invalidAttribute(node: node.name, opType: node.opType, attribute: name,
                                                  reason: "is not defined by any ONNX schema of \(node.opType)")
            }
            if flags.contains(name), case .int(let v) = value, v != 0 && v != 1 {
                throw ModelError.invalidAttribute(node: node.name, opType: node.opType, attribute: name,
                                                  reason: "is a flag and must be 0 or 1, the file has \(v)")
            }
            guard let kind = expected(node.opType, name), !kind.matches(value) else { continue }
            // Files from old exporters leave an empty list untyped; that reads as "absent".
            if case .ints(let v) = value, v.isEmpty, kind == .floats || kind == .strings { continue }
            throw ModelError.invalidAttribute(node: node.name, opType: node.opType, attribute: name,
                                              reason: "must be \(kind.rawValue) (ONNX schema), the file has \(describe(value))")
        }
    }

    static func describe(_ a: Attribute) -> String {
        switch a {
        case .int(let v): return "int \(v)"
        case .float(let v): return "float \(v)"
        case .string(let v): return "string '\(v.prefix(40))'"
        case .tensor(let t): return "tensor \(Tensor.describe(t.shape))"
        case .ints(let v): return "ints \(v.prefix(8))"
        case .floats(let v): return "floats \(v.prefix(8))"
        case .strings(let v): return "strings \(v.prefix(8))"
        case .graph: return "a graph"
        }
    }
}
