import Foundation
import XCTest
import Kernels
import ONNX
@testable import Search

/// INT8 ConvTranspose against FP32 on the single-op fixtures (stride 2 with output
/// padding; two groups with asymmetric pads), on every kernel path.
final class Int8ConvTransposeTests: XCTestCase {
    func testInt8ConvTransposeTracksFP32WithinQuantizationError() throws {
        for name in ["convtranspose_stride2_output_padding", "convtranspose_groups2_asym"] {
            let graph = try ModelLoader.load(path: "\(Int8ParityTests.fixtures)/ops/\(name).onnx")
            let session = try Session(graph: graph)
            let data = try Dataset(arrays: try Numpy.readNPZ(path: "\(Int8ParityTests.fixtures)/ops/\(name).npz"), path: name, graph: graph)
            let table = try Calibrator(session: session).calibrate(dataset: data, options: CalibrationOptions(method: .minmax),
                                                                   modelDigest: graph.digest)
            let runtime = try MixedPrecisionRuntime(session: session, calibration: table)
            XCTAssertEqual(runtime.layerNames.count, 1, "\(name): the ConvTranspose is a quantizable layer")
            let feeds = data.batch(0..<data.count)
            let out = graph.outputs[0].name
            let fp32 = try session.run(feeds)[out]!
            try runtime.apply(runtime.allInt8)
            var reference: [Float]?
            for path in KernelPath.available {
                runtime.path = path
                let int8 = try session.run(feeds)[out]!
                XCTAssertEqual(int8.shape, fp32.shape)
                if let reference { XCTAssertEqual(int8.floats, reference, "\(name): path \(path) differs from the reference path") }
                reference = reference ?? int8.floats
                let scale = fp32.floats.map(abs).max()!
                let err = zip(int8.floats, fp32.floats).map { abs($0 - $1) }.max()! / scale
                print("\(name) [\(path)]: max |int8 - fp32| / max |fp32| = \(err)")
                XCTAssertLessThan(err, 0.03, "\(name): INT8 ConvTranspose strays from FP32 beyond quantization error")
                XCTAssertGreaterThan(err, 0, "\(name): INT8 output equal to FP32 means the INT8 path did not run")
            }
        }
    }
}
