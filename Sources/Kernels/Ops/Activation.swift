import CKernels
import Foundation
import ONNX

/// Pointwise activations, Softmax/LogSoftmax/Hardmax, Identity and Dropout (inference).
enum ActivationOps {
    static let table: [String: OpEntry] = [
        "Relu": OpEntry { n, i, _ in [Relu(try n.required(i, 0, "X"))] },
        "LeakyRelu": OpEntry { n, i, _ in [LeakyRelu(try n.required(i, 0, "X"), alpha: n.float("alpha", default: 0.01))] },
        "PRelu": OpEntry { n, i, _ in [try PRelu(n.required(i, 0, "X"), slope: n.required(i, 1, "slope"))] },
        "Clip": OpEntry { n, i, opset in
            let x = try n.required(i, 0, "input")
            if opset < 11 {
                return [try Clip(x, min: n.float("min").map { Tensor.scalar($0) }, max: n.float("max").map { Tensor.scalar($0) })]
            }
            // Opset 11: bounds are optional scalar inputs of the input's type.
            return [try Clip(x, min: i.inputAt(1), max: i.inputAt(2))]
        },
        "Sigmoid": OpEntry { n, i, _ in [Sigmoid(try n.required(i, 0, "X"))] },
        "Tanh": OpEntry { n, i, _ in [Tanh(try n.required(i, 0, "X"))] },
        "HardSigmoid": OpEntry { n, i, _ in
            [HardSigmoid(try n.required(i, 0, "X"), alpha: n.float("alpha", default: 0.2), beta: n.float("beta", default: 0.5))]
        },
        "HardSwish": OpEntry(since: 14) { n, i, _ in [HardSwish(try n.required(i, 0, "X"))] },
        "Softplus": OpEntry { n, i, _ in [Softplus(try n.required(i, 0, "X"))] },
        "Softsign": OpEntry { n, i, _ in [Softsign(try n.required(i, 0, "X"))] },
        "Elu": OpEntry { n, i, _ in [Elu(try n.required(i, 0, "X"), alpha: n.float("alpha", default: 1))] },
        "Celu": OpEntry(since: 12) { n, i, _ in [Celu(try n.required(i, 0, "X"), alpha: n.float("alpha", default: 1))] },
        "ThresholdedRelu": OpEntry(since: 10) { n, i, _ in
            [ThresholdedRelu(try n.required(i, 0, "X"), alpha: n.float("alpha", default: 1))]
        },
        "Selu": OpEntry { n, i, _ in
            [Selu(try n.required(i, 0, "X"), alpha: n.float("alpha", default: 1.67326319217681884765625),
                  gamma: n.float("gamma", default: 1.05070102214813232421875))]
        },
        "Mish": OpEntry(since: 18) { n, i, _ in [Mish(try n.required(i, 0, "X"))] },
        "Gelu": OpEntry(since: 20) { n, i, _ in
            [try Gelu(n.required(i, 0, "X"), approximate: n.string("approximate", default: "none"))]
        },
        "Softmax": OpEntry { n, i, opset in
            [try Softmax(n.required(i, 0, "input"), axis: n.int("axis", default: opset < 13 ? 1 : -1), coerce2D: opset < 13)]
        },
        "LogSoftmax": OpEntry { n, i, opset in
            [try LogSoftmax(n.required(i, 0, "input"), axis: n.int("axis", default: opset < 13 ? 1 : -1), coerce2D: opset < 13)]
        },
        "Hardmax": OpEntry { n, i, opset in
            [try Hardmax(n.required(i, 0, "input"), axis: n.int("axis", default: opset < 13 ? 1 : -1), coerce2D: opset < 13)]
        },
        "Identity": OpEntry { n, i, _ in [try n.required(i, 0, "input")] },
        "Dropout": OpEntry { n, i, opset in
            let x = try n.required(i, 0, "data")
            // Opset 12 made training a run-time input; random masks cannot match a reference.
            let ratio = opset >= 12 ? i.inputAt(1)?.asFloats.first ?? 0.5 : n.float("ratio", default: 0.5)
            if let t = i.inputAt(2), t.asInts.first ?? 0 != 0, ratio > 0 {
                throw OpError("Dropout training_mode=1 with ratio \(ratio) is not supported (inference only)")
            }
            return n.outputs.count > 1 ? Dropout(x) : [Dropout(x)[0]]
        },
    ]

    /// A one-element tensor (Clip bounds), or an error naming it.
    static func scalar(_ t: Tensor?, _ what: String) throws -> Tensor? {
        guard let t else { return nil }
        guard t.count == 1 else { throw OpError("\(what) must be a scalar, got shape \(Tensor.describe(t.shape))") }
        return t
    }

    /// NaN stays NaN (`x < 0` is false for NaN).
    static func Relu(_ x: Tensor) -> Tensor {
        x.dtype.isFloating ? x.mapFloats { $0 < 0 ? 0 : $0 } : x.mapInts { Swift.max($0, 0) }
    }

    static func LeakyRelu(_ x: Tensor, alpha: Float) -> Tensor { x.mapFloats { $0 < 0 ? alpha * $0 : $0 } }

    /// The slope broadcasts to X (per-channel slopes are usually `[C,1,1]`).
    static func PRelu(_ x: Tensor, slope: Tensor) throws -> Tensor {
        let r = try Broadcast.floats(x, slope) { v, s in v < 0 ? v * s : v }
        guard r.shape == x.shape else {
            throw OpError("slope \(Tensor.describe(slope.shape)) does not broadcast to X \(Tensor.describe(x.shape))")
        }
        return r
    }

    /// Either bound may be absent (a one-element tensor otherwise). NaN stays NaN; when
    /// min > max every value becomes max.
    static func Clip(_ x: Tensor, min: Tensor?, max: Tensor?) throws -> Tensor {
        let lo = try scalar(min, "min"), hi = try scalar(max, "max")
        if !x.dtype.isFloating {
            let l = lo?.asInts[0] ?? .min, h = hi?.asInts[0] ?? .max
            return x.mapInts { Swift.min(Swift.max($0, l), h) }
        }
        let l = lo?.asFloats[0] ?? -.infinity, h = hi?.asFloats[0] ?? .infinity
        // Lower bound first: when min > max every value becomes max, as the spec says.
        return x.mapFloats { v in let t = v < l ? l : v; return t > h ? h : t }
    }

    /// `mpq_sigmoid_f32`: ONNX Runtime's logistic (MLAS's rational form, sigmoid_inline.h),
    /// ORT's bits on every kernel path, within 1.8e-7 of the mathematical sigmoid;
    /// `SigmoidReference` is that mathematical sigmoid (libm exp, split by sign so it never
    /// overflows), which the tests bound it against.
    /// From 64K values the tensor splits over the cores (`rowThreads`, as Erf does): same
    /// bits, each value is computed alone.
    /// Written into a new array: sigmoid in place on `var t = x` copied the whole input
    /// first (copy-on-write: the caller still holds x), a third of the op's time.
    static func Sigmoid(_ x: Tensor) -> Tensor {
        guard x.dtype.isFloating else { return SigmoidReference(x) }
        let n = x.floats.count
        guard n > 0 else { return x }
        let threads = Int(rowThreads(n))
        let out = [Float](unsafeUninitializedCapacity: n) { dst, count in
            x.floats.withUnsafeBufferPointer { src in
                poolPerform(threads: threads, chunks: threads) { k in
                    let lo = n * k / threads, hi = n * (k + 1) / threads
                    mpq_sigmoid_f32(MPQ_PATH_AUTO, src.baseAddress! + lo, hi - lo, dst.baseAddress! + lo)
                }
            }
            count = n
        }
        var t = x
        t.floats = out
        return t
    }

    static func SigmoidReference(_ x: Tensor) -> Tensor {
        x.mapFloats { v in
            if v >= 0 { return 1 / (1 + Foundation.exp(-v)) }
            let e = Foundation.exp(v)
            return e / (1 + e)
        }
    }

    static func Tanh(_ x: Tensor) -> Tensor { x.mapFloats { Foundation.tanh($0) } }

    static func HardSigmoid(_ x: Tensor, alpha: Float, beta: Float) -> Tensor {
        x.mapFloats { Swift.max(0, Swift.min(1, alpha * $0 + beta)) }
    }

    static func HardSwish(_ x: Tensor) -> Tensor {
        x.mapFloats { $0 * Swift.max(0, Swift.min(1, $0 / 6 + 0.5)) }
    }

    /// `log(1 + exp(x))`, written so large |x| neither overflows nor loses the tail.
    static func Softplus(_ x: Tensor) -> Tensor {
        x.mapFloats { v in v > 0 ? v + Foundation.log1p(Foundation.exp(-v)) : Foundation.log1p(Foundation.exp(v)) }
    }

    static func Softsign(_ x: Tensor) -> Tensor { x.mapFloats { $0 / (1 + Swift.abs($0)) } }

    static func Elu(_ x: Tensor, alpha: Float) -> Tensor {
        x.mapFloats { $0 < 0 ? alpha * Foundation.expm1($0) : $0 }
    }

    static func Celu(_ x: Tensor, alpha: Float) -> Tensor {
        x.mapFloats { Swift.max(0, $0) + Swift.min(0, alpha * Foundation.expm1($0 / alpha)) }
    }

    static func ThresholdedRelu(_ x: Tensor, alpha: Float) -> Tensor { x.mapFloats { $0 > alpha ? $0 : 0 } }

    static func Selu(_ x: Tensor, alpha: Float, gamma: Float) -> Tensor {
        x.mapFloats { $0 > 0 ? gamma * $0 : gamma * alpha * Foundation.expm1($0) }
    }

    static func Mish(_ x: Tensor) -> Tensor {
        x.mapFloats { v in
            let sp = v > 0 ? v + Foundation.log1p(Foundation.exp(-v)) : Foundation.log1p(Foundation.exp(v))
            return v * Foundation.tanh(sp)
        }
    }

    /// `approximate = "none"` uses erf; `"tanh"` the tanh approximation.
    static func Gelu(_ x: Tensor, approximate: String) throws -> Tensor {
        switch approximate {
        case "none":
            return x.mapFloats { 0.5 * $0 * (1 + Foundation.erf($0 * 0.70710678118654752)) }
        case "tanh":
            let k: Float = 0.79788456080286536  // sqrt(2/pi)
            return x.mapFloats { v in 0.5 * v * (1 + Foundation.tanh(k * (v + 0.044715 * v * v * v))) }
        default:
            throw OpError("unknown approximate '\(approximate)' (expected none or tanh)")
        }
    }

    /// Inference: the input unchanged, and a mask of all true.
    static func Dropout(_ x: Tensor) -> [Tensor] {
        [x, Tensor(shape: x.shape, ints: [Int64](repeating: 1, count: x.count), dtype: .bool)]
    }
}
