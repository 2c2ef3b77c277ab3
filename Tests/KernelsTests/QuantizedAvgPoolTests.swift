import CKernels
import XCTest
@testable import Kernels
import ONNX

/// ONNX Runtime's quantized average pooling on uint8 codes (`mpq_qavgpool_u8`,
/// `mpq_qglobal_avgpool_u8`, docs/pooling.md "Average pooling on codes") against scalar
/// Swift transcriptions of ORT's arithmetic (qlinear_pool.cc's QLinearPool*Task and MLAS's
/// x86 MlasQLinearGlobalAveragePool), byte for byte, on every kernel path this CPU has and
/// with 1-4 threads. ORT's own bytes: `QLinearGoldenTests`.
final class QuantizedAvgPoolTests: XCTestCase {
    func randomCodes(_ n: Int, _ rng: inout TestRNG) -> [UInt8] { (0..<n).map { _ in UInt8(rng.next(256)) } }

    /// MLAS (x86): int32 sum - zp * N, times the float scale s_x / (s_y * N), clamped to
    /// [-z_y, 255 - z_y], rounded half to even, + z_y.
    static func globalReference(_ x: [UInt8], planes: Int, image: Int, _ qi: ActivationQuant, _ q: ActivationQuant) -> [UInt8] {
        let scale = qi.scale / (q.scale * Float(image))
        return (0..<planes).map { c in
            var sum = 0
            for i in 0..<image { sum += Int(x[c * image + i]) }
            var v = Float(sum - Int(qi.zeroPoint) * image) * scale
            v = max(v, Float(-Int(q.zeroPoint)))
            v = min(v, Float(255 - Int(q.zeroPoint)))
            return UInt8(Int(v.rounded(.toNearestOrEven)) + Int(q.zeroPoint))
        }
    }

    /// qlinear_pool.cc: taps dequantized as s_x * (q - z_x), summed in row-major order from 0,
    /// divided by the Float count (kernel size with count_include_pad), then
    /// nearbyint(y / s_y + z_y) clamped to [0, 255]. Windows clip to the input:
    /// start = max(o * stride - pad, 0), end = min(o * stride - pad + kernel, size).
    static func windowReference(_ x: [UInt8], shape: [Int], g: WindowGeometry, includePad: Bool,
                                _ qi: ActivationQuant, _ q: ActivationQuant) -> [UInt8] {
        let planes = shape[0] * shape[1], inImage = g.input.reduce(1, *)
        var y: [UInt8] = []
        for c in 0..<planes {
            for o0 in 0..<g.output[0] { for o1 in 0..<g.output[1] { for o2 in 0..<g.output[2] {
                let o = [o0, o1, o2]
                let lo = (0..<3).map { max(o[$0] * g.stride[$0] - g.padHead[$0], 0) }
                let hi = (0..<3).map { min(o[$0] * g.stride[$0] - g.padHead[$0] + g.kernel[$0], g.input[$0]) }
                var acc: Float = 0
                var taps = 1
                for a in 0..<3 { taps *= max(hi[a] - lo[a], 0) }
                if taps > 0 {
                    for i0 in lo[0]..<hi[0] { for i1 in lo[1]..<hi[1] { for i2 in lo[2]..<hi[2] {
                        let code = x[c * inImage + (i0 * g.input[1] + i1) * g.input[2] + i2]
                        acc += qi.scale * Float(Int(code) - Int(qi.zeroPoint))
                    } } }
                }
                acc /= includePad ? Float(g.kernel.reduce(1, *)) : Float(taps)
                let r = (acc / q.scale + Float(q.zeroPoint)).rounded(.toNearestOrEven)
                y.append(UInt8(min(max(r, 0), 255)))
            } } }
        }
        return y
    }

    func testGlobalAveragePoolEveryPathMatchesMLAS() {
        var rng = TestRNG(seed: 14)
        var checked = 0
        for image in [1, 7, 31, 32, 33, 49, 64, 65, 196, 3136] {
            for planes in [1, 3, 70, 300] {
                let x = randomCodes(planes * image, &rng)
                let qi = ActivationQuant(scale: Float(rng.next(1000) + 1) / 20000, zeroPoint: UInt8(rng.next(256)))
                let q = ActivationQuant(scale: Float(rng.next(1000) + 1) / 40000, zeroPoint: UInt8(rng.next(256)))
                let want = Self.globalReference(x, planes: planes, image: image, qi, q)
                for path in KernelPath.available {
                    var y = [UInt8](repeating: 0, count: planes)
                    mpq_qglobal_avgpool_u8(path.c, x, planes, image, qi.scale, qi.zeroPoint, q.scale, q.zeroPoint, &y)
                    XCTAssertEqual(y, want, "image \(image) planes \(planes) path \(path)")
                    checked += 1
                }
            }
        }
        // A plane of all 255 over a long image: the int64 sum, and saturation at both ends.
        let x = [UInt8](repeating: 255, count: 3 * 50_000)
        for path in KernelPath.available {
            var y = [UInt8](repeating: 0, count: 3)
            mpq_qglobal_avgpool_u8(path.c, x, 3, 50_000, 0.1, 0, 0.01, 7, &y)
            XCTAssertEqual(y, [255, 255, 255])
            mpq_qglobal_avgpool_u8(path.c, x, 3, 50_000, 0.1, 255, 0.01, 7, &y)
            XCTAssertEqual(y, [7, 7, 7])
        }
        print("QLinearGlobalAveragePool: \(checked) shape x path cases byte-equal on paths \(KernelPath.available.map(\.rawValue))")
    }

    struct Case { var x: [Int]; var k: [Int]; var s: [Int]; var pads: [Int]; var ceil = false; var autoPad = "NOTSET" }

    static let cases: [Case] = [
        Case(x: [2, 3, 17, 15], k: [3, 3], s: [2, 2], pads: [1, 1, 1, 1]),
        Case(x: [1, 2, 9, 113], k: [3, 3], s: [2, 2], pads: [1, 1, 1, 1], ceil: true),
        Case(x: [1, 2, 6, 66], k: [2, 2], s: [2, 2], pads: [0, 0, 0, 0]),
        Case(x: [1, 3, 7, 70], k: [3, 5], s: [1, 1], pads: [1, 2, 1, 2]),
        Case(x: [1, 1, 5, 129], k: [5, 5], s: [1, 1], pads: [2, 2, 2, 2]),
        Case(x: [1, 2, 9, 33], k: [2, 5], s: [3, 2], pads: [1, 2, 0, 1]),
        Case(x: [1, 2, 31], k: [4], s: [3], pads: [2, 1], ceil: true),
        Case(x: [1, 2, 33], k: [3], s: [1], pads: [1, 1]),
        Case(x: [1, 2, 4, 5, 6], k: [2, 3, 2], s: [1, 2, 2], pads: [1, 0, 1, 0, 1, 1]),
        Case(x: [1, 2, 9, 10], k: [3, 3], s: [2, 2], pads: [0, 0, 0, 0], autoPad: "SAME_UPPER"),
        Case(x: [1, 2, 9, 10], k: [3, 2], s: [2, 3], pads: [0, 0, 0, 0], autoPad: "SAME_LOWER"),
        Case(x: [1, 1, 3, 3], k: [2, 2], s: [2, 2], pads: [0, 0, 1, 1], ceil: true),
    ]

    func testAveragePoolMatchesOrtWindowArithmetic() throws {
        var rng = TestRNG(seed: 7)
        var checked = 0
        for c in Self.cases {
            for includePad in [false, true] {
                let x = randomCodes(c.x.reduce(1, *), &rng)
                let qi = ActivationQuant(scale: Float(rng.next(1000) + 1) / 20000, zeroPoint: UInt8(rng.next(256)))
                let q = ActivationQuant(scale: Float(rng.next(1000) + 1) / 25000, zeroPoint: UInt8(rng.next(256)))
                var attrs: [String: Attribute] = ["kernel_shape": .ints(c.k), "strides": .ints(c.s), "auto_pad": .string(c.autoPad),
                                                  "ceil_mode": .int(c.ceil ? 1 : 0), "count_include_pad": .int(includePad ? 1 : 0)]
                if c.autoPad == "NOTSET" { attrs["pads"] = .ints(c.pads) }
                let node = Node(name: "pool", opType: "AveragePool", inputs: ["x"], outputs: ["y"], attributes: attrs)
                let probe = Tensor(shape: c.x, codes: QuantizedCodes(values: x, scale: qi.scale, zeroPoint: qi.zeroPoint))
                let (_, g) = try PoolOps.poolGeometry(probe, "AveragePool", c.autoPad, c.ceil, nil, c.k,
                                                      c.autoPad == "NOTSET" ? c.pads : nil, c.s)
                let want = Self.windowReference(x, shape: c.x, g: g, includePad: includePad, qi, q)
                for path in KernelPath.available {
                    let y = try XCTUnwrap(try RegionKernels.ortAveragePool(node, c.x, x, qi, q, path: path))
                    XCTAssertEqual(y.shape, Array(c.x.prefix(2)) + g.outputShape)
                    XCTAssertEqual(y.codes?.values, want, "\(c) include pad \(includePad) path \(path)")
                    checked += 1
                }
                // Split over 1-4 tasks: planes are independent, so the same bytes.
                var p = mpq_qavgpool()
                p.planes = c.x[0] * c.x[1]
                p.in = (Int32(g.input[0]), Int32(g.input[1]), Int32(g.input[2]))
                p.out = (Int32(g.output[0]), Int32(g.output[1]), Int32(g.output[2]))
                p.kernel = (Int32(g.kernel[0]), Int32(g.kernel[1]), Int32(g.kernel[2]))
                p.stride = (Int32(g.stride[0]), Int32(g.stride[1]), Int32(g.stride[2]))
                p.pad = (Int32(g.padHead[0]), Int32(g.padHead[1]), Int32(g.padHead[2]))
                p.count_include_pad = includePad ? 1 : 0
                p.x_scale = qi.scale; p.x_zp = qi.zeroPoint; p.y_scale = q.scale; p.y_zp = q.zeroPoint
                for threads in 1...4 {
                    var y = [UInt8](repeating: 0, count: want.count)
                    mpq_qavgpool_u8(&p, x, &y, Int32(threads))
                    XCTAssertEqual(y, want, "\(c) threads \(threads)")
                }
            }
        }
        print("QLinearAveragePool: \(checked) case x path runs byte-equal to the scalar ORT transcription")
    }

    /// A kernel over the whole unpadded input is ORT's global kernel (integer sums), not the
    /// window form: `ortAveragePool` must take that branch.
    func testWholeInputKernelRunsTheGlobalArithmetic() throws {
        var rng = TestRNG(seed: 21)
        let shape = [2, 5, 7, 9]
        let x = randomCodes(shape.reduce(1, *), &rng)
        let qi = ActivationQuant(scale: 0.031, zeroPoint: 17), q = ActivationQuant(scale: 0.027, zeroPoint: 9)
        let node = Node(name: "pool", opType: "AveragePool", inputs: ["x"], outputs: ["y"], attributes: ["kernel_shape": .ints([7, 9])])
        let y = try XCTUnwrap(try RegionKernels.ortAveragePool(node, shape, x, qi, q, path: .auto))
        XCTAssertEqual(y.shape, [2, 5, 1, 1])
        XCTAssertEqual(y.codes?.values, Self.globalReference(x, planes: 10, image: 63, qi, q))
        // Dilated windows are not ORT's kernel: no codes form.
        let dilated = Node(name: "pool", opType: "AveragePool", inputs: ["x"], outputs: ["y"],
                           attributes: ["kernel_shape": .ints([2, 2]), "dilations": .ints([2, 2])])
        XCTAssertNil(try RegionKernels.ortAveragePool(dilated, shape, x, qi, q, path: .auto))
    }
}
