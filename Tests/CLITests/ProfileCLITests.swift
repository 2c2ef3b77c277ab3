import Foundation
import XCTest

/// `mpq profile`: every executed node once, in execution order, shares summing to 100%,
/// and the INT8 side marks the layers and region ops that ran in INT8.
final class ProfileCLITests: XCTestCase {
    func testProfileCoversEveryNodeAndSharesSumTo100() throws {
        let model = "\(CLI.examples)/digits_cnn.onnx"
        let r = try CLI.run(["profile", model, "--data", "\(CLI.examples)/digits_holdout.npz", "--runs", "2",
                             "--precision", "int8", "--calibration", "\(CLI.examples)/digits_calib.npz", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let report = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let nodes = try XCTUnwrap(report["nodes"] as? [[String: Any]])
        // The optimised graph's nodes (inspect lists them in execution order).
        let inspect = try CLI.run(["inspect", model, "--json"])
        let planned = try XCTUnwrap((JSONSerialization.jsonObject(with: Data(inspect.stdout.utf8)) as? [String: Any])?["nodes"] as? [[String: Any]])
        XCTAssertEqual(nodes.map { $0["name"] as? String }, planned.map { $0["name"] as? String })
        for key in ["fp32_share", "share"] {
            let total = nodes.compactMap { $0[key] as? Double }.reduce(0, +)
            XCTAssertEqual(total, 100, accuracy: 0.01, key)
        }
        XCTAssertEqual(nodes.filter { $0["int8"] as? Bool == true }.count, 12, "7 layers and 5 region ops run INT8 (scheme ort)")
        XCTAssertEqual(report["scheme"] as? String, "ort")
        let conv = try XCTUnwrap(nodes.first { $0["name"] as? String == "/block/conv1/Conv" })
        XCTAssertEqual(conv["macs"] as? Int, 589824 * 16, "inspect's MACs at batch 1, times the batch of 16")
        XCTAssertGreaterThan(try XCTUnwrap(report["ms"] as? Double), 0)
        // End to end, beside the node sums: plain runs, both precisions.
        XCTAssertGreaterThan(try XCTUnwrap(report["fp32_run_ms"] as? Double), 0)
        XCTAssertGreaterThan(try XCTUnwrap(report["run_ms"] as? Double), 0)
        let text = try CLI.run(["profile", model, "--data", "\(CLI.examples)/digits_holdout.npz", "--runs", "1", "--quiet"])
        XCTAssertEqual(text.status, 0, text.stderr)
        XCTAssertTrue(text.stdout.contains("end to end: FP32 ") && text.stdout.contains("sum of nodes: FP32 "), text.stdout)
    }

    /// The engine column: what each INT8 Conv/Gemm ran, as the kernels reported it in the timed
    /// runs, written from the layer's geometry here (docs/int8-amx.md, "Engine per Conv"):
    /// digits_cnn has a 1-channel stem (im2col), 16-channel 3x3 convs on a 16-wide plane (the
    /// implicit conv on VNNI, the indirect GEMM on AVX2, as the 32-channel 3x3 conv3), a depthwise conv, a 1x1 on an 8x8 plane (64 pixels: im2col, not the
    /// pointwise kernel, which needs 128; on the VNNI path the channel-vector tiles, as the 3x3
    /// conv3 on 8x8) and a Gemm. Nodes that are not INT8 layers have none.
    /// `--statistic min`: every time is the minimum over the runs (the report says so, the text
    /// header too); shares still sum to 100%, and a node's minimum is at most its median would be
    /// (checked on the statistic itself: RunStatistic.of). A bad value is a usage error.
    func testProfileReportsMinimaWhenAsked() throws {
        let model = "\(CLI.examples)/digits_cnn.onnx"
        let args = ["profile", model, "--data", "\(CLI.examples)/digits_holdout.npz", "--runs", "3", "--batch-size", "4",
                    "--precision", "int8", "--calibration", "\(CLI.examples)/digits_calib.npz", "--statistic", "min"]
        let r = try CLI.run(args + ["--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let report = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(report["statistic"] as? String, "min")
        let nodes = try XCTUnwrap(report["nodes"] as? [[String: Any]])
        for key in ["fp32_share", "share"] {
            XCTAssertEqual(nodes.compactMap { $0[key] as? Double }.reduce(0, +), 100, accuracy: 0.01, key)
        }
        XCTAssertGreaterThan(try XCTUnwrap(report["run_ms"] as? Double), 0)
        let text = try CLI.run(args + ["--quiet"])
        XCTAssertEqual(text.status, 0, text.stderr)
        XCTAssertTrue(text.stdout.contains("minimum of 3 runs") && text.stdout.contains("(fastest run,")
                      && text.stdout.contains("(per-node minima of the same runs"), text.stdout)
        let median = try CLI.run(Array(args.dropLast(2)) + ["--quiet"])
        XCTAssertTrue(median.stdout.contains("median of 3 runs"), median.stdout)
        let bad = try CLI.run(Array(args.dropLast()) + ["mean"])
        XCTAssertEqual(bad.status, 2, bad.stderr)
        XCTAssertTrue(bad.stderr.contains("--statistic"), bad.stderr)
    }

    func testProfileShowsTheEngineEachInt8LayerRan() throws {
        let model = "\(CLI.examples)/digits_cnn.onnx"
        let args = ["profile", model, "--data", "\(CLI.examples)/digits_holdout.npz", "--runs", "1", "--batch-size", "4",
                    "--precision", "int8", "--calibration", "\(CLI.examples)/digits_calib.npz"]
        let r = try CLI.run(args + ["--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let report = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let path = try XCTUnwrap(report["kernel_path"] as? String)
        let nodes = try XCTUnwrap(report["nodes"] as? [[String: Any]])
        // Either AVX2 depthwise kernel (pixels or channels in the lanes) is the depthwise family.
        let engines = Dictionary(uniqueKeysWithValues: nodes.compactMap { n in
            (n["engine"] as? String).map { (n["name"] as! String, $0.replacingOccurrences(of: "depthwise-lanes+", with: "depthwise+")) }
        })
        let im2col = "im2col+\(path)"
        var want = ["/stem/stem.0/Conv": im2col, "/block/conv1/Conv": im2col, "/block/conv2/Conv": im2col,
                    "/dw/dw.0/Conv": "depthwise+\(path)", "/pw/pw.0/Conv": im2col, "/conv3/conv3.0/Conv": im2col,
                    "/fc/Gemm": "gemm+\(path)"]
        if path == "avx2" {
            // 3x3 convs with 16 and 32 channels: the AVX2 GEMM reading a channels-last copy
            // (docs/int8-conv.md, "Indirect 3x3 on AVX2").
            want["/block/conv1/Conv"] = "indirect+avx2"
            want["/block/conv2/Conv"] = "indirect+avx2"
            want["/conv3/conv3.0/Conv"] = "indirect+avx2"
        }
        if path == "vnni" {
            want["/block/conv1/Conv"] = "implicit"
            want["/block/conv2/Conv"] = "implicit"
            // 8x8 planes (64 pixels): the channel-vector tiles (docs/int8-conv.md).
            want["/pw/pw.0/Conv"] = "cv+vnni"
            want["/conv3/conv3.0/Conv"] = "cv+vnni"
            // Without VBMI the VNNI path's depthwise is the AVX2 kernel; on AMX machines the Gemm is AMX.
            XCTAssert(["depthwise+vnni", "depthwise+avx2"].contains(engines["/dw/dw.0/Conv"] ?? ""), "\(engines)")
            want["/dw/dw.0/Conv"] = engines["/dw/dw.0/Conv"]
            XCTAssert(["gemm+vnni", "gemm+amx"].contains(engines["/fc/Gemm"] ?? ""), "\(engines)")
            want["/fc/Gemm"] = engines["/fc/Gemm"]
        }
        XCTAssertEqual(engines, want)
        let text = try CLI.run(args + ["--top", "40"])
        XCTAssertEqual(text.status, 0, text.stderr)
        XCTAssert(text.stdout.contains("engine"), text.stdout)
        let dwLine = try XCTUnwrap(text.stdout.split(separator: "\n").first { $0.hasPrefix("/dw/dw.0/Conv") })
        XCTAssert(dwLine.replacingOccurrences(of: "depthwise-lanes+", with: "depthwise+").hasSuffix(" " + want["/dw/dw.0/Conv"]!), String(dwLine))
    }
}
