import Foundation
import XCTest
import ONNX

/// Issue 10, as a user meets it: bad data files, bad data, bad flags and unwritable outputs
/// exit 2 with a message naming the file, array or flag; never a crash, a hang, or exit 0/1.
final class HardeningCLITests: XCTestCase {
    let model = "\(CLI.examples)/digits_cnn.onnx"
    let holdout = "\(CLI.examples)/digits_holdout.npz"
    let all = "\(CLI.examples)/digits.npz"
    /// Generous: a debug build evaluates the digits holdout in about a second.
    let timeout = 120.0

    /// The first `n` digits holdout samples, with `labels` and `input` replaced as given.
    func digits(_ n: Int, input: Tensor? = nil, labels: Tensor?? = nil) throws -> [String: Tensor] {
        let a = try Numpy.readNPZ(path: holdout)
        var out: [String: Tensor] = ["input": input ?? a["input"]!.slice(0..<n)]
        switch labels {
        case .none: out["labels"] = a["labels"]!.slice(0..<n)
        case .some(.none): break
        case .some(.some(let l)): out["labels"] = l
        }
        return out
    }

    func write(_ arrays: [String: Tensor], _ name: String) throws -> String {
        let path = try CLI.temporaryDirectory().appendingPathComponent(name).path
        try Numpy.writeNPZ(arrays, path: path)
        return path
    }

    func assertBadInput(_ args: [String], _ parts: [String], environment: [String: String] = [:],
                        file: StaticString = #filePath, line: UInt = #line) throws {
        let r = try CLI.run(args, environment: environment, timeout: timeout)
        XCTAssertNotEqual(r.status, -1, "timed out (hang): mpq \(args.joined(separator: " "))", file: file, line: line)
        XCTAssertEqual(r.status, 2, "mpq \(args.joined(separator: " ")): \(r.stderr)", file: file, line: line)
        for p in parts { XCTAssertTrue(r.stderr.contains(p), "missing '\(p)' in: \(r.stderr)", file: file, line: line) }
        XCTAssertFalse(r.stderr.contains("internal error"), r.stderr, file: file, line: line)
    }

    // MARK: labels

    func testLabelsOutsideTheClassRangeNameFileRowAndValue() throws {
        for (bad, text) in [(Int64(10), "10"), (Int64.max, "\(Int64.max)")] {
            var l = try digits(5)["labels"]!
            l.ints[3] = bad
            let path = try write(try digits(5, labels: .some(l)), "labels.npz")
            try assertBadInput(["eval", model, "--data", path], [path, "row 3", "class \(text)", "10 classes"])
        }
        let neg = try write(try digits(5, labels: .some(Tensor(shape: [5], ints: [0, 1, -1, 2, 3]))), "neg.npz")
        try assertBadInput(["eval", model, "--data", neg], [neg, "'labels'", "row 2", "-1"])
    }

    func testLabelsOfTheWrongTypeOrShape() throws {
        let cases: [(Tensor, [String])] = [
            (Tensor(shape: [4], floats: [0, 1, 2, 3]), ["integer", "float32"]),
            (Tensor(shape: [4], floats: [0, .infinity, 2, 3]), ["integer"]),
            (Tensor(shape: [4], ints: [0, 1, 1, 0], dtype: .bool), ["integer", "bool"]),
            (Tensor(shape: [4, 1], ints: [0, 1, 2, 3]), ["[4]", "[4,1]"]),
        ]
        for (labels, parts) in cases {
            let path = try write(try digits(4, labels: .some(labels)), "labels.npz")
            try assertBadInput(["eval", model, "--data", path], [path, "'labels'"] + parts)
        }
    }

    func testLabelOutOfRangeStopsASearchBeforeItRuns() throws {
        var l = try digits(40)["labels"]!
        l.ints[7] = 10
        let search = try write(try digits(40, labels: .some(l)), "search.npz")
        // The 40 rows come from the holdout file: --allow-overlap, so that the label check is what fails.
        try assertBadInput(["search", model, "--calibration", "\(CLI.examples)/digits_calib.npz", "--search", search,
                            "--holdout", holdout, "--allow-overlap", "--out", try CLI.temporaryDirectory().appendingPathComponent("m.json").path],
                           [search, "row 7", "class 10"])
    }

    // MARK: values

    func testNonFiniteInputIsAnErrorUnlessAllowed() throws {
        let nan = Tensor(shape: [3, 1, 16, 16], floats: [Float](repeating: .nan, count: 768))
        let path = try write(try digits(3, input: nan), "nan.npz")
        try assertBadInput(["eval", model, "--data", path], [path, "'input'", "768 NaN or infinite values", "row 0", "--allow-nonfinite"])
        let r = try CLI.run(["eval", model, "--data", path, "--allow-nonfinite"], timeout: timeout)
        XCTAssertEqual(r.status, 0, r.stderr)
    }

    func testZeroRowsIsAnError() throws {
        let path = try write(["input": Tensor(shape: [0, 1, 16, 16], floats: []), "labels": Tensor(shape: [0], ints: [])], "empty.npz")
        try assertBadInput(["eval", model, "--data", path], [path, "no samples"])
        // An empty holdout file (HoldoutError used to exit 1).
        try assertBadInput(["search", model, "--calibration", "\(CLI.examples)/digits_calib.npz", "--search",
                            "\(CLI.examples)/digits_search.npz", "--holdout", path, "--out",
                            try CLI.temporaryDirectory().appendingPathComponent("m.json").path], [path, "no samples"])
    }

    func testUInt64TokenIdsDoNotWrapToMinusOne() throws {
        let a = try Numpy.readNPZ(path: "\(CLI.fixtures)/text_encoder_holdout.npz")
        var ids = a["input_ids"]!.slice(0..<4)
        ids.dtype = .uint64
        ids.ints[2 * 32 + 5] = -1    // 2^64 - 1
        let path = try write(["input_ids": ids, "attention_mask": a["attention_mask"]!.slice(0..<4),
                              "labels": a["labels"]!.slice(0..<4)], "ids.npz")
        try assertBadInput(["eval", "\(CLI.fixtures)/text_encoder.onnx", "--data", path],
                           [path, "'input_ids'", "row 2", "18446744073709551615"])
    }

    // MARK: files

    func testMalformedNpzFilesAreErrorsNotCrashesOrHangs() throws {
        let errors = "\(CLI.fixtures)/errors"
        try assertBadInput(["eval", model, "--data", "\(errors)/huge_shape.npz"], ["huge_shape.npz:input.npy", "more elements"])
        try assertBadInput(["eval", model, "--data", "\(errors)/bad_crc.npz"], ["bad_crc.npz", "'input.npy'", "bad CRC-32"])
        try assertBadInput(["eval", model, "--data", "\(errors)/corrupt_deflate.npz"], ["corrupt_deflate.npz", "'input.npy'"])
        // 1 MB declaring (65536, 1, 64, 64) float32 (1 GiB): over the streaming threshold, so it
        // would be streamed in bounded memory, never loaded (docs/scale.md); its shape is refused
        // before anything is inflated.
        try assertBadInput(["eval", model, "--data", "\(errors)/zip_bomb.npz"],
                           ["input 'input' expects [N,1,16,16]", "[65536,1,64,64]"], environment: ["MPQ_MAX_DATA_MB": ""])
    }

    func testDataLargerThanTheLimitIsRefused() throws {
        // 1100 samples of 1 KiB: over a 1 MiB limit, far under the default.
        let path = try write(["input": Tensor(shape: [1100, 1, 16, 16], floats: [Float](repeating: 0.5, count: 1100 * 256)),
                              "labels": Tensor(shape: [1100], ints: [Int64](repeating: 3, count: 1100))], "big.npz")
        try assertBadInput(["eval", model, "--data", path], ["big.npz:input.npy", "over the 1.0 MiB limit", "MPQ_MAX_DATA_MB"],
                           environment: ["MPQ_MAX_DATA_MB": "1"])
        XCTAssertEqual(try CLI.run(["eval", model, "--data", path], timeout: timeout).status, 0)
    }

    func testFoldersAreRefusedNotHung() throws {
        let dir = try CLI.temporaryDirectory().path
        // A data folder is a set of .npz shards (docs/scale.md): an empty one is refused by name.
        try assertBadInput(["eval", model, "--data", dir], [dir, "holds no .npz shards"])
        try assertBadInput(["eval", dir, "--data", holdout], [dir, "is a folder, not an ONNX file"])
        try assertBadInput(["search", model, "--calibration", dir, "--search", "\(CLI.examples)/digits_search.npz",
                            "--holdout", holdout, "--out", "\(dir)/m.json"], [dir, "holds no .npz shards"])
        try assertBadInput(["eval", model, "--data", "/dev/zero"], ["/dev/zero", "not a regular file"])
    }

    // MARK: outputs

    func testOutputsGoOnlyToRegularFiles() throws {
        let dir = try CLI.temporaryDirectory()
        let fifo = dir.appendingPathComponent("fifo").path
        XCTAssertEqual(mkfifo(fifo, 0o644), 0)
        // A FIFO as data must be refused by name, not opened (that blocks for a writer: a
        // fuzz reproducer, special_data_fifo, once hung in the .npy sniffing).
        try assertBadInput(["eval", model, "--data", fifo], [fifo, "not a regular file"])
        try assertBadInput(["search", model, "--data", all, "--out", fifo], ["cannot write \(fifo)", "not a regular file"])
        XCTAssertEqual(FileKind(path: fifo), .other, "the FIFO was replaced")
        try assertBadInput(["calibrate", model, "--data", "\(CLI.examples)/digits_calib.npz", "--out", dir.path],
                           ["cannot write \(dir.path)", "folder"])
        try assertBadInput(["eval", model, "--data", holdout, "--save-outputs", fifo], ["cannot write \(fifo)"])
        XCTAssertEqual(FileKind(path: fifo), .other)
        // A regular file is written, and nothing else is left in the folder.
        let out = dir.appendingPathComponent("calib.json").path
        let r = try CLI.run(["calibrate", model, "--data", "\(CLI.examples)/digits_calib.npz", "--out", out, "--quiet"], timeout: timeout)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted(), ["calib.json", "fifo"])
    }

    // MARK: numbers

    func testNumbersAreParsedStrictly() throws {
        let out = try CLI.temporaryDirectory().appendingPathComponent("m.json").path
        let base = ["search", model, "--data", all, "--out", out]
        try assertBadInput(base + ["--time-limit", "nan"], ["--time-limit", "'nan' is not a plain decimal number"])
        try assertBadInput(base + ["--time-limit", "0"], ["--time-limit must be"])
        try assertBadInput(base + ["--budget", "150%"], ["--budget '150%'", "from 0 to 100"])
        try assertBadInput(base + ["--budget", "0x10"], ["--budget '0x10'"])
        try assertBadInput(base + ["--budget", "nan"], ["--budget 'nan'"])
        try assertBadInput(base + ["--budget", "-1"], ["--budget -1: negative values are not allowed", "--budget=-1"])
        try assertBadInput(base + ["--budget=-1"], ["--budget '-1'"])
        try assertBadInput(base + ["--confidence", "inf"], ["--confidence", "'inf'"])
        try assertBadInput(base + ["--batch-size", "-4"], ["--batch-size -4: negative values are not allowed"])
        try assertBadInput(base + ["--population", "99999999999"], ["--population must lie in"])
        try assertBadInput(base + ["--split", "0x1p-2,0.25,0.5"], ["--split"])
        try assertBadInput(["sweep", model, "--data", all, "--out", out, "--budgets", "1,0x2"], ["--budgets"])
        try assertBadInput(["calibrate", model, "--data", holdout, "--out", out, "--percentile", "nan"], ["--percentile"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
    }

    // MARK: exit codes

    func testStaleStateExits2() throws {
        let state = try CLI.temporaryDirectory()
        try Data("{\"not\": \"a sensitivity report\"}".utf8).write(to: state.appendingPathComponent("sensitivity.json"))
        try assertBadInput(["sensitivity", model, "--calibration", "\(CLI.examples)/digits_calib.npz",
                            "--search", "\(CLI.examples)/digits_search.npz", "--holdout", holdout, "--state", state.path],
                           ["sensitivity.json", "belongs to another run"])
    }
}
