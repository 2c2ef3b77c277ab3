import ONNX

/// QuantizeLinear and DequantizeLinear in FP32 (simulated quantization): what a QDQ model
/// (`mpq export --format qdq`) needs to run in mpq's FP32 runtime. Per-tensor and
/// per-axis (opset 13); uint8/int8 outputs, int8/uint8/int32 inputs. Block quantization
/// (opset 21 `block_size`) and float8 types are not supported.
enum QuantizeOps {
    static let table: [String: OpEntry] = [
        "QuantizeLinear": OpEntry(since: 10) { n, i, _ in
            [try QuantizeLinear(n.required(i, 0, "x"), scale: n.required(i, 1, "y_scale"), zeroPoint: i.count > 2 ? i[2] : nil,
                                axis: n.int("axis", default: 1), blockSize: n.int("block_size", default: 0),
                                outputDType: n.int("output_dtype", default: 0))]
        },
        "DequantizeLinear": OpEntry(since: 10) { n, i, _ in
            [try DequantizeLinear(n.required(i, 0, "x"), scale: n.required(i, 1, "x_scale"), zeroPoint: i.count > 2 ? i[2] : nil,
                                  axis: n.int("axis", default: 1), blockSize: n.int("block_size", default: 0))]
        },
    ]
}

/// Per-element index into a per-tensor (count 1) or per-axis (1-D, x.shape[axis]) parameter.
private func parameterIndex(_ x: Tensor, _ p: Tensor, axis: Int, blockSize: Int, what: String) throws -> (Int) -> Int {
    guard blockSize == 0 else { throw OpError("\(what): block quantization (block_size \(blockSize)) is not supported") }
    if p.rank == 0 || (p.rank == 1 && p.count == 1 && x.rank == 0) { return { _ in 0 } }
    guard p.rank == 1 else { throw OpError("\(what): the scale must be a scalar or 1-D, it is \(Tensor.describe(p.shape))") }
    let a = try dimensionAxis(axis, rank: x.rank)
    guard p.count == x.shape[a] else {
        throw OpError("\(what): \(p.count) scales for axis \(a) of size \(x.shape[a]) (input \(Tensor.describe(x.shape)))")
    }
    let inner = x.shape[(a + 1)...].reduce(1, *), c = x.shape[a]
    return { ($0 / inner) % c }
}

/// y = saturate(round_half_even(x / scale) + zero_point), as mpq's activation quantizer
/// (the division in float, NaN to the low end).
func QuantizeLinear(_ x: Tensor, scale: Tensor, zeroPoint: Tensor?, axis: Int, blockSize: Int, outputDType: Int) throws -> Tensor {
    guard x.dtype.isFloating else { throw OpError("QuantizeLinear: x must be float, it is \(x.dtype)") }
    let dtype: DType
    if let z = zeroPoint { dtype = z.dtype }
    else if outputDType != 0 {
        guard let t = DType(onnxCode: outputDType) else { throw OpError("QuantizeLinear: output_dtype \(outputDType) is not supported") }
        dtype = t
    } else { dtype = .uint8 }
    let (lo, hi): (Float, Float)
    switch dtype {
    case .uint8: (lo, hi) = (0, 255)
    case .int8: (lo, hi) = (-128, 127)
    case .uint16: (lo, hi) = (0, 65535)
    case .int16: (lo, hi) = (-32768, 32767)
    default: throw OpError("QuantizeLinear: output type \(dtype) is not supported")
    }
    if let z = zeroPoint, z.shape != scale.shape {
        throw OpError("QuantizeLinear: zero point \(Tensor.describe(z.shape)) and scale \(Tensor.describe(scale.shape)) differ in shape")
    }
    let idx = try parameterIndex(x, scale, axis: axis, blockSize: blockSize, what: "QuantizeLinear")
    let s = scale.asFloats, z = zeroPoint?.ints ?? [Int64](repeating: 0, count: scale.count)
    var out = [Int64](repeating: 0, count: x.count)
    x.floats.withUnsafeBufferPointer { px in
        for i in 0..<px.count {
            let c = idx(i), zp = Float(z[c])
            var v = px[i] / s[c]
            v = v > lo - zp ? v : lo - zp
            v = v < hi - zp ? v : hi - zp
            out[i] = Int64(v.rounded(.toNearestOrEven)) + z[c]
        }
    }
    return Tensor(shape: x.shape, ints: out, dtype: dtype)
}

/// y = (x - zero_point) * scale, in float.
func DequantizeLinear(_ x: Tensor, scale: Tensor, zeroPoint: Tensor?, axis: Int, blockSize: Int) throws -> Tensor {
    guard [.uint8, .int8, .int32, .uint16, .int16].contains(x.dtype) else {
        throw OpError("DequantizeLinear: x of type \(x.dtype) is not supported")
    }
    if let z = zeroPoint, z.shape != scale.shape {
        throw OpError("DequantizeLinear: zero point \(Tensor.describe(z.shape)) and scale \(Tensor.describe(scale.shape)) differ in shape")
    }
    let idx = try parameterIndex(x, scale, axis: axis, blockSize: blockSize, what: "DequantizeLinear")
    let s = scale.asFloats, z = zeroPoint?.ints ?? [Int64](repeating: 0, count: scale.count)
    var out = [Float](repeating: 0, count: x.count)
    x.ints.withUnsafeBufferPointer { px in
        for i in 0..<px.count { let c = idx(i); out[i] = Float(px[i] - z[c]) * s[c] }
    }
    return Tensor(shape: x.shape, floats: out)
}
