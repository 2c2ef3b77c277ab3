import CKernels
import Foundation
import ONNX

/// Unary math, comparisons, logic and Where.
extension ElementwiseOps {
    static let unaryTable: [String: OpEntry] = [
        // Closures, not the functions themselves: a function value converted to @Sendable is a
        // data-race warning (an error in the Swift 6 language mode); a closure capturing nothing is Sendable.
        "Sqrt": unary { Sqrt($0) }, "Exp": unary { Exp($0) }, "Log": unary { Log($0) }, "Neg": unary { Neg($0) },
        "Abs": unary { Abs($0) }, "Reciprocal": unary { Reciprocal($0) }, "Floor": unary { Floor($0) },
        "Ceil": unary { Ceil($0) }, "Round": unary { Round($0) }, "Erf": unary { Erf($0) }, "Sign": unary { Sign($0) },
        "Not": unary { Not($0) }, "Sin": unary { Sin($0) }, "Cos": unary { Cos($0) }, "Tan": unary { Tan($0) },
        "Asin": unary { Asin($0) }, "Acos": unary { Acos($0) }, "Atan": unary { Atan($0) }, "Sinh": unary { Sinh($0) },
        "Cosh": unary { Cosh($0) }, "Asinh": unary { Asinh($0) }, "Acosh": unary { Acosh($0) },
        "Atanh": unary { Atanh($0) }, "IsNaN": unary { IsNaN($0) },
        "BitwiseNot": OpEntry(since: 18) { n, i, _ in [try BitwiseNot(n.required(i, 0, "X"))] },
        "BitwiseAnd": OpEntry(since: 18) { n, i, _ in [try BitwiseAnd(n.required(i, 0, "A"), n.required(i, 1, "B"))] },
        "BitwiseOr": OpEntry(since: 18) { n, i, _ in [try BitwiseOr(n.required(i, 0, "A"), n.required(i, 1, "B"))] },
        "BitwiseXor": OpEntry(since: 18) { n, i, _ in [try BitwiseXor(n.required(i, 0, "A"), n.required(i, 1, "B"))] },
        "BitShift": OpEntry(since: 11) { n, i, _ in
            [try BitShift(n.required(i, 0, "X"), n.required(i, 1, "Y"), direction: n.string("direction", default: ""))]
        },
        "IsInf": OpEntry(since: 10) { node, i, _ in
            [IsInf(try node.required(i, 0, "X"), detectNegative: node.int("detect_negative", default: 1),
                   detectPositive: node.int("detect_positive", default: 1))]
        },
        "Equal": binary { try Equal($0, $1) }, "Less": binary { try Less($0, $1) },
        "LessOrEqual": binary { try LessOrEqual($0, $1) }, "Greater": binary { try Greater($0, $1) },
        "GreaterOrEqual": binary { try GreaterOrEqual($0, $1) },
        "And": binary { try And($0, $1) }, "Or": binary { try Or($0, $1) }, "Xor": binary { try Xor($0, $1) },
        "Where": OpEntry(since: 9) { node, i, _ in
            [try Where(node.required(i, 0, "condition"), node.required(i, 1, "X"), node.required(i, 2, "Y"))]
        },
    ]

    static func unary(_ f: @escaping @Sendable (Tensor) throws -> Tensor) -> OpEntry {
        OpEntry { node, i, _ in [try f(node.required(i, 0, "X"))] }
    }

    static func Sqrt(_ x: Tensor) -> Tensor { x.mapFloats { $0.squareRoot() } }
    static func Exp(_ x: Tensor) -> Tensor { x.mapFloats { Foundation.exp($0) } }
    static func Log(_ x: Tensor) -> Tensor { x.mapFloats { Foundation.log($0) } }
    static func Sin(_ x: Tensor) -> Tensor { x.mapFloats { Foundation.sin($0) } }
    static func Cos(_ x: Tensor) -> Tensor { x.mapFloats { Foundation.cos($0) } }
    static func Tan(_ x: Tensor) -> Tensor { x.mapFloats { Foundation.tan($0) } }
    static func Asin(_ x: Tensor) -> Tensor { x.mapFloats { Foundation.asin($0) } }
    static func Acos(_ x: Tensor) -> Tensor { x.mapFloats { Foundation.acos($0) } }
    static func Atan(_ x: Tensor) -> Tensor { x.mapFloats { Foundation.atan($0) } }
    static func Sinh(_ x: Tensor) -> Tensor { x.mapFloats { Foundation.sinh($0) } }
    static func Cosh(_ x: Tensor) -> Tensor { x.mapFloats { Foundation.cosh($0) } }
    static func Asinh(_ x: Tensor) -> Tensor { x.mapFloats { Foundation.asinh($0) } }
    static func Acosh(_ x: Tensor) -> Tensor { x.mapFloats { Foundation.acosh($0) } }
    static func Atanh(_ x: Tensor) -> Tensor { x.mapFloats { Foundation.atanh($0) } }
    static func Reciprocal(_ x: Tensor) -> Tensor { x.mapFloats { 1 / $0 } }
    /// Float tensors go to `mpq_erf_f32` (vectorised polynomial, about 1 ulp from erff,
    /// split over the cores: GELU's Erf is a large share of a transformer's non-GEMM time);
    /// `ErfReference` (libm) is what it is tested against.
    /// Written into a new array (in place on `var y = x` copied the input first: the
    /// caller still holds it).
    static func Erf(_ x: Tensor) -> Tensor {
        guard x.dtype.isFloating else { return ErfReference(x) }
        let n = x.floats.count
        guard n > 0 else { return x }
        var y = x
        y.floats = [Float](unsafeUninitializedCapacity: n) { dst, count in
            x.floats.withUnsafeBufferPointer { mpq_erf_f32(MPQ_PATH_AUTO, $0.baseAddress, n, dst.baseAddress, rowThreads(n)) }
            count = n
        }
        return y
    }

    static func ErfReference(_ x: Tensor) -> Tensor { x.mapFloats { Foundation.erf($0) } }

    static func Neg(_ x: Tensor) -> Tensor {
        x.dtype.isFloating ? x.mapFloats { -$0 } : x.mapInts { 0 &- $0 }
    }

    static func Abs(_ x: Tensor) -> Tensor {
        x.dtype.isFloating ? x.mapFloats { Swift.abs($0) } : x.mapInts { $0 < 0 ? 0 &- $0 : $0 }
    }

    static func Sign(_ x: Tensor) -> Tensor {
        x.dtype.isFloating ? x.mapFloats { $0 > 0 ? 1 : ($0 < 0 ? -1 : $0) }   // NaN and ±0 stay
                           : x.mapInts { $0 > 0 ? 1 : ($0 < 0 ? -1 : 0) }
    }

    static func Floor(_ x: Tensor) -> Tensor { x.dtype.isFloating ? x.mapFloats { $0.rounded(.down) } : x }
    static func Ceil(_ x: Tensor) -> Tensor { x.dtype.isFloating ? x.mapFloats { $0.rounded(.up) } : x }
    /// Halves round to even, as ONNX Round specifies.
    static func Round(_ x: Tensor) -> Tensor { x.dtype.isFloating ? x.mapFloats { $0.rounded(.toNearestOrEven) } : x }

    static func Not(_ x: Tensor) -> Tensor {
        Tensor(shape: x.shape, ints: x.asInts.map { $0 == 0 ? 1 : 0 }, dtype: .bool)
    }

    static func IsNaN(_ x: Tensor) -> Tensor {
        Tensor(shape: x.shape, ints: x.asFloats.map { $0.isNaN ? 1 : 0 }, dtype: .bool)
    }

    static func IsInf(_ x: Tensor, detectNegative: Int, detectPositive: Int) -> Tensor {
        Tensor(shape: x.shape, ints: x.asFloats.map {
            ($0 == .infinity && detectPositive != 0) || ($0 == -.infinity && detectNegative != 0) ? 1 : 0
        }, dtype: .bool)
    }

    static func Equal(_ a: Tensor, _ b: Tensor) throws -> Tensor {
        try Broadcast.compare(a, b, float: { $0 == $1 }, int: { $0 == $1 })
    }
    static func Less(_ a: Tensor, _ b: Tensor) throws -> Tensor {
        try Broadcast.compare(a, b, float: { $0 < $1 }, int: { $0 < $1 })
    }
    static func LessOrEqual(_ a: Tensor, _ b: Tensor) throws -> Tensor {
        try Broadcast.compare(a, b, float: { $0 <= $1 }, int: { $0 <= $1 })
    }
    static func Greater(_ a: Tensor, _ b: Tensor) throws -> Tensor {
        try Broadcast.compare(a, b, float: { $0 > $1 }, int: { $0 > $1 })
    }
    static func GreaterOrEqual(_ a: Tensor, _ b: Tensor) throws -> Tensor {
        try Broadcast.compare(a, b, float: { $0 >= $1 }, int: { $0 >= $1 })
    }

    static func And(_ a: Tensor, _ b: Tensor) throws -> Tensor {
        try Broadcast.compare(a, b, float: { $0 != 0 && $1 != 0 }, int: { $0 != 0 && $1 != 0 })
    }
    static func Or(_ a: Tensor, _ b: Tensor) throws -> Tensor {
        try Broadcast.compare(a, b, float: { $0 != 0 || $1 != 0 }, int: { $0 != 0 || $1 != 0 })
    }
    static func Xor(_ a: Tensor, _ b: Tensor) throws -> Tensor {
        try Broadcast.compare(a, b, float: { ($0 != 0) != ($1 != 0) }, int: { ($0 != 0) != ($1 != 0) })
    }

    /// Bitwise ops on integer tensors; results wrap to the first operand's width (so `~`
    /// of a uint8 stays in 0...255).
    static func BitwiseNot(_ x: Tensor) throws -> Tensor {
        guard !x.dtype.isFloating else { throw OpError("needs an integer tensor, got \(x.dtype)") }
        return x.mapInts { ~$0 }
    }
    static func BitwiseAnd(_ a: Tensor, _ b: Tensor) throws -> Tensor { try Broadcast.ints(a, b) { $0 & $1 } }
    static func BitwiseOr(_ a: Tensor, _ b: Tensor) throws -> Tensor { try Broadcast.ints(a, b) { $0 | $1 } }
    static func BitwiseXor(_ a: Tensor, _ b: Tensor) throws -> Tensor { try Broadcast.ints(a, b) { $0 ^ $1 } }

    /// Unsigned shifts (ONNX BitShift is defined for unsigned types only).
    static func BitShift(_ x: Tensor, _ y: Tensor, direction: String) throws -> Tensor {
        switch direction {
        case "LEFT": return try Broadcast.ints(x, y) { $1 < 0 || $1 >= 64 ? 0 : Int64(bitPattern: UInt64(bitPattern: $0) << UInt64($1)) }
        case "RIGHT": return try Broadcast.ints(x, y) { $1 < 0 || $1 >= 64 ? 0 : Int64(bitPattern: UInt64(bitPattern: $0) >> UInt64($1)) }
        default: throw OpError("BitShift direction must be LEFT or RIGHT, got '\(direction)'")
        }
    }

    /// Picks X where the condition holds, else Y; all three broadcast together. Operands
    /// are first expanded to the output shape (a fast strided copy), then picked in one pass.
    static func Where(_ cond: Tensor, _ x: Tensor, _ y: Tensor) throws -> Tensor {
        let out = try Broadcast.shape([cond.shape, x.shape, y.shape])
        func full(_ t: Tensor) -> Tensor {
            t.shape == out ? t : t.strided(shape: out, strides: Broadcast.strides(t.shape, in: out), offset: 0)
        }
        let c = full(cond).asInts
        if x.dtype.isFloating || y.dtype.isFloating {
            let xv = full(x).asFloats, yv = full(y).asFloats
            let v = [Float](unsafeUninitializedCapacity: c.count) { buf, n in
                for k in 0..<c.count { buf[k] = c[k] != 0 ? xv[k] : yv[k] }
                n = c.count
            }
            return Tensor(shape: out, floats: v, dtype: x.dtype.isFloating ? x.dtype : y.dtype)
        }
        let xv = full(x).ints, yv = full(y).ints
        return Tensor(shape: out, ints: (0..<c.count).map { c[$0] != 0 ? xv[$0] : yv[$0] }, dtype: x.dtype)
    }
}
