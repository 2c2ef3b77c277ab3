import XCTest
@testable import Kernels
import ONNX

final class PoolOpsTests: XCTestCase {
    /// Max or average pooling by definition (explicit pads, floor output size). Never optimised.
    static func referencePool(_ x: Tensor, k: [Int], s: [Int], d: [Int], pads: [Int], max isMax: Bool, includePad: Bool) -> Tensor {
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let oh = (h + pads[0] + pads[2] - d[0] * (k[0] - 1) - 1) / s[0] + 1
        let ow = (w + pads[1] + pads[3] - d[1] * (k[1] - 1) - 1) / s[1] + 1
        var out: [Float] = []
        for p in 0..<(n * c) { for i in 0..<oh { for j in 0..<ow {
            var m = -Float.infinity, sum: Float = 0, valid = 0, padded = 0
            for a in 0..<k[0] { for b in 0..<k[1] {
                let y = i * s[0] - pads[0] + a * d[0], z = j * s[1] - pads[1] + b * d[1]
                if y < h + pads[2] && z < w + pads[3] { padded += 1 }
                guard y >= 0, y < h, z >= 0, z < w else { continue }
                let v = x.floats[(p * h + y) * w + z]
                m = max(m, v); sum += v; valid += 1
            }}
            out.append(isMax ? m : sum / Float(includePad ? padded : valid))
        }}}
        return Tensor(shape: [n, c, oh, ow], floats: out)
    }

    func testMaxAndAveragePoolMatchReference() throws {
        struct C { var x: [Int]; var k: [Int]; var s: [Int]; var d: [Int]; var pads: [Int] }
        let cases = [
            C(x: [1, 3, 9, 11], k: [3, 3], s: [2, 2], d: [1, 1], pads: [1, 1, 1, 1]),
            C(x: [2, 2, 15, 17], k: [3, 2], s: [1, 3], d: [2, 1], pads: [2, 0, 1, 1]),
            C(x: [1, 1, 31, 33], k: [5, 4], s: [3, 2], d: [1, 2], pads: [0, 3, 2, 0]),
            C(x: [1, 4, 7, 6], k: [7, 6], s: [1, 1], d: [1, 1], pads: [0, 0, 0, 0]),
        ]
        for (i, t) in cases.enumerated() {
            var rng = OpTestRandom(seed: UInt64(300 + i))
            let x = rng.tensor(t.x)
            let (mx, _) = try PoolOps.MaxPool(x: x, autoPad: "NOTSET", ceilMode: false, dilations: t.d, kernelShape: t.k,
                                              pads: t.pads, storageOrder: 0, strides: t.s)
            assertClose(mx, Self.referencePool(x, k: t.k, s: t.s, d: t.d, pads: t.pads, max: true, includePad: false), "MaxPool \(i)")
            for include in [false, true] {
                let av = try PoolOps.AveragePool(x: x, autoPad: "NOTSET", ceilMode: false, countIncludePad: include,
                                                 dilations: t.d, kernelShape: t.k, pads: t.pads, strides: t.s)
                assertClose(av, Self.referencePool(x, k: t.k, s: t.s, d: t.d, pads: t.pads, max: false, includePad: include),
                            "AveragePool \(i) include_pad \(include)")
            }
        }
    }

    /// The separable fast path against the direct reference loop, every pool kind, over
    /// ceil_mode, dilation, asymmetric padding and 1-D to 3-D windows.
    func testSeparablePathMatchesDirectLoop() throws {
        struct C { var x: [Int]; var k: [Int]; var s: [Int]; var d: [Int]; var pads: [Int]; var ceil: Bool }
        let cases = [
            C(x: [2, 3, 17, 15], k: [3, 3], s: [2, 2], d: [1, 1], pads: [1, 0, 1, 2], ceil: true),
            C(x: [1, 2, 9, 33], k: [2, 5], s: [3, 2], d: [2, 1], pads: [1, 2, 0, 1], ceil: false),
            C(x: [1, 2, 31], k: [4], s: [3], d: [2], pads: [2, 1], ceil: true),
            C(x: [1, 2, 5, 7, 6], k: [2, 3, 2], s: [2, 1, 2], d: [1, 1, 2], pads: [1, 1, 0, 0, 1, 1], ceil: true),
            C(x: [1, 1, 8, 8], k: [1, 3], s: [1, 1], d: [1, 1], pads: [0, 1, 0, 1], ceil: false),
        ]
        for (i, t) in cases.enumerated() {
            var rng = OpTestRandom(seed: UInt64(400 + i))
            let x = rng.tensor(t.x)
            let (nc, g) = try PoolOps.poolGeometry(x, "test", "NOTSET", t.ceil, t.d, t.k, t.pads, t.s)
            for kind in [PoolKind.max, .average(includePad: false), .average(includePad: true), .lp(2), .lp(3)] {
                let fast = PoolOps.pool(x, nc, g, kind).0
                let ref = PoolOps.pool(x, nc, g, kind, direct: true).0
                assertClose(fast, ref, "case \(i) \(kind)")
            }
        }
    }

    /// Hand-checked: 5x5 of 1...25, 2x2 windows, stride 2, ceil_mode: the last row and
    /// column of windows hang over the edge and see only the input's last row/column.
    func testCeilModeByHand() throws {
        let x = Tensor(shape: [1, 1, 5, 5], floats: (1...25).map(Float.init))
        let (mx, _) = try PoolOps.MaxPool(x: x, autoPad: "NOTSET", ceilMode: true, dilations: nil, kernelShape: [2, 2],
                                          pads: nil, storageOrder: 0, strides: [2, 2])
        XCTAssertEqual(mx.shape, [1, 1, 3, 3])
        XCTAssertEqual(mx.floats, [7, 9, 10, 17, 19, 20, 22, 24, 25])
        let av = try PoolOps.AveragePool(x: x, autoPad: "NOTSET", ceilMode: true, countIncludePad: false, dilations: nil,
                                         kernelShape: [2, 2], pads: nil, strides: [2, 2])
        XCTAssertEqual(av.floats, [4, 6, 7.5, 14, 16, 17.5, 21.5, 23.5, 25])
    }

    /// Indices are flat positions in X: row-major within the plane by default,
    /// column-major with storage_order 1, offset by the plane.
    func testMaxPoolIndices() throws {
        let x = Tensor(shape: [2, 1, 2, 3], floats: [1, 5, 2, 7, 3, 4, /**/ 0, 0, 9, 1, 1, 1])
        let node = Node(name: "p", opType: "MaxPool", inputs: ["x"], outputs: ["y", "i"],
                        attributes: ["kernel_shape": .ints([2, 2])])
        let outs = try PoolOps.table["MaxPool"]!.run(node, [x], 13)
        XCTAssertEqual(outs[0].floats, [7, 5, 1, 9])
        XCTAssertEqual(outs[1].ints, [3, 1, 9, 8])
        var colMajor = node
        colMajor.attributes["storage_order"] = .int(1)
        XCTAssertEqual(try PoolOps.table["MaxPool"]!.run(colMajor, [x], 13)[1].ints, [1, 2, 7, 10])
    }

    /// MaxPool-12 takes int8/uint8: the output keeps the input's type.
    func testMaxPoolOnUInt8() throws {
        let x = Tensor(shape: [1, 1, 2, 3], ints: [1, 255, 2, 7, 3, 0], dtype: .uint8)
        let (y, _) = try PoolOps.MaxPool(x: x, autoPad: "NOTSET", ceilMode: false, dilations: nil, kernelShape: [2, 2],
                                         pads: nil, storageOrder: 0, strides: nil)
        XCTAssertEqual(y.dtype, .uint8)
        XCTAssertEqual(y.ints, [255, 255])
    }

    func testPoolRejectsBadAttributes() {
        let x = OpGolden.Input.x([1, 1, 4, 4]).tensor
        XCTAssertThrowsError(try PoolOps.AveragePool(x: x, autoPad: "NOTSET", ceilMode: false, countIncludePad: false,
                                                     dilations: nil, kernelShape: nil, pads: nil, strides: nil))
        XCTAssertThrowsError(try PoolOps.AveragePool(x: x, autoPad: "NOTSET", ceilMode: false, countIncludePad: false,
                                                     dilations: nil, kernelShape: [2, 2], pads: [-1, 0, 0, 0], strides: nil))
        XCTAssertThrowsError(try PoolOps.AveragePool(x: x, autoPad: "SAME", ceilMode: false, countIncludePad: false,
                                                     dilations: nil, kernelShape: [2, 2], pads: nil, strides: nil))
        // A window far larger than the input is an error (ONNX Runtime returns an empty output).
        XCTAssertThrowsError(try PoolOps.AveragePool(x: x, autoPad: "NOTSET", ceilMode: false, countIncludePad: false,
                                                     dilations: nil, kernelShape: [9, 9], pads: nil, strides: nil)) {
            XCTAssertTrue("\($0)".contains("larger than the padded input"), "\($0)")
        }
        XCTAssertThrowsError(try PoolOps.MaxPool(x: x, autoPad: "NOTSET", ceilMode: false, dilations: nil, kernelShape: [2],
                                                 pads: nil, storageOrder: 0, strides: nil))
    }

    func testPoolsMatchOnnxRuntime() {
        for g in Self.goldens { g.check() }
    }

    static let goldens: [OpGolden] = [
        OpGolden("max k3 s2 asym pads", "MaxPool", opset: 19, inputs: [.x([1, 2, 7, 8])], attributes: ["kernel_shape": .ints([3, 3]), "strides": .ints([2, 2]), "pads": .ints([1, 0, 0, 2])],
                 shape: [1, 2, 3, 4], values: [3.0, 2.75, 3.25, 1.75, 3.5, 3.5, 3.25, 3.0, 3.5, 3.25, 3.25, 3.0, 3.5, 3.25, 2.25, 2.25, 3.5, 3.25, 3.0, 3.5, 3.25, 3.25, 3.0, 3.5]),
        OpGolden("max ceil", "MaxPool", opset: 19, inputs: [.x([1, 2, 7, 8])], attributes: ["kernel_shape": .ints([3, 2]), "strides": .ints([2, 3]), "ceil_mode": .int(1)],
                 shape: [1, 2, 3, 3], values: [3.0, 2.75, 1.75, 2.25, 3.25, 3.0, 3.5, 3.25, 3.0, 3.5, 3.25, 2.25, 2.75, 1.75, 3.5, 3.25, 3.0, 3.5]),
        OpGolden("max ceil drops window in pad", "MaxPool", opset: 19, inputs: [.x([1, 1, 4, 4])], attributes: ["kernel_shape": .ints([2, 2]), "strides": .ints([2, 2]), "pads": .ints([0, 0, 1, 1]), "ceil_mode": .int(1)],
                 shape: [1, 1, 2, 2], values: [1.5, 2.75, 3.25, 2.0]),
        OpGolden("max dilated", "MaxPool", opset: 19, inputs: [.x([1, 2, 7, 8])], attributes: ["kernel_shape": .ints([2, 3]), "dilations": .ints([2, 2]), "pads": .ints([1, 1, 1, 1])],
                 shape: [1, 2, 7, 6], values: [2.0, 3.0, 3.25, 1.0, 3.25, 1.0, 2.75, 3.5, 2.75, 3.5, 2.75, 1.75, 2.0, 3.0, 3.25, 2.75, 3.25, 1.0, 1.25, 3.5, 2.5, 3.5, 2.5, 3.25, 3.5, 2.75, 3.5, 2.75, 3.0, 2.5, 2.75, 3.25, 2.75, 3.25, 2.25, 3.25, 3.5, 2.5, 3.5, 2.5, 1.5, 2.5, 2.5, 3.5, 2.5, 1.5, 2.5, 1.5, 3.25, 2.75, 3.25, 2.25, 3.25, 2.25, 2.5, 3.5, 2.5, 3.25, 3.5, 1.5, 1.75, 2.75, 3.0, 2.5, 3.0, 0.75, 1.0, 3.25, 2.25, 3.25, 3.5, 3.0, 3.25, 2.5, 3.25, 3.5, 2.75, 3.5, -0.5, 3.0, 0.75, 3.0, 2.0, 3.0]),
        OpGolden("max same upper", "MaxPool", opset: 19, inputs: [.x([2, 1, 5, 5])], attributes: ["kernel_shape": .ints([2, 2]), "strides": .ints([2, 2]), "auto_pad": .string("SAME_UPPER")],
                 shape: [2, 1, 3, 3], values: [1.75, 3.0, 0.75, 2.25, 3.5, 1.25, 2.5, 0.25, 1.5, 3.0, 0.75, 2.0, 3.5, 1.25, 2.5, 0.25, 1.5, 2.75]),
        OpGolden("max same lower", "MaxPool", opset: 19, inputs: [.x([2, 1, 5, 5])], attributes: ["kernel_shape": .ints([4, 3]), "strides": .ints([2, 1]), "auto_pad": .string("SAME_LOWER")],
                 shape: [2, 1, 3, 5], values: [1.75, 1.75, 3.0, 3.0, 3.0, 2.25, 2.25, 3.5, 3.5, 3.5, 2.5, 2.5, 3.5, 3.5, 3.5, 3.0, 3.0, 3.0, 2.0, 2.0, 3.5, 3.5, 3.5, 2.5, 2.5, 3.5, 3.5, 3.5, 2.75, 2.75]),
        OpGolden("max same upper dilated", "MaxPool", opset: 19, inputs: [.x([2, 1, 5, 5])], attributes: ["kernel_shape": .ints([2, 2]), "strides": .ints([2, 2]), "dilations": .ints([2, 2]), "auto_pad": .string("SAME_UPPER")],
                 shape: [2, 1, 2, 2], values: [-0.25, 1.0, 0.25, 1.5, 1.0, 2.25, 1.5, 2.75]),
        OpGolden("max valid", "MaxPool", opset: 19, inputs: [.x([2, 1, 5, 5])], attributes: ["kernel_shape": .ints([2, 3]), "strides": .ints([2, 2]), "pads": .ints([1, 1, 1, 1]), "auto_pad": .string("VALID")],
                 shape: [2, 1, 2, 2], values: [1.75, 3.0, 2.25, 3.5, 3.0, 2.0, 3.5, 2.5]),
        OpGolden("max 1d", "MaxPool", opset: 19, inputs: [.x([2, 3, 9])], attributes: ["kernel_shape": .ints([3]), "strides": .ints([2]), "pads": .ints([1, 1])],
                 shape: [2, 3, 5], values: [1.5, 2.75, 2.75, 1.75, 3.0, 0.75, 2.0, 3.25, 2.25, 2.25, 3.5, 2.5, 2.5, 1.5, 2.75, 0.5, 1.75, 3.0, 2.0, 2.0, 3.25, 2.25, 3.5, 3.5, 2.5, 0.25, 1.5, 2.75, 1.75, 1.75]),
        OpGolden("max 3d", "MaxPool", opset: 19, inputs: [.x([1, 2, 4, 5, 3])], attributes: ["kernel_shape": .ints([2, 3, 2]), "strides": .ints([2, 1, 1]), "pads": .ints([0, 1, 0, 1, 1, 1])],
                 shape: [1, 2, 2, 5, 3], values: [3.5, 2.25, 0.0, 3.5, 3.0, 3.0, 3.5, 3.0, 3.0, 3.25, 3.25, 3.0, 3.25, 3.25, 2.75, 3.0, 3.0, 1.5, 3.25, 3.0, 1.5, 3.25, 3.5, 3.5, 3.25, 3.5, 3.5, 3.0, 3.5, 3.5, 3.5, 3.5, 3.0, 3.5, 3.5, 3.0, 3.5, 3.5, 2.0, 3.5, 3.25, 1.0, 3.5, 2.25, 0.0, 3.25, 3.5, 3.5, 3.25, 3.5, 3.5, 3.0, 3.5, 3.5, 3.0, 3.0, 2.5, 3.0, 3.0, 1.5]),
        OpGolden("avg exclude pad", "AveragePool", opset: 19, inputs: [.x([1, 2, 7, 8])], attributes: ["kernel_shape": .ints([3, 3]), "strides": .ints([2, 2]), "pads": .ints([1, 1, 1, 1])],
                 shape: [1, 2, 4, 4], values: [0.8125, 0.7916666865348816, 1.0833333730697632, 0.4166666567325592, 1.125, 0.9444444179534912, 0.9166666865348816, 0.8888888955116272, 0.5833333134651184, 0.7222222089767456, 0.6944444179534912, 0.6666666865348816, 1.375, 0.875, 0.2083333283662796, 0.5, 1.3125, 1.2916666269302368, 0.625, -0.0416666679084301, 1.625, 0.8055555820465088, 0.7777777910232544, 0.75, 0.125, 0.5833333134651184, 0.5555555820465088, 1.1666666269302368, 0.4375, 0.4166666567325592, 0.7083333134651184, 1.0]),
        OpGolden("avg include pad", "AveragePool", opset: 19, inputs: [.x([1, 2, 7, 8])], attributes: ["kernel_shape": .ints([3, 3]), "strides": .ints([2, 2]), "pads": .ints([1, 0, 2, 1]), "count_include_pad": .int(1)],
                 shape: [1, 2, 4, 4], values: [0.1111111119389534, 0.3055555522441864, 0.5, 0.1111111119389534, 1.2777777910232544, 0.6111111044883728, 0.5833333134651184, 0.0555555559694767, 1.0555555820465088, 1.0277777910232544, 0.3611111044883728, 0.3333333432674408, 0.8055555820465088, 0.3611111044883728, 0.5555555820465088, 0.3611111044883728, 0.4444444477558136, 0.6388888955116272, 0.1944444477558136, 0.3333333432674408, 1.1388888359069824, 0.4722222089767456, 0.4444444477558136, 0.3888888955116272, 0.9166666865348816, 0.8888888955116272, 0.2222222238779068, 0.6666666865348816, 0.5, 0.6944444179534912, 0.8888888955116272, 0.5833333134651184]),
        OpGolden("avg ceil exclude", "AveragePool", opset: 19, inputs: [.x([2, 1, 5, 5])], attributes: ["kernel_shape": .ints([2, 2]), "strides": .ints([2, 2]), "ceil_mode": .int(1)],
                 shape: [2, 1, 3, 3], values: [-0.125, 1.125, 0.625, 0.375, 1.625, 1.125, 0.75, -0.875, 1.5, 1.125, -0.5, 1.875, 1.625, 0.0, 2.375, -0.875, 0.375, 2.75]),
        OpGolden("avg ceil include pad", "AveragePool", opset: 19, inputs: [.x([2, 1, 5, 5])], attributes: ["kernel_shape": .ints([3, 3]), "strides": .ints([2, 2]), "pads": .ints([1, 1, 0, 0]), "ceil_mode": .int(1), "count_include_pad": .int(1)],
                 shape: [2, 1, 3, 3], values: [-0.0555555559694767, 0.8611111044883728, 1.1666666269302368, 0.1666666716337204, 1.6666666269302368, 2.125, 0.4166666567325592, 1.0833333730697632, 1.0625, 0.5, 0.4166666567325592, 0.0833333358168602, 1.0, 1.0, 0.5, 0.2916666567325592, 0.4166666567325592, 0.875]),
        OpGolden("avg dilated include", "AveragePool", opset: 19, inputs: [.x([2, 1, 5, 5])], attributes: ["kernel_shape": .ints([2, 2]), "dilations": .ints([2, 2]), "pads": .ints([1, 1, 1, 1]), "count_include_pad": .int(1)],
                 shape: [2, 1, 5, 5], values: [0.4375, -0.5625, 1.1875, 0.0625, 0.75, 0.875, -1.125, 2.375, 0.125, 1.5, 1.0, -0.875, 2.625, 0.375, 1.625, 1.125, -0.625, 1.4375, 0.625, 0.3125, 0.5625, -0.3125, 1.4375, 0.3125, 0.875, 0.75, 0.0625, 0.375, 0.6875, -0.375, 1.5, 0.125, 0.75, 1.375, -0.75, 1.625, 0.375, 1.0, 1.625, -0.625, 0.3125, 0.625, -0.1875, 1.875, -0.5, 0.875, 0.3125, 0.625, 0.9375, -0.25]),
        OpGolden("avg dilated exclude", "AveragePool", opset: 19, inputs: [.x([1, 2, 7, 8])], attributes: ["kernel_shape": .ints([3, 2]), "dilations": .ints([2, 3]), "strides": .ints([1, 2]), "pads": .ints([2, 1, 1, 1])],
                 shape: [1, 2, 6, 4], values: [1.375, 0.25, 1.5, 0.375, 0.625, -0.5, 0.75, 2.5, 1.5833333730697632, 0.4583333432674408, 0.75, 0.5833333134651184, 0.8333333134651184, 0.6666666865348816, 0.0, 1.75, 2.0, 0.875, 0.2083333283662796, 1.0, 2.0, 0.875, -0.75, 1.0, -1.0, 0.75, 2.0, 0.875, 1.125, 0.0, 1.25, 0.125, 0.1666666716337204, 0.0, 1.25, 1.0833333730697632, 1.3333333730697632, 0.2083333283662796, 0.5, 0.3333333432674408, 0.5833333134651184, 0.4166666567325592, 0.7083333134651184, 1.5, 2.5, -0.0625, -0.25, 1.5]),
        OpGolden("avg same lower", "AveragePool", opset: 19, inputs: [.x([2, 1, 5, 5])], attributes: ["kernel_shape": .ints([2, 2]), "strides": .ints([2, 2]), "auto_pad": .string("SAME_LOWER")],
                 shape: [2, 1, 3, 3], values: [-2.0, 0.375, 1.625, -1.625, 0.75, 2.0, -1.125, 1.25, 1.0625, -0.75, 1.625, 0.0, -0.375, 2.0, 0.375, 0.125, 1.0625, 0.875]),
        OpGolden("avg same upper include", "AveragePool", opset: 19, inputs: [.x([2, 1, 5, 5])], attributes: ["kernel_shape": .ints([3, 3]), "strides": .ints([2, 2]), "auto_pad": .string("SAME_UPPER"), "count_include_pad": .int(1)],
                 shape: [2, 1, 3, 3], values: [-0.0555555559694767, 0.8611111044883728, 0.7777777910232544, 0.1666666716337204, 1.6666666269302368, 1.4166666269302368, 0.2777777910232544, 0.7222222089767456, 0.4722222089767456, 0.5, 0.4166666567325592, 0.0555555559694767, 1.0, 1.0, 0.3333333432674408, 0.1944444477558136, 0.2777777910232544, 0.3888888955116272]),
        OpGolden("avg opset 7", "AveragePool", opset: 7, inputs: [.x([2, 1, 5, 5])], attributes: ["kernel_shape": .ints([3, 3]), "pads": .ints([1, 1, 1, 1]), "count_include_pad": .int(1)],
                 shape: [2, 1, 5, 5], values: [-0.0555555559694767, -0.1944444477558136, 0.8611111044883728, 0.6388888955116272, 0.7777777910232544, 0.0, -0.1666666716337204, 1.4166666269302368, 1.0833333730697632, 1.25, 0.1666666716337204, 0.0833333358168602, 1.6666666269302368, 1.3333333730697632, 1.4166666269302368, 0.3333333432674408, 0.3333333432674408, 1.2777777910232544, 0.9444444179534912, 0.9444444179534912, 0.2777777910232544, 0.3055555522441864, 0.7222222089767456, 0.5, 0.4722222089767456, 0.5, 0.6388888955116272, 0.4166666567325592, 0.1944444477558136, 0.0555555559694767, 0.8333333134651184, 1.0833333730697632, 0.75, 0.4166666567325592, 0.1666666716337204, 1.0, 1.3333333730697632, 1.0, 0.6666666865348816, 0.3333333432674408, 0.5277777910232544, 0.9444444179534912, 0.6111111044883728, 0.9166666865348816, 0.5, 0.1944444477558136, 0.5, 0.2777777910232544, 0.6944444179534912, 0.3888888955116272]),
        OpGolden("avg 3d", "AveragePool", opset: 19, inputs: [.x([1, 2, 4, 5, 3])], attributes: ["kernel_shape": .ints([2, 2, 2]), "strides": .ints([1, 2, 1]), "pads": .ints([1, 0, 0, 0, 1, 1])],
                 shape: [1, 2, 4, 3, 3], values: [0.6875, -0.125, -1.25, 0.125, 0.75, 2.5, 1.5, 2.125, 1.0, 1.0625, 0.25, -0.875, 0.5, 0.40625, 1.4375, 0.4375, 1.0625, 1.375, 1.09375, 1.0, -0.125, 1.25, 0.4375, 0.75, -0.25, 0.375, 2.125, 0.40625, 1.03125, 0.625, 1.28125, 0.46875, 0.0625, 0.5, 1.125, 2.875, 0.8125, 1.4375, 1.75, 0.25, 0.875, -0.25, 1.625, -0.625, -1.75, 0.46875, 1.09375, 2.125, 0.625, 1.25, 0.125, 2.0, -0.25, -1.375, 0.5, 0.40625, 1.4375, 0.65625, 1.28125, 0.875, 1.3125, 0.5, -0.625, 1.25, 0.4375, 0.75, -0.03125, 0.59375, 1.625, 0.625, 1.25, 0.125]),
        OpGolden("lp p2", "LpPool", opset: 18, inputs: [.x([1, 2, 7, 8])], attributes: ["kernel_shape": .ints([3, 3]), "strides": .ints([2, 2]), "pads": .ints([1, 1, 1, 1])],
                 shape: [1, 2, 4, 4], values: [3.9764933586120605, 4.14578104019165, 5.049752235412598, 4.41588020324707, 4.175823211669922, 5.385164737701416, 5.460082530975342, 5.979130268096924, 4.227883815765381, 5.431390285491943, 5.031152725219727, 5.123475551605225, 4.513867378234863, 5.068283557891846, 3.699662208557129, 4.015594482421875, 4.479118347167969, 4.84122896194458, 4.84122896194458, 3.665719509124756, 5.068283557891846, 5.178078651428223, 5.5, 5.9947896003723145, 3.1523799896240234, 5.031152725219727, 4.873397350311279, 5.8736701011657715, 3.7332961559295654, 4.41588020324707, 4.054318904876709, 4.541475296020508]),
        OpGolden("lp p1", "LpPool", opset: 18, inputs: [.x([2, 1, 5, 5])], attributes: ["kernel_shape": .ints([2, 3]), "p": .int(1)],
                 shape: [2, 1, 4, 3], values: [8.25, 10.25, 8.25, 7.75, 10.75, 8.75, 7.25, 11.25, 9.25, 7.25, 10.5, 8.5, 8.25, 10.25, 8.25, 8.75, 10.75, 8.75, 9.25, 11.25, 9.25, 8.5, 10.0, 9.75]),
        OpGolden("lp p3 ceil", "LpPool", opset: 18, inputs: [.x([2, 1, 5, 5])], attributes: ["kernel_shape": .ints([2, 2]), "strides": .ints([2, 2]), "p": .int(3), "ceil_mode": .int(1)],
                 shape: [2, 1, 3, 3], values: [2.806014060974121, 3.6428961753845215, 0.817766547203064, 2.913011312484741, 4.258346080780029, 1.4346983432769775, 2.552234411239624, 2.0013012886047363, 1.5, 3.6428961753845215, 2.101529598236084, 2.372805118560791, 4.258346080780029, 1.8076066970825195, 3.0005786418914795, 2.0013012886047363, 1.5600628852844238, 2.75]),
        OpGolden("lp opset 11", "LpPool", opset: 11, inputs: [.x([2, 1, 5, 5])], attributes: ["kernel_shape": .ints([3, 3]), "pads": .ints([1, 1, 1, 1]), "p": .int(2)],
                 shape: [2, 1, 5, 5], values: [3.5178117752075195, 3.6314597129821777, 4.763139724731445, 4.2646803855896, 4.168333053588867, 4.315669059753418, 4.41588020324707, 6.108396053314209, 5.460082530975342, 5.379358768463135, 4.358899116516113, 4.394598960876465, 6.652067184448242, 5.93717098236084, 5.910795211791992, 4.486089706420898, 4.5, 6.5, 5.634713649749756, 5.623610973358154, 3.7249162197113037, 3.7332961559295654, 5.255949020385742, 4.486089706420898, 4.479118347167969, 4.168333053588867, 4.2646803855896, 4.763139724731445, 3.6314597129821777, 3.5178117752075195, 5.291502475738525, 5.460082530975342, 5.984354496002197, 4.562071800231934, 4.358899116516113, 5.667891979217529, 5.93717098236084, 6.304759979248047, 4.8218255043029785, 4.486089706420898, 5.1901350021362305, 5.634713649749756, 5.894913196563721, 5.178078651428223, 4.690415859222412, 4.038873672485352, 4.486089706420898, 4.650269031524658, 4.380353927612305, 3.9210968017578125]),
        OpGolden("global avg", "GlobalAveragePool", opset: 13, inputs: [.x([1, 2, 7, 8])], attributes: [:],
                 shape: [1, 2, 1, 1], values: [0.7098214030265808, 0.7991071343421936]),
        OpGolden("global max", "GlobalMaxPool", opset: 13, inputs: [.x([2, 3, 4, 1, 5])], attributes: [:],
                 shape: [2, 3, 1, 1, 1], values: [3.5, 3.25, 3.5, 3.5, 3.5, 3.5]),
        OpGolden("global lp", "GlobalLpPool", opset: 13, inputs: [.x([1, 2, 7, 8])], attributes: ["p": .int(3)],
                 shape: [1, 2, 1, 1], values: [7.6970906257629395, 7.883316516876221]),
        OpGolden("lp same upper kernel shorter than stride", "LpPool", opset: 18, inputs: [.x([1, 2, 5, 6])], attributes: ["kernel_shape": .ints([1, 1]), "strides": .ints([3, 3]), "p": .int(1), "auto_pad": .string("SAME_UPPER")],
                 shape: [1, 2, 2, 2], values: [1.5, 0.5, 1.25, 0.25, 3.0, 2.0, 2.75, 1.75]),
        OpGolden("max window longer than input", "MaxPool", opset: 19, inputs: [.x([1, 2, 5, 7])], attributes: ["kernel_shape": .ints([4, 4]), "strides": .ints([3, 3]), "dilations": .ints([2, 1])],
                 shape: [1, 2, 1, 2], values: [3.0, 3.5, 3.5, 3.5]),
        OpGolden("avg ceil window longer than input", "AveragePool", opset: 19, inputs: [.x([1, 1, 7, 6])], attributes: ["kernel_shape": .ints([3, 4]), "strides": .ints([2, 3]), "dilations": .ints([2, 2]), "ceil_mode": .int(1)],
                 shape: [1, 1, 2, 1], values: [0.3611111044883728, 0.8333333134651184]),
    ]
}

// Goldens: `/opt/mpqvenv/bin/python tools/goldens/op_goldens.py tools/goldens/pool_cases.py`
// prints these OpGolden literals from ONNX Runtime.
