/// Element types mpq reads and computes with. Integer and boolean types share Int64
/// storage (values are kept in range of their declared type); float16/float64 data is
/// held as Float32, the precision every mpq kernel computes in.
public enum DType: String, Sendable, CaseIterable, Codable {
    case float32, float16, float64, int64, int32, int16, int8, uint8, uint16, uint32, uint64, bool

    public var isFloating: Bool { self == .float32 || self == .float16 || self == .float64 }

    /// ONNX TensorProto.DataType code.
    public var onnxCode: Int {
        switch self {
        case .float32: return 1
        case .uint8: return 2
        case .int8: return 3
        case .uint16: return 4
        case .int16: return 5
        case .int32: return 6
        case .int64: return 7
        case .bool: return 9
        case .float16: return 10
        case .float64: return 11
        case .uint32: return 12
        case .uint64: return 13
        }
    }

    public init?(onnxCode: Int) {
        guard let t = DType.allCases.first(where: { $0.onnxCode == onnxCode }) else { return nil }
        self = t
    }

    /// Wraps an integer into this type's range, as a C cast (and ONNX Cast) does.
    @inlinable
    public func wrap(_ v: Int64) -> Int64 {
        switch self {
        case .int8: return Int64(Int8(truncatingIfNeeded: v))
        case .uint8: return Int64(UInt8(truncatingIfNeeded: v))
        case .int16: return Int64(Int16(truncatingIfNeeded: v))
        case .uint16: return Int64(UInt16(truncatingIfNeeded: v))
        case .int32: return Int64(Int32(truncatingIfNeeded: v))
        case .uint32: return Int64(UInt32(truncatingIfNeeded: v))
        case .bool: return v != 0 ? 1 : 0
        default: return v
        }
    }
}

/// A dense, C-ordered tensor. Floating types live in `floats`, integer and bool types in
/// `ints`; the other array is empty. Value semantics (copy-on-write arrays).
public struct Tensor: Sendable, Equatable {
    public var shape: [Int]
    public var dtype: DType
    public var floats: [Float]
    public var ints: [Int64]
    /// Set on the INT8 runtime's uint8 chains (docs/int8-chains.md): the tensor is held as
    /// uint8 codes whose float values are `(q - zeroPoint) * scale`, and `floats` is empty
    /// until the runtime materialises it for a consumer that needs float.
    public var codes: QuantizedCodes? = nil

    public var count: Int { shape.reduce(1, *) }
    public var rank: Int { shape.count }

    public init(shape: [Int], floats: [Float], dtype: DType = .float32) {
        precondition(dtype.isFloating, "float storage for \(dtype)")
        precondition(shape.reduce(1, *) == floats.count,
                     "shape \(shape) does not hold \(floats.count) values")
        self.shape = shape; self.dtype = dtype; self.floats = floats; self.ints = []
    }

    public init(shape: [Int], ints: [Int64], dtype: DType = .int64) {
        precondition(!dtype.isFloating, "integer storage for \(dtype)")
        precondition(shape.reduce(1, *) == ints.count,
                     "shape \(shape) does not hold \(ints.count) values")
        self.shape = shape; self.dtype = dtype; self.floats = []; self.ints = ints
    }

    public static func zeros(_ shape: [Int], dtype: DType = .float32) -> Tensor {
        let n = shape.reduce(1, *)
        return dtype.isFloating ? Tensor(shape: shape, floats: [Float](repeating: 0, count: n), dtype: dtype)
                                : Tensor(shape: shape, ints: [Int64](repeating: 0, count: n), dtype: dtype)
    }

    public static func scalar(_ v: Float) -> Tensor { Tensor(shape: [], floats: [v]) }
    public static func scalar(_ v: Int64, dtype: DType = .int64) -> Tensor { Tensor(shape: [], ints: [v], dtype: dtype) }

    /// Values as Float whatever the dtype (ints converted).
    public var asFloats: [Float] { dtype.isFloating ? floats : ints.map { Float($0) } }
    /// Values as Int64 whatever the dtype (floats truncated toward zero, as ONNX Cast does).
    public var asInts: [Int64] {
        dtype.isFloating ? floats.map { $0.isFinite ? Int64(clamping: Int64(exactly: $0.rounded(.towardZero)) ?? ($0 < 0 ? Int64.min : Int64.max)) : 0 } : ints
    }

    /// The same values under a new shape with the same element count.
    public func reshaped(_ newShape: [Int]) -> Tensor {
        var t = self
        precondition(newShape.reduce(1, *) == count, "cannot reshape \(shape) to \(newShape)")
        t.shape = newShape
        return t
    }

    /// A human-readable shape such as `[1,3,224,224]`.
    public static func describe(_ shape: [Int]) -> String { "[" + shape.map(String.init).joined(separator: ",") + "]" }
}

/// A float tensor held as uint8 codes on a per-tensor grid: value = (q - zeroPoint) * scale.
public struct QuantizedCodes: Sendable, Equatable {
    public var values: [UInt8]
    public var scale: Float
    public var zeroPoint: UInt8

    public init(values: [UInt8], scale: Float, zeroPoint: UInt8) {
        self.values = values; self.scale = scale; self.zeroPoint = zeroPoint
    }
}

extension Tensor {
    /// A float32 tensor held only as uint8 codes (`floats` stays empty).
    public init(shape: [Int], codes: QuantizedCodes) {
        precondition(shape.reduce(1, *) == codes.values.count, "shape \(shape) does not hold \(codes.values.count) codes")
        self.shape = shape; self.dtype = .float32; self.floats = []; self.ints = []; self.codes = codes
    }

    /// Whether the values exist only as codes (a consumer that reads `floats` must have the
    /// runtime materialise them first).
    public var isCodesOnly: Bool { codes != nil && floats.count != count }
}

/// Row-major strides for a shape.
@inlinable
public func stridesOf(_ shape: [Int]) -> [Int] {
    var s = [Int](repeating: 1, count: shape.count)
    var acc = 1
    for i in stride(from: shape.count - 1, through: 0, by: -1) { s[i] = acc; acc *= shape[i] }
    return s
}
