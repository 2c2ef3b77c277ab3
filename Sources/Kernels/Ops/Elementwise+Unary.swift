import Foundation
import ONNX

/// Unary math, comparisons, logic and Where.
extension ElementwiseOps {
    static let unaryTable: [String: OpEntry] = [
        "Sqrt": unary(Sqrt), "Exp": unary(Exp), "Log": unary(Log), "Neg": unary(Neg), "Abs": unary(Abs),
        "Reciprocal": unary(Reciprocal), "Floor": unary(Floor), "Ceil": unary(Ceil), "Round": unary(Round),
        "Erf": unary(Erf), "Sign": unary(Sign), "Not": unary(Not),
        "Sin": unary(Sin), "Cos": unary(Cos), "IsNaN": unary(IsNaN),
        "IsInf": OpEntry(since: 10) { node, i, _ in
            [IsInf(try node.required(i, 0, "X"), detectNegative: node.int("detect_negative", default: 1),
                   detectPositive: node.int("detect_positive", default: 1))]
        },
        "Equal": binary(Equal), "Less": binary(Less), "LessOrEqual": binary(LessOrEqual),
        "Greater": binary(Greater), "GreaterOrEqual": binary(GreaterOrEqual),
        "And": binary(And), "Or": binary(Or), "Xor": binary(Xor),
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
    static func Reciprocal(_ x: Tensor) -> Tensor { x.mapFloats { 1 / $0 } }
    static func Erf(_ x: Tensor) -> Tensor { x.mapFloats { Foundation.erf($0) } }

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

    /// Picks X where the condition holds, else Y; all three broadcast together.
    static func Where(_ cond: Tensor, _ x: Tensor, _ y: Tensor) throws -> Tensor {
        let out = try Broadcast.shape([cond.shape, x.shape, y.shape])
        let ic = Broadcast.indices(cond.shape, to: out)
        let ix = Broadcast.indices(x.shape, to: out)
        let iy = Broadcast.indices(y.shape, to: out)
        let c = cond.asInts
        if x.dtype.isFloating || y.dtype.isFloating {
            let xv = x.asFloats, yv = y.asFloats
            let v = (0..<ic.count).map { c[ic[$0]] != 0 ? xv[ix[$0]] : yv[iy[$0]] }
            return Tensor(shape: out, floats: v, dtype: x.dtype.isFloating ? x.dtype : y.dtype)
        }
        let v = (0..<ic.count).map { c[ic[$0]] != 0 ? x.ints[ix[$0]] : y.ints[iy[$0]] }
        return Tensor(shape: out, ints: v, dtype: x.dtype)
    }
}
