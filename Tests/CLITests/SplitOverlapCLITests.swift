import Foundation
import XCTest
import ONNX

/// Splits sharing samples by content are refused (exit 2) unless --allow-overlap.
final class SplitOverlapCLITests: XCTestCase {
    let f = CLI.fixtures

    func testSearchSplitSharingRowsWithCalibrationIsExit2() throws {
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        // The search split plus 3 calibration rows.
        let cal = try Numpy.readNPZ(path: "\(f)/breast_cancer_calib.npz"), search = try Numpy.readNPZ(path: "\(f)/breast_cancer_search.npz")
        var merged: [String: Tensor] = [:]
        for (k, t) in search {
            let extra = cal[k]!.gather([0, 1, 2])
            merged[k] = t.dtype.isFloating ? Tensor(shape: [t.shape[0] + 3] + Array(t.shape.dropFirst()), floats: t.floats + extra.floats)
                : Tensor(shape: [t.shape[0] + 3] + Array(t.shape.dropFirst()), ints: t.ints + extra.ints)
        }
        let path = dir.appendingPathComponent("search.npz").path
        try Numpy.writeNPZ(merged, path: path)
        let out = dir.appendingPathComponent("map.json").path
        let r = try CLI.run(["search", "\(f)/tabular_mlp.onnx", "--budget", "1", "--calibration", "\(f)/breast_cancer_calib.npz",
                             "--search", path, "--holdout", "\(f)/breast_cancer_holdout.npz", "--out", out])
        XCTAssertEqual(r.status, 2, r.stderr)
        XCTAssertTrue(r.stderr.contains("3 rows of search (\(path)) also in calibration"), r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
        let ok = try CLI.run(["search", "\(f)/tabular_mlp.onnx", "--budget", "1", "--calibration", "\(f)/breast_cancer_calib.npz",
                              "--search", path, "--holdout", "\(f)/breast_cancer_holdout.npz", "--out", out, "--allow-overlap"])
        XCTAssertEqual(ok.status, 0, ok.stderr)
        XCTAssertTrue(ok.stderr.contains("warning: --allow-overlap: 3 rows of search"), ok.stderr)
    }

    func testCalibrationTableOfTheSearchSplitIsExit2() throws {
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let table = dir.appendingPathComponent("table.json").path
        let c = try CLI.run(["calibrate", "\(f)/tabular_mlp.onnx", "--data", "\(f)/breast_cancer_search.npz", "--out", table, "--quiet"])
        XCTAssertEqual(c.status, 0, c.stderr)
        XCTAssertTrue(try String(contentsOfFile: table, encoding: .utf8).contains("\"dataDigest\" : \"rows:"))
        let r = try CLI.run(["search", "\(f)/tabular_mlp.onnx", "--budget", "1", "--calibration", table,
                             "--search", "\(f)/breast_cancer_search.npz", "--holdout", "\(f)/breast_cancer_holdout.npz",
                             "--out", dir.appendingPathComponent("map.json").path])
        XCTAssertEqual(r.status, 2, r.stderr)
        XCTAssertTrue(r.stderr.contains("was computed on the same data as \(f)/breast_cancer_search.npz"), r.stderr)
    }
}
