import CKernels
import Foundation
import ONNX
import XCTest
@testable import Kernels

/// The INT8 MatMul of two activations with a requantized output (what the `ort` scheme runs
/// for attention's probabilities·V when a Q follows) against ONNX Runtime's QLinearMatMul,
/// byte for byte. Fixtures: tools/goldens/qlinear_matmul_goldens.py (one QLinearMatMul node
/// on uint8 codes, ORT on one thread).
final class ActivationMatMulGoldenTests: XCTestCase {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures/qlinear_matmul").path

    func testRequantizedOutputIsOnnxRuntimesQLinearMatMulBytes() throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: Self.folder).filter { $0.hasSuffix(".npz") }.sorted()
        XCTAssertGreaterThanOrEqual(names.count, 6, "fixtures missing: run tools/goldens/qlinear_matmul_goldens.py")
        var report: [String] = []
        for name in names {
            let arrays = try Numpy.readNPZ(path: "\(Self.folder)/\(name)")
            func get(_ key: String) throws -> Tensor { try XCTUnwrap(arrays[key], "\(name): \(key)") }
            let scales = try get("scales").floats, zps = try get("zero_points").ints.map { UInt8($0) }
            let qa = ActivationQuant(scale: scales[0], zeroPoint: zps[0]), qb = ActivationQuant(scale: scales[1], zeroPoint: zps[1])
            let qy = ActivationQuant(scale: scales[2], zeroPoint: zps[2])
            let a = try get("a"), b = try get("b"), want = try get("y")
            let codesA = Tensor(shape: a.shape, codes: QuantizedCodes(values: a.ints.map { UInt8($0) }, scale: qa.scale, zeroPoint: qa.zeroPoint))
            let codesB = Tensor(shape: b.shape, codes: QuantizedCodes(values: b.ints.map { UInt8($0) }, scale: qb.scale, zeroPoint: qb.zeroPoint))
            let wantBytes = want.ints.map { UInt8($0) }
            for path in KernelPath.available {
                // From codes (the chains) and from the same values as floats (quantized back
                // onto their grids: chains off, or an operand that arrives as floats).
                for (x, y, form) in [(codesA, codesB, "codes"), (codesA.materialized(), codesB.materialized(), "floats")] {
                    let got = try QuantizedActivationMatMul.matmul(a: x, b: y, aQuant: qa, bQuant: qb, path: path, requantize: qy)
                    XCTAssertEqual(got.shape, want.shape, "\(name) \(form) on \(path)")
                    let bytes = try XCTUnwrap(got.codes(on: qy), "\(name): the output must be codes on the requested grid")
                    let differing = zip(bytes, wantBytes).filter { $0 != $1 }.count
                    XCTAssertEqual(differing, 0, "\(name) \(form) on \(path): \(differing) of \(want.count) bytes differ from ORT")
                }
            }
            let saturated = wantBytes.filter { $0 == 0 || $0 == 255 }.count
            report.append("\(name): \(want.count) bytes equal ORT's (\(saturated) saturated)")
        }
        print("QLinearMatMul goldens, paths \(KernelPath.available.map(\.rawValue).joined(separator: ", ")):\n" + report.joined(separator: "\n"))
    }

    /// The layer's two requantized forms agree: `run(_:path:output:)` returns the floats of
    /// the codes `runWritingCodes` returns, and both differ from the unrequantized product
    /// (the requantization really ran).
    func testLayerRequantizedFormsAgree() throws {
        let arrays = try Numpy.readNPZ(path: "\(Self.folder)/heads_k32.npz")
        let scales = try XCTUnwrap(arrays["scales"]).floats, zps = try XCTUnwrap(arrays["zero_points"]).ints.map { UInt8($0) }
        let qa = ActivationQuant(scale: scales[0], zeroPoint: zps[0]), qb = ActivationQuant(scale: scales[1], zeroPoint: zps[1])
        let qy = ActivationQuant(scale: scales[2], zeroPoint: zps[2])
        let a = try XCTUnwrap(arrays["a"]), b = try XCTUnwrap(arrays["b"])
        let ta = Tensor(shape: a.shape, codes: QuantizedCodes(values: a.ints.map { UInt8($0) }, scale: qa.scale, zeroPoint: qa.zeroPoint))
        let tb = Tensor(shape: b.shape, codes: QuantizedCodes(values: b.ints.map { UInt8($0) }, scale: qb.scale, zeroPoint: qb.zeroPoint))
        let node = Node(name: "pv", opType: "MatMul", inputs: ["a", "b"], outputs: ["y"])
        let layer = QuantizedActivationMatMul(node: node, inputQuant: qa, rightQuant: qb)
        XCTAssertTrue(layer.readsCodes)
        let codes = try layer.runWritingCodes([ta, tb], path: .auto, output: qy)[0]
        XCTAssertTrue(codes.isCodesOnly)
        let floats = try layer.run([ta, tb], path: .auto, output: qy)[0]
        XCTAssertFalse(floats.isCodesOnly)
        XCTAssertEqual(floats.floats.map(\.bitPattern), codes.materialized().floats.map(\.bitPattern))
        let plain = try layer.run([ta, tb], path: .auto)[0]
        XCTAssertNotEqual(plain.floats, floats.floats, "the requantized output must be on the output grid")
    }
}
