import XCTest
import ONNX
@testable import Kernels

final class ActivationOpsTests: XCTestCase {
    typealias K = OpTestKit

    func testReluFamily() throws {
        let x = K.f([4], [-2, -0.5, 0, 3])
        K.assertClose(try K.run("Relu", [x])[0], [4], [0, 0, 0, 3])
        K.assertClose(try K.run("LeakyRelu", [x], ["alpha": .float(0.1)])[0], [4], [-0.2, -0.05, 0, 3])
        K.assertClose(try K.run("LeakyRelu", [x])[0], [4], [-0.02, -0.005, 0, 3])
        K.assertClose(try K.run("ThresholdedRelu", [x], ["alpha": .float(1)])[0], [4], [0, 0, 0, 3])
        XCTAssertTrue(try K.run("Relu", [K.f([1], [.nan])])[0].floats[0].isNaN)
    }

    /// Per-channel slopes `[C,1,1]` broadcast over `[N,C,H,W]`.
    func testPReluChannelSlope() throws {
        let x = K.f([1, 2, 1, 2], [-1, 2, -3, 4])
        let slope = K.f([2, 1, 1], [0.5, 0.25])
        K.assertClose(try K.run("PRelu", [x, slope])[0], [1, 2, 1, 2], [-0.5, 2, -0.75, 4])
    }

    /// Opset 6 bounds are attributes; opset 11 takes optional inputs, either one omitted.
    func testClipForms() throws {
        let x = K.f([5], [-3, -1, 0, 1, 3])
        K.assertClose(try K.run("Clip", [x], opset: 6, ["min": .float(-1.5), "max": .float(2)])[0], [5], [-1.5, -1, 0, 1, 2])
        K.assertClose(try K.run("Clip", [x], opset: 6, ["max": .float(0)])[0], [5], [-3, -1, 0, 0, 0])
        K.assertClose(try K.run("Clip", [x, K.f([], [0]), K.f([], [6])], opset: 13)[0], [5], [0, 0, 0, 1, 3])
        K.assertClose(try K.run("Clip", [x, nil, K.f([], [0.5])], opset: 13)[0], [5], [-3, -1, 0, 0.5, 0.5])
        K.assertClose(try K.run("Clip", [x, K.f([], [-2])], opset: 13)[0], [5], [-2, -1, 0, 1, 3])
        K.assertClose(try K.run("Clip", [x], opset: 13)[0], [5], [-3, -1, 0, 1, 3])
        // min > max: everything becomes max.
        K.assertClose(try K.run("Clip", [x, K.f([], [2]), K.f([], [1])], opset: 13)[0], [5], [1, 1, 1, 1, 1])
        K.assertInts(try K.run("Clip", [K.i([3], [-5, 5, 50]), K.i([], [0]), K.i([], [10])], opset: 13)[0], [3], [0, 5, 10])
    }

    /// Values from ONNX Runtime.
    func testSmoothActivations() throws {
        K.assertClose(try K.run("Sigmoid", [K.f([3], [-100, 0, 2])])[0], [3], [0, 0.5, 0.880797])
        K.assertClose(try K.run("Tanh", [K.f([2], [0, 1])])[0], [2], [0, 0.7615942])
        K.assertClose(try K.run("Selu", [K.f([2], [-1, 2])])[0], [2], [-1.1113307476, 2.1014020443])
        K.assertClose(try K.run("Softplus", [K.f([6], [-20, -1, 0, 1, 20, 100])])[0], [6],
                      [2.06115369216775e-09, 0.3132616878, 0.6931471825, 1.3132617474, 20, 100])
        K.assertClose(try K.run("HardSwish", [K.f([5], [-4, -1, 0, 1, 4])])[0], [5], [0, -0.3333333, 0, 0.6666667, 4])
        K.assertClose(try K.run("HardSigmoid", [K.f([3], [-3, 0, 3])])[0], [3], [0, 0.5, 1])
        K.assertClose(try K.run("Elu", [K.f([2], [-1, 2])], ["alpha": .float(2)])[0], [2], [2 * (0.36787944 - 1), 2])
        K.assertClose(try K.run("Softsign", [K.f([2], [-1, 3])])[0], [2], [-0.5, 0.75])
    }

    func testGelu() throws {
        let x = K.f([5], [-2, -0.5, 0, 1, 3])
        K.assertClose(try K.run("Gelu", [x], opset: 20)[0], [5], [-0.0455002785, -0.1542687714, 0, 0.8413447142, 2.9959502220])
        K.assertClose(try K.run("Gelu", [x], opset: 20, ["approximate": .string("tanh")])[0], [5],
                      [-0.0454023480, -0.1542859972, 0, 0.8411920071, 2.9963626862])
        XCTAssertThrowsError(try K.run("Gelu", [x], opset: 18))   // not an ai.onnx op before 20
    }

    /// Opset 11 coerces `[2,2,2]` at axis 1 to `[2,4]` rows; opset 13 normalises axis 1 alone.
    func testSoftmaxOpsetAxisSemantics() throws {
        let x = K.f([2, 2, 2], (0..<8).map { Float($0) * 0.5 })
        let row: [Float] = [0.1015363261, 0.1674050987, 0.2760043442, 0.4550542235]
        K.assertClose(try K.run("Softmax", [x], opset: 11, ["axis": .int(1)])[0], [2, 2, 2], row + row)
        let pair: [Float] = [0.2689414322, 0.2689414322, 0.7310585976, 0.7310585976]
        K.assertClose(try K.run("Softmax", [x], opset: 13, ["axis": .int(1)])[0], [2, 2, 2], pair + pair)
        // Defaults: axis 1 (coerced) before 13, -1 from 13.
        K.assertClose(try K.run("Softmax", [x], opset: 11)[0], [2, 2, 2], row + row)
        let last: [Float] = [0.3775406688, 0.6224593312]
        K.assertClose(try K.run("Softmax", [x], opset: 13)[0], [2, 2, 2], Array([last, last, last, last].joined()))
        let log: [Float] = [-2.2873387337, -1.7873387337, -1.2873387337, -0.7873386741]
        K.assertClose(try K.run("LogSoftmax", [x], opset: 11)[0], [2, 2, 2], log + log)
    }

    func testSoftmaxIsStableForLargeInputs() throws {
        let y = try K.run("Softmax", [K.f([3], [1000, 1000, -1000])], opset: 13)[0]
        K.assertClose(y, [3], [0.5, 0.5, 0])
        let l = try K.run("LogSoftmax", [K.f([2], [1000, 0])], opset: 13)[0]
        K.assertClose(l, [2], [0, -1000])
        K.assertClose(try K.run("Hardmax", [K.f([2, 3], [1, 3, 3, 0, -1, -2])], opset: 13)[0], [2, 3], [0, 1, 0, 1, 0, 0])
    }

    func testIdentityAndDropout() throws {
        let x = K.f([2], [1, 2])
        XCTAssertEqual(try K.run("Identity", [x])[0], x)
        let outs = try K.run("Dropout", [x, K.f([], [0.5])], opset: 13, outputs: 2)
        XCTAssertEqual(outs[0], x)
        K.assertInts(outs[1], [2], [1, 1], .bool)
    }
}
