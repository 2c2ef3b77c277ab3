import CKernels
import XCTest
import ONNX
@testable import Kernels

/// Chains with blocked Convs (`Session.runBlockedConv`, docs/fp32-blocked-layout.md): the
/// fixtures' outputs with the blocked layout on are the bytes of `runsBlockedConvs` off, image
/// by image (image chains forced on) and over the whole batch (forced off, and batch 1), and the
/// blocked Convs do run where the CPU has the AVX-512 or AVX2 path.
final class BlockedChainTests: XCTestCase {
    /// Whether blocked Convs run here at all: the AVX-512 or AVX2 path resolved (as
    /// `Session.runsBlocked` asks) and the Convs on mpq's FP32 GEMM (not `MPQ_FP32_GEMM=openblas`).
    static var blockedRuns: Bool { Session.blockedPath && FP32GemmChoice.environment != .openblas }


    func checkBlockedEqualsNCHW(_ model: String, calib: String, batches: [Int], minimumBlocked: Int, moves: Int = 0,
                                file: StaticString = #filePath, line: UInt = #line) throws {
        let graph = GraphPasses.optimize(try ModelLoader.load(path: FixturePaths.path(model)))
        let session = try Session(graph: graph)
        XCTAssertGreaterThanOrEqual(session.blockedConvs.count, minimumBlocked, "\(model): Convs chosen to run blocked", file: file, line: line)
        XCTAssertEqual(session.blockedMoveBindings.count, moves, "\(model): Resize / Concat nodes chosen to run blocked", file: file, line: line)
        let data = try Dataset(path: FixturePaths.path(calib), graph: graph)
        for n in batches {
            for imageChains: Bool? in [true, false] {
                session.fp32ImageChains = imageChains
                let feeds = data.batch(0..<n)
                session.runsBlockedConvs = false
                let plain = try session.run(feeds)
                session.runsBlockedConvs = true
                let before = session.blockedConvsRun, movesBefore = session.blockedMovesRun
                let blocked = try session.run(feeds)
                for o in graph.outputs {
                    XCTAssertEqual(blocked[o.name]?.floats.map(\.bitPattern), plain[o.name]?.floats.map(\.bitPattern),
                                   "\(model) batch \(n) image chains \(String(describing: imageChains)) output \(o.name)", file: file, line: line)
                }
                if Self.blockedRuns {
                    XCTAssertGreaterThanOrEqual(session.blockedConvsRun - before, minimumBlocked * (imageChains == true && n > 1 ? n : 1),
                                                "\(model) batch \(n): blocked Convs ran", file: file, line: line)
                    XCTAssertEqual(session.blockedMovesRun - movesBefore, moves * (imageChains == true && n > 1 ? n : 1),
                                   "\(model) batch \(n): blocked Resize / Concat ran", file: file, line: line)
                }
            }
        }
        session.fp32ImageChains = Session.fp32ImageChainsDefault
    }

    /// ResNet-digits: 16 of its 3x3 Convs and its 1x1 stride-2 downsamples run blocked, with
    /// the residual Adds (+ Relu) fused on blocked shortcuts.
    func testResnetDigitsBlockedGivesNCHWBytes() throws {
        try checkBlockedEqualsNCHW("resnet/resnet_digits.onnx", calib: "resnet/resnet_digits_calib.npz", batches: [1, 3], minimumBlocked: 16)
    }

    /// The detector: its eight 3x3 Convs with fused SiLUs, and (s29) its neck's nearest Resize
    /// and channel Concat in the same chain, run blocked between them (`runBlockedMove`).
    func testDetectorBlockedGivesNCHWBytes() throws {
        try checkBlockedEqualsNCHW("detection/shapes_det.onnx", calib: "detection/shapes_det_calib.npz", batches: [1, 2, 5], minimumBlocked: 8,
                                   moves: Session.blockedMovesDefault ? 2 : 0)
    }

    /// With the blocked Convs on (the default), resnet_digits still matches ONNX Runtime's
    /// recorded outputs within FixtureParityTests' bound (that test reads the top-level
    /// fixtures; this one lives under resnet/).
    func testResnetDigitsMatchesOnnxRuntimeBlocked() throws {
        let f = try JSONDecoder().decode(FixtureParityTests.Fixture.self,
                                         from: Data(contentsOf: URL(fileURLWithPath: FixturePaths.path("resnet/resnet_digits.json"))))
        let graph = GraphPasses.optimize(try ModelLoader.load(path: FixturePaths.path("resnet/" + f.model)))
        let session = try Session(graph: graph)
        session.runsBlockedConvs = true
        let data = try Dataset(path: FixturePaths.path("resnet/" + f.data[f.expected_split]!), graph: graph)
        let expected = try Numpy.readNPZ(path: FixturePaths.path("resnet/" + f.expected))
        var outs: [String: [Float]] = [:]
        let before = session.blockedConvsRun
        for r in data.batches(size: 50) {
            let y = try session.run(data.batch(r))
            for o in f.outputs { outs[o.name, default: []] += y[o.name]!.floats }
        }
        for o in f.outputs {
            let want = expected[o.name]!
            let err = FixtureParityTests.relativeError(Tensor(shape: want.shape, floats: outs[o.name]!), want)
            XCTAssertLessThanOrEqual(err, FixtureParityTests.relativeToMax, "resnet_digits output \(o.name) blocked")
        }
        if Self.blockedRuns { XCTAssertGreaterThan(session.blockedConvsRun, before) }
    }

    /// Which Convs are chosen: those next to another blocked-capable Conv, depthwise and 1x1
    /// stride-1 ones included (s17). MobileNet-shaped graph, not optimized (its first Clip a
    /// node of its own): the stem hands its output to the 1x1 expand, the depthwise Conv after
    /// the Clip hands its output to the project Conv, whose fused residual Add feeds the second
    /// expand and its stride-2 depthwise Conv: all six.
    func testSelection() throws {
        let mobile = try Session(graph: ImageChainTests.mobileGraph())
        XCTAssertEqual(Set(mobile.blockedConvs.map { mobile.plan[$0].name }), ["stem", "expand", "dw", "project", "expand2", "dw2"])
    }
}
