import Foundation
import ONNX

/// Binary and variadic arithmetic with numpy broadcasting. Float tensors compute in Float;
/// integer tensors (shape arithmetic in exported graphs) in Int64, wrapped to their dtype.
/// Unary math, comparisons and logic live in `Elementwise+Unary.swift`.
enum ElementwiseOps {
    static let table: [String: OpEntry] = {
        var t: [String: OpEntry] = [
            // Closures, not the functions: see `unaryTable`.
            "Add": binary { try Add($0, $1) }, "Sub": binary { try Sub($0, $1) }, "Mul": binary { try Mul($0, $1) },
            "Div": binary { try Div($0, $1) }, "Pow": binary { try Pow($0, $1) },
            "Mod": OpEntry(since: 10) { node, i, _ in
                [try Mod(node.required(i, 0, "A"), node.required(i, 1, "B"), fmod: node.int("fmod", default: 0))]
            },
            "Sum": variadic { try Sum($0) }, "Max": variadic { try Max($0) }, "Min": variadic { try Min($0) },
            "Mean": variadic { try Mean($0) },
        ]
        t.merge(unaryTable) { a, _ in a }
        return t
    }()

    /// Entry for a two-input op.
    static func binary(_ f: @escaping @Sendable (Tensor, Tensor) throws -> Tensor) -> OpEntry {
        OpEntry { node, i, _ in [try f(node.required(i, 0, "A"), node.required(i, 1, "B"))] }
    }

    /// Entry for a variadic op (at least one input).
    static func variadic(_ f: @escaping @Sendable ([Tensor]) throws -> Tensor) -> OpEntry {
        OpEntry { _, i, _ in
            let xs = i.compactMap { $0 }
            guard !xs.isEmpty else { throw OpError("needs at least one input") }
            return [try f(xs)]
        }
    }

    /// Add, Sub, Mul and Div give both inputs one ONNX type T: a float tensor with an integer
    /// one is a broken model (an int32 embedding table gathered into a float Add, found by the
    /// fuzzer), not something to convert silently. (Pow, whose exponent may differ, does not check.)
    static func requireOneType(_ a: Tensor, _ b: Tensor) throws {
        guard a.dtype.isFloating == b.dtype.isFloating else {
            throw OpError("inputs must have one type (ONNX type T), got \(a.dtype) and \(b.dtype)")
        }
    }

    static func Add(_ a: Tensor, _ b: Tensor) throws -> Tensor {
        try requireOneType(a, b)
        if takesFastBinary(a, b) { return binaryFloats(a, b, multiply: false, relu: false) }
        return try Broadcast.arithmetic(a, b, float: { $0 + $1 }, int: { $0 &+ $1 })
    }

    static func Sub(_ a: Tensor, _ b: Tensor) throws -> Tensor {
        try requireOneType(a, b)
        return try Broadcast.arithmetic(a, b, float: { $0 - $1 }, int: { $0 &- $1 })
    }

    static func Mul(_ a: Tensor, _ b: Tensor) throws -> Tensor {
        try requireOneType(a, b)
        if takesFastBinary(a, b) { return binaryFloats(a, b, multiply: true, relu: false) }
        return try Broadcast.arithmetic(a, b, float: { $0 * $1 }, int: { $0 &* $1 })
    }

    /// Integer division truncates toward zero, as C and ONNX Runtime do. Division by zero
    /// in integers is undefined in ONNX; mpq yields 0 rather than trapping.
    static func Div(_ a: Tensor, _ b: Tensor) throws -> Tensor {
        try requireOneType(a, b)
        return try Broadcast.arithmetic(a, b, float: { $0 / $1 }, int: { y, z in
            z == 0 ? 0 : y.dividedReportingOverflow(by: z).partialValue
        })
    }

    /// The result takes the base's type: an integer base with a float exponent stays integer.
    static func Pow(_ a: Tensor, _ b: Tensor) throws -> Tensor {
        if a.dtype.isFloating {
            return try Broadcast.floats(a, b) { x, y in
                y == 2 ? x * x : Foundation.pow(x, y)
            }
        }
        let r = try Broadcast.binary(a.asFloats.map(Double.init), a.shape, b.asFloats.map(Double.init), b.shape) { x, y in
            Foundation.pow(x, y)
        }
        let v = r.values.map { p -> Int64 in p.isFinite ? Int64(clamping: Int64(exactly: p.rounded(.towardZero)) ?? 0) : 0 }
        return Tensor(shape: r.shape, ints: v.map(a.dtype.wrap), dtype: a.dtype)
    }

    /// `fmod = 0`: the remainder takes the divisor's sign (Python `%`);
    /// `fmod = 1`: it takes the dividend's sign (C `fmod`).
    static func Mod(_ a: Tensor, _ b: Tensor, fmod: Int) throws -> Tensor {
        if fmod != 0 {
            return try Broadcast.arithmetic(a, b, float: { Foundation.fmod($0, $1) },
                                            int: { x, y in y == 0 ? 0 : x.remainderReportingOverflow(dividingBy: y).partialValue })
        }
        return try Broadcast.arithmetic(a, b, float: { x, y in
            let r = Foundation.fmod(x, y)
            return r != 0 && (r < 0) != (y < 0) ? r + y : r
        }, int: { x, y in
            if y == 0 { return 0 }
            let r = x.remainderReportingOverflow(dividingBy: y).partialValue
            return r != 0 && (r < 0) != (y < 0) ? r + y : r
        })
    }

    static func Sum(_ xs: [Tensor]) throws -> Tensor {
        try xs.dropFirst().reduce(xs[0]) { try Add($0, $1) }
    }

    /// NaN propagates, as numpy's maximum does.
    static func Max(_ xs: [Tensor]) throws -> Tensor {
        try xs.dropFirst().reduce(xs[0]) {
            try Broadcast.arithmetic($0, $1, float: { x, y in x > y || x.isNaN ? x : y }, int: { Swift.max($0, $1) })
        }
    }

    static func Min(_ xs: [Tensor]) throws -> Tensor {
        try xs.dropFirst().reduce(xs[0]) {
            try Broadcast.arithmetic($0, $1, float: { x, y in x < y || x.isNaN ? x : y }, int: { Swift.min($0, $1) })
        }
    }

    static func Mean(_ xs: [Tensor]) throws -> Tensor {
        let s = try Sum(xs)
        let n = Float(xs.count)
        return s.mapFloats { $0 / n }
    }
}
