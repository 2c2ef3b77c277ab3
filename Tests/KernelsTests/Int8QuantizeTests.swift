import CKernels
import ONNX
import XCTest
@testable import Kernels

final class Int8QuantizeTests: XCTestCase {
    private func quantize(_ path: mpq_kernel_path, _ x: [Float], scale: Float, zp: UInt8) -> [UInt8] {
        var y = [UInt8](repeating: 0xEE, count: x.count + 1)  // one guard byte
        x.withUnsafeBufferPointer { xp in
            y.withUnsafeMutableBufferPointer { mpq_quantize_u8(path, xp.baseAddress, x.count, scale, zp, $0.baseAddress) }
        }
        XCTAssertEqual(y[x.count], 0xEE, "wrote past count")
        return Array(y[0..<x.count])
    }

    /// ONNX QuantizeLinear spelled out in Swift.
    private func onnx(_ x: Float, scale: Float, zp: UInt8) -> UInt8 {
        if x.isNaN { return 0 }
        let r = (x / scale).rounded(.toNearestOrEven) + Float(zp)
        return UInt8(min(max(r, 0), 255))
    }

    func testRoundsHalfToEvenAndSaturates() {
        let x: [Float] = [0.5, 1.5, 2.5, 3.5, -0.5, -1.5, -2.5, 0.49999997, 126.5, 127.5,
                          1e9, -1e9, .infinity, -.infinity, .nan, 300, -300, 0, -0.0, 254.5, 255.5]
        for path in int8AvailablePaths {
            XCTAssertEqual(quantize(path, x, scale: 1, zp: 0),
                           [0, 2, 2, 4, 0, 0, 0, 0, 126, 128, 255, 0, 255, 0, 0, 255, 0, 0, 0, 254, 255],
                           int8PathName(path))
            // With zp 128: -0.5 -> 128, -1.5 -> 126, -2.5 -> 126.
            XCTAssertEqual(quantize(path, x, scale: 1, zp: 128),
                           [128, 130, 130, 132, 128, 126, 126, 128, 254, 255, 255, 0, 255, 0, 0, 255, 0, 128, 128, 255, 255],
                           int8PathName(path))
            XCTAssertEqual(quantize(path, [0.25, 0.75, 1.25, -0.75], scale: 0.5, zp: 10), [10, 12, 12, 8], int8PathName(path))
        }
    }

    func testEveryPathMatchesReferenceAndOnnxFormula() {
        var rng = Int8TestRNG(seed: 99)
        for count in int8AwkwardSizes + [0, 100, 1000] {
            let scale = rng.float(0.01...0.5)
            let zp = UInt8(rng.int(0...255))
            // Values on exact half steps too, where rounding mode matters.
            let x: [Float] = (0..<count).map { i in
                i % 3 == 0 ? (Float(rng.int(-600...600)) + 0.5) * scale : rng.float(-80...80)
            }
            let expected = x.map { onnx($0, scale: scale, zp: zp) }
            for path in int8AvailablePaths {
                XCTAssertEqual(quantize(path, x, scale: scale, zp: zp), expected, "\(int8PathName(path)) count=\(count)")
            }
        }
        print("int8 quantize paths covered: \(int8AvailablePaths.map(int8PathName).joined(separator: ", "))")
    }

    /// The ort scheme's in-place Q -> DQ equals the quantize kernel followed by (q - z) * s,
    /// bit for bit, ties, saturation and NaN included.
    func testRequantizeEqualsQuantizeThenDequantize() {
        var x: [Float] = [0, 0.5, 1.5, 2.5, -0.5, -1.5, 1e9, -1e9, .nan, .infinity, -.infinity, 0.049999, 0.05, 0.15, 12.75]
        var rng = Int8TestRNG(seed: 99)
        for _ in 0..<500 { x.append(rng.float(-20...20)) }
        for (scale, zp) in [(Float(0.1), UInt8(0)), (0.05, 128), (0.37, 255), (1, 3)] {
            let q = quantize(MPQ_PATH_REFERENCE, x, scale: scale, zp: zp)
            let want = q.map { (Float($0) - Float(zp)) * scale }
            var t = Tensor(shape: [x.count], floats: x)
            requantize(&t, ActivationQuant(scale: scale, zeroPoint: zp), path: .reference)
            let bad = x.indices.filter { t.floats[$0].bitPattern != want[$0].bitPattern }
            XCTAssertTrue(bad.isEmpty, "scale \(scale) zp \(zp): \(bad.count) differ, e.g. " +
                          bad.prefix(4).map { "x \(x[$0]): \(t.floats[$0]) vs \(want[$0])" }.joined(separator: "; "))
        }
    }
}
