import CKernels
import XCTest
@testable import Kernels
import ONNX
@testable import Search

/// `QuantizedLayer.engine`, which `mpq profile` shows: after a run, every INT8 Conv and Gemm
/// names the kernel its C entry point ran (`mpq_last_engine`). The expectations are written
/// from the layers' geometry (docs/int8-amx.md, "Engine per Conv"), not from the runtime's own
/// choice function, on every kernel path the CPU has, layer by layer and in image chains.
final class Int8EngineReportTests: XCTestCase {
    func testEveryInt8LayerNamesTheKernelItRan() throws {
        // Int8ImageChainTests' MobileNetV2 shape on 40x40 images: a 3-channel 3x3/2 stem onto
        // 20x20, 1x1 stride-1 expand/project convs on 400 pixels (the pointwise kernel takes
        // 128+), two depthwise convs and a Gemm.
        let g = Int8ImageChainTests.mobileGraph()
        var state: UInt64 = 5
        let images = Int8ImageChainTests.images(3, state: &state)
        let session = try Session(graph: GraphPasses.optimize(g))
        let data = try Dataset(arrays: ["x": images], path: "memory", graph: g)
        let table = try Calibrator(session: session, scheme: .ort).calibrate(
            dataset: data, options: CalibrationOptions(method: .minmax), modelDigest: g.digest)
        let rt = try MixedPrecisionRuntime(session: session, calibration: table, scheme: .ort)
        try rt.apply(rt.allInt8)
        XCTAssertEqual(Set(rt.layerNames), ["stem", "expand", "dw", "project", "expand2", "dw2", "fc"])
        for layer in rt.layerNames { XCTAssertNil(rt.layers[layer]!.engine, "\(layer): no run yet") }
        defer { rt.session.int8ImageChains = Session.int8ImageChainsDefault }
        for path in KernelPath.available {
            rt.path = path
            let name = path.resolved.rawValue
            var want: [String: String]
            switch path.resolved {
            case .vnni:
                let dw = mpq_depthwise_vnni_available() != 0 ? "depthwise+vnni" : "depthwise+avx2"
                want = ["stem": "im2col+vnni", "expand": "pointwise", "dw": dw, "project": "pointwise",
                        "expand2": "pointwise", "dw2": dw, "fc": mpq_qgemm_uses_amx(path.c) != 0 ? "gemm+amx" : "gemm+vnni"]
            default:
                // The AVX2 path has its own pointwise kernel (s18, qgemm_pointwise_avx2.c), which
                // also runs the few-channel stem over its K column planes (s25, stem-planes+avx2);
                // the reference runs everything through im2col.
                let pw = path.resolved == .avx2 ? "pointwise+avx2" : "im2col+\(name)"
                let stem = path.resolved == .avx2 ? "stem-planes+avx2" : "im2col+\(name)"
                want = ["stem": stem, "expand": pw, "dw": "depthwise+\(name)",
                        "project": pw, "expand2": pw, "dw2": "depthwise+\(name)", "fc": "gemm+\(name)"]
            }
            for (n, chains) in [(1, false), (3, false), (3, true)] {
                rt.session.int8ImageChains = chains
                _ = try rt.session.run(["x": Tensor(shape: [n, 3, 40, 40], floats: Array(images.floats.prefix(n * 4800)))])
                // The AVX2 depthwise runs either of its kernels by plane size, channels and
                // threads (depthwise_reference.c, lanes_fit): the same family here.
                let got = Dictionary(uniqueKeysWithValues: rt.layerNames.map {
                    ($0, (rt.layers[$0]!.engine ?? "none").replacingOccurrences(of: "depthwise-lanes+", with: "depthwise+"))
                })
                XCTAssertEqual(got, want, "\(name), batch \(n), image chains \(chains)")
            }
        }
    }
}
