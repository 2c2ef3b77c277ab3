import Foundation
import ONNX

enum PoolOps {
    static let table: [String: OpEntry] = [
        "MaxPool": OpEntry(since: 1) { node, inputs, _ in
            let wantIndices = node.outputs.count > 1 && !node.outputs[1].isEmpty
            let (y, indices) = try MaxPool(x: try node.required(inputs, 0, "X"),
                                           autoPad: node.string("auto_pad", default: "NOTSET"),
                                           ceilMode: node.int("ceil_mode", default: 0) != 0,
                                           dilations: node.ints("dilations"), kernelShape: node.ints("kernel_shape"),
                                           pads: node.ints("pads"), storageOrder: node.int("storage_order", default: 0),
                                           strides: node.ints("strides"), computeIndices: wantIndices)
            return wantIndices ? [y, indices!] : [y]
        },
        "AveragePool": OpEntry(since: 1) { node, inputs, _ in
            [try AveragePool(x: try node.required(inputs, 0, "X"), autoPad: node.string("auto_pad", default: "NOTSET"),
                             ceilMode: node.int("ceil_mode", default: 0) != 0,
                             countIncludePad: node.int("count_include_pad", default: 0) != 0,
                             dilations: node.ints("dilations"), kernelShape: node.ints("kernel_shape"),
                             pads: node.ints("pads"), strides: node.ints("strides"))]
        },
        "LpPool": OpEntry(since: 2) { node, inputs, _ in
            [try LpPool(x: try node.required(inputs, 0, "X"), autoPad: node.string("auto_pad", default: "NOTSET"),
                        ceilMode: node.int("ceil_mode", default: 0) != 0, dilations: node.ints("dilations"),
                        kernelShape: node.ints("kernel_shape"), p: node.int("p", default: 2),
                        pads: node.ints("pads"), strides: node.ints("strides"))]
        },
        "GlobalAveragePool": OpEntry(since: 1) { node, inputs, _ in
            [try GlobalAveragePool(x: try node.required(inputs, 0, "X"))]
        },
        "GlobalMaxPool": OpEntry(since: 1) { node, inputs, _ in
            [try GlobalMaxPool(x: try node.required(inputs, 0, "X"))]
        },
        "GlobalLpPool": OpEntry(since: 2) { node, inputs, _ in
            [try GlobalLpPool(x: try node.required(inputs, 0, "X"),
                              p: node.int("p", default: 2))]
        },
    ]

    /// ONNX MaxPool. `Indices` (flat positions in X, row- or column-major within a plane
    /// per `storage_order`) is computed only when asked for.
    static func MaxPool(x: Tensor, autoPad: String, ceilMode: Bool, dilations: [Int]?, kernelShape: [Int]?,
                        pads: [Int]?, storageOrder: Int, strides: [Int]?,
                        computeIndices: Bool = false) throws -> (Tensor, Tensor?) {
        if !x.dtype.isFloating {
            // int8/uint8 (opset 12): the max of small integers is exact in Float.
            guard [.int8, .uint8].contains(x.dtype) else { throw OpError("MaxPool X must be float, int8 or uint8, got \(x.dtype.rawValue)") }
            let xf = Tensor(shape: x.shape, floats: x.ints.map { Float($0) })
            let (y, i) = try MaxPool(x: xf, autoPad: autoPad, ceilMode: ceilMode, dilations: dilations, kernelShape: kernelShape,
                                     pads: pads, storageOrder: storageOrder, strides: strides, computeIndices: computeIndices)
            return (Tensor(shape: y.shape, ints: y.floats.map { $0.isFinite ? Int64($0) : 0 }, dtype: x.dtype), i)
        }
        let (shape, g) = try poolGeometry(x, "MaxPool", autoPad, ceilMode, dilations, kernelShape, pads, strides)
        return pool(x, shape, g, .max, computeIndices: computeIndices, columnMajor: storageOrder == 1)
    }

    /// ONNX AveragePool: padding counts in the divisor only with `count_include_pad`, and
    /// never the part of a `ceil_mode` window beyond the padded input.
    static func AveragePool(x: Tensor, autoPad: String, ceilMode: Bool, countIncludePad: Bool, dilations: [Int]?,
                            kernelShape: [Int]?, pads: [Int]?, strides: [Int]?) throws -> Tensor {
        let (shape, g) = try poolGeometry(x, "AveragePool", autoPad, ceilMode, dilations, kernelShape, pads, strides)
        return pool(x, shape, g, .average(includePad: countIncludePad)).0
    }

    /// ONNX LpPool: `(Σ|x|^p)^(1/p)` over each window; padding contributes zeros.
    static func LpPool(x: Tensor, autoPad: String, ceilMode: Bool, dilations: [Int]?, kernelShape: [Int]?,
                       p: Int, pads: [Int]?, strides: [Int]?) throws -> Tensor {
        let (shape, g) = try poolGeometry(x, "LpPool", autoPad, ceilMode, dilations, kernelShape, pads, strides)
        return pool(x, shape, g, .lp(Float(p))).0
    }

    static func GlobalAveragePool(x: Tensor) throws -> Tensor {
        try globalPool(x, "GlobalAveragePool") { p, n in
            // Four partial sums break the add dependency chain (and lose no accuracy).
            var s0: Float = 0, s1: Float = 0, s2: Float = 0, s3: Float = 0, i = 0
            while i + 4 <= n { s0 += p[i]; s1 += p[i + 1]; s2 += p[i + 2]; s3 += p[i + 3]; i += 4 }
            while i < n { s0 += p[i]; i += 1 }
            return ((s0 + s1) + (s2 + s3)) / Float(n)
        }
    }

    static func GlobalMaxPool(x: Tensor) throws -> Tensor {
        try globalPool(x, "GlobalMaxPool") { p, n in
            var m = -Float.infinity
            for i in 0..<n where p[i] > m || p[i].isNaN { m = p[i] }
            return m
        }
    }

    static func GlobalLpPool(x: Tensor, p: Int) throws -> Tensor {
        let pf = Float(p)
        return try globalPool(x, "GlobalLpPool") { ptr, n in
            var s: Float = 0
            for i in 0..<n { s += powf(abs(ptr[i]), pf) }
            return powf(s, 1 / pf)
        }
    }

    /// Reduces each `[N,C]` plane to one value; the result keeps every axis (`[N,C,1,...]`).
    private static func globalPool(_ x: Tensor, _ op: String,
                                   _ reduce: (UnsafePointer<Float>, Int) -> Float) throws -> Tensor {
        try ensureFloat(x, "\(op) X")
        guard x.rank >= 2 else { throw OpError("\(op) needs X [N,C,...], got \(Tensor.describe(x.shape))") }
        let planes = x.shape[0] * x.shape[1], n = x.shape.dropFirst(2).reduce(1, *)
        var out = [Float](repeating: 0, count: planes)
        x.floats.withUnsafeBufferPointer { px in
            for i in 0..<planes { out[i] = n == 0 ? .nan : reduce(px.baseAddress! + i * n, n) }
        }
        return Tensor(shape: Array(x.shape.prefix(2)) + [Int](repeating: 1, count: x.rank - 2), floats: out, dtype: x.dtype)
    }
}
