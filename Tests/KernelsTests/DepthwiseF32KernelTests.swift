import CKernels
import XCTest
import ONNX
@testable import Kernels

/// `mpq_depthwise3x3_f32`: every path against the scalar reference, and the reference
/// against the Swift tap-by-tap loop (`ConvOps.depthwisePlane`), bit for bit, over odd
/// plane sizes (vector tails, planes narrower than a vector), strides 1-3, pads 0-2.
final class DepthwiseF32KernelTests: XCTestCase {
    func testEveryPathEqualsReferenceAndTapLoopBitForBit() throws {
        var rng = TestRNG(seed: 17)
        let paths = [MPQ_PATH_AUTO] + (mpq_kernel_path_available(MPQ_PATH_AVX2) != 0 ? [MPQ_PATH_AVX2] : [])
        var planes = 0
        for (h, w) in [(1, 1), (2, 3), (3, 8), (5, 9), (7, 7), (9, 17), (14, 14), (11, 26), (16, 33), (6, 40), (28, 28)] {
            for stride in [(1, 1), (2, 2), (1, 2), (2, 1), (3, 3)] {
                for pad in [(0, 0, 0, 0), (1, 1, 1, 1), (0, 1, 1, 0), (2, 1, 0, 2)] {
                    var geom = try WindowGeometry(input: [h, w], kernel: [3, 3], strides: [stride.0, stride.1],
                                                  dilations: nil, pads: [pad.0, pad.1, pad.2, pad.3], op: "test")
                    guard (try? geom.resolveConv(autoPad: .notSet, op: "test")) != nil,
                          geom.output[1] > 0, geom.output[2] > 0 else { continue }
                    let x: [Float] = (0..<h * w).map { i in i % 13 == 5 ? -0.0 : rng.float(-3...3) }
                    let taps: [Float] = (0..<9).map { _ in rng.float(-1...1) }
                    let (oh, ow) = (geom.output[1], geom.output[2])
                    func run(_ path: mpq_kernel_path) -> [Float] {
                        var y = [Float](repeating: .nan, count: oh * ow)
                        mpq_depthwise3x3_f32(path, x, Int32(h), Int32(w), taps, Int32(stride.0), Int32(stride.1),
                                             Int32(pad.0), Int32(pad.1), Int32(oh), Int32(ow), &y)
                        return y
                    }
                    let ref = run(MPQ_PATH_REFERENCE)
                    var tapLoop = [Float](repeating: 0, count: oh * ow)
                    x.withUnsafeBufferPointer { px in taps.withUnsafeBufferPointer { pw in tapLoop.withUnsafeMutableBufferPointer { py in
                        ConvOps.depthwisePlane(src: px.baseAddress!, weights: pw.baseAddress!, dst: py.baseAddress!, geom)
                    }}}
                    let what = "\(h)x\(w) stride \(stride) pads \(pad)"
                    XCTAssertEqual(ref.map(\.bitPattern), tapLoop.map(\.bitPattern), "reference vs tap loop, \(what)")
                    for p in paths { XCTAssertEqual(run(p).map(\.bitPattern), ref.map(\.bitPattern), "path \(p.rawValue), \(what)") }
                    planes += 1
                }
            }
        }
        XCTAssertGreaterThan(planes, 150)
    }
}
