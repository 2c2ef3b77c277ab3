import Foundation
import XCTest
import ZIPFoundation
@testable import ONNX

/// Malformed `.npz`/`.npy` files (issue 10): each is an error naming the file and entry,
/// never a trap, a hang, an unchecked allocation or a silent answer.
final class NumpyHardeningTests: XCTestCase {
    static let errors = NumpyTests.fixtures + "/errors"

    func temporaryDirectory() throws -> URL { try scratchDirectory("npz-hardening") }

    /// Runs `body` on another thread and fails (instead of hanging the suite) past `seconds`.
    func withinSeconds(_ seconds: Double, _ what: String, _ body: @escaping @Sendable () throws -> Void) {
        let done = expectation(description: what)
        DispatchQueue.global().async {
            do { try body() } catch { XCTFail("\(what): \(error)") }
            done.fulfill()
        }
        wait(for: [done], timeout: seconds)
    }

    /// An `.npy` header as numpy writes it, with any shape text, over `payload`.
    static func npy(shape: String, descr: String = "<f4", payload: Data) -> Data {
        var header = "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(shape), }"
        while (10 + header.utf8.count + 1) % 64 != 0 { header += " " }
        header += "\n"
        var d = Data([0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(header.utf8.count & 0xff), UInt8(header.utf8.count >> 8)])
        d.append(contentsOf: Array(header.utf8))
        d.append(payload)
        return d
    }

    /// A zip of `entries` (name, bytes) written by ZIPFoundation, stored or deflated.
    static func zip(_ entries: [(String, Data)], to url: URL, deflate: Bool) throws {
        let archive = try Archive(url: url, accessMode: .create)
        for (name, data) in entries {
            try archive.addEntry(with: name, type: .file, uncompressedSize: Int64(data.count),
                                 compressionMethod: deflate ? .deflate : .none) { pos, size in
                data.subdata(in: Int(pos)..<Int(pos) + size)
            }
        }
    }

    // MARK: integer overflow in the header

    func testShapeWhoseElementCountOverflowsIsAnError() throws {
        let data = Self.npy(shape: "(\(1 << 62), 1, 16, 16)", payload: Data(count: 1024))
        XCTAssertThrowsError(try Numpy.parseNPY(data, path: "x.npy")) {
            XCTAssertTrue("\($0)".contains("x.npy") && "\($0)".contains("more elements than an array can hold"), "\($0)")
        }
        // Count fits, bytes do not: (2^61) float32 elements are 2^63 bytes.
        XCTAssertThrowsError(try Numpy.parseNPY(Self.npy(shape: "(\(1 << 61),)", payload: Data()), path: "y.npy")) {
            XCTAssertTrue("\($0)".contains("larger than memory can address"), "\($0)")
        }
        // The committed reproducer (tools/fuzz/make_bad_npz.py): mpq 0.1 trapped on it.
        let path = Self.errors + "/huge_shape.npz"
        XCTAssertThrowsError(try Numpy.readNPZ(path: path)) {
            XCTAssertTrue("\($0)".contains("\(path):input.npy") && "\($0)".contains("more elements"), "\($0)")
        }
    }

    func testHeaderDeclaringMoreThanTheEntryHoldsIsAnError() throws {
        let dir = try temporaryDirectory()
        let url = dir.appendingPathComponent("short.npz")
        try Self.zip([("input.npy", Self.npy(shape: "(65536, 1, 64, 64)", payload: Data(count: 4096)))], to: url, deflate: true)
        XCTAssertThrowsError(try Numpy.readNPZ(path: url.path)) {
            XCTAssertTrue("\($0)".contains("needs 1073741824 data bytes, the entry has 4096"), "\($0)")
        }
    }

    // MARK: memory: declared size against a limit, before inflating

    func testDeclaredSizeOverTheLimitIsRefusedBeforeInflating() throws {
        let dir = try temporaryDirectory()
        let url = dir.appendingPathComponent("bomb.npz")
        // 4 MiB of zeros deflate to a few KiB: a small zip bomb.
        try Self.zip([("input.npy", Self.npy(shape: "(1024, 1, 32, 32)", payload: Data(count: 4 << 20)))], to: url, deflate: true)
        XCTAssertLessThan(try Data(contentsOf: url).count, 64 << 10)
        XCTAssertEqual(try Numpy.readNPZ(path: url.path, limitBytes: 8 << 20)["input"]?.shape, [1024, 1, 32, 32])
        XCTAssertThrowsError(try Numpy.readNPZ(path: url.path, limitBytes: 1 << 20)) {
            XCTAssertTrue("\($0)".contains("bomb.npz:input.npy") && "\($0)".contains("4.0 MiB in memory")
                          && "\($0)".contains("MPQ_MAX_DATA_MB"), "\($0)")
        }
        // Corrupt the end of the deflate stream: the limit still answers first, so nothing
        // past the header was inflated.
        var bytes = try Data(contentsOf: url)
        let archive = try NPZArchive(path: url.path)
        let range = try archive.dataRange(archive.entries[0])
        for i in range.upperBound - 40..<range.upperBound { bytes[i] ^= 0x5A }
        try bytes.write(to: url)
        XCTAssertThrowsError(try Numpy.readNPZ(path: url.path, limitBytes: 1 << 20)) {
            XCTAssertTrue("\($0)".contains("MPQ_MAX_DATA_MB"), "\($0)")
        }
        XCTAssertThrowsError(try Numpy.readNPZ(path: url.path, limitBytes: 8 << 20)) {
            XCTAssertFalse("\($0)".contains("MPQ_MAX_DATA_MB"), "\($0)")
        }
    }

    func testOneMegabyteZipBombIsRefusedUnderTheDefaultLimit() throws {
        // tools/fuzz/make_bad_npz.py: (65536, 1, 64, 64) float32 zeros, 1 GiB inflated; mpq 0.1
        // grew to 2.1 GB on it. Refused from the header alone, in well under a second.
        let path = Self.errors + "/zip_bomb.npz"
        XCTAssertLessThan(try Data(contentsOf: URL(fileURLWithPath: path)).count, 1_100_000)
        withinSeconds(30, "read zip_bomb.npz") {
            XCTAssertThrowsError(try Numpy.readNPZ(path: path, limitBytes: 512 << 20)) {
                XCTAssertTrue("\($0)".contains("zip_bomb.npz:input.npy") && "\($0)".contains("[65536,1,64,64]")
                              && "\($0)".contains("1.0 GiB in memory") && "\($0)".contains("512.0 MiB limit"), "\($0)")
            }
        }
    }

    func testLimitCountsIntegersAtEightBytesAndAddsArraysUp() throws {
        let dir = try temporaryDirectory()
        let path = dir.appendingPathComponent("ints.npz").path
        // 2 x 65536 uint8 values take 2 x 512 KiB once decoded (Int64 storage).
        try Numpy.writeNPZ(["a": Tensor(shape: [65536], ints: [Int64](repeating: 1, count: 65536), dtype: .uint8),
                            "b": Tensor(shape: [65536], ints: [Int64](repeating: 2, count: 65536), dtype: .uint8)], path: path)
        XCTAssertNoThrow(try Numpy.readNPZ(path: path, limitBytes: 1 << 20))
        XCTAssertThrowsError(try Numpy.readNPZ(path: path, limitBytes: (1 << 20) - 1)) {
            XCTAssertTrue("\($0)".contains("ints.npz:b.npy"), "\($0)")
        }
    }

    // MARK: corrupt streams and CRCs

    func testWrongCRCIsAnError() throws {
        // Stored entry, intact data, wrong checksum (mpq 0.1 read it without complaint).
        let path = Self.errors + "/bad_crc.npz"
        XCTAssertThrowsError(try Numpy.readNPZ(path: path)) {
            XCTAssertTrue("\($0)".contains(path) && "\($0)".contains("'input.npy'") && "\($0)".contains("bad CRC-32"), "\($0)")
        }
        // A flipped payload byte of a stored archive written by mpq.
        let dir = try temporaryDirectory()
        let p2 = dir.appendingPathComponent("flipped.npz").path
        try Numpy.writeNPZ(["x": Tensor(shape: [16], floats: (0..<16).map(Float.init))], path: p2)
        var bytes = try Data(contentsOf: URL(fileURLWithPath: p2))
        let archive = try NPZArchive(path: p2)
        bytes[try archive.dataRange(archive.entries[0]).upperBound - 3] ^= 0x01
        try bytes.write(to: URL(fileURLWithPath: p2))
        XCTAssertThrowsError(try Numpy.readNPZ(path: p2)) { XCTAssertTrue("\($0)".contains("bad CRC-32"), "\($0)") }
    }

    func testCorruptDeflateStreamIsAnErrorNeverALoop() throws {
        let path = Self.errors + "/corrupt_deflate.npz"
        withinSeconds(20, "read corrupt_deflate.npz") {
            XCTAssertThrowsError(try Numpy.readNPZ(path: path)) {
                XCTAssertTrue("\($0)".contains(path) && "\($0)".contains("'input.npy'"), "\($0)")
            }
        }
    }

    /// Every single-byte flip of a deflated archive: an error, or (a byte nothing reads,
    /// such as a timestamp) the original arrays; never other values, never a hang.
    func testEveryByteFlipOfADeflatedArchiveIsCaught() throws {
        let original = try Data(contentsOf: URL(fileURLWithPath: Self.errors + "/dtypes_deflated.npz"))
        let expected = try Numpy.readNPZ(path: Self.errors + "/dtypes_deflated.npz")
        let dir = try temporaryDirectory()
        let url = dir.appendingPathComponent("flip.npz")
        withinSeconds(120, "flip every byte") {
            var silentlyWrong: [Int] = []
            for i in 0..<original.count {
                var d = original
                d[i] ^= 0xFF
                try? d.write(to: url)
                // A flipped name byte renames an array (the loader then reports a missing input); values must not change.
                if let got = try? Numpy.readNPZ(path: url.path),
                   got.count != expected.count || !got.values.allSatisfy({ v in expected.values.contains(v) }) {
                    silentlyWrong.append(i)
                }
            }
            XCTAssertEqual(silentlyWrong, [], "byte flips read as different arrays without an error")
        }
    }

    func testTruncatedArchivesAreErrors() throws {
        let original = try Data(contentsOf: URL(fileURLWithPath: Self.errors + "/dtypes_deflated.npz"))
        let dir = try temporaryDirectory()
        let url = dir.appendingPathComponent("cut.npz")
        for cut in stride(from: 0, to: original.count, by: 37) {
            try original.prefix(cut).write(to: url)
            XCTAssertThrowsError(try Numpy.readNPZ(path: url.path), "cut at \(cut)")
        }
    }

    // MARK: folders and devices

    func testFolderAndDeviceAreRefusedNotRead() throws {
        let dir = try temporaryDirectory()
        XCTAssertThrowsError(try Numpy.readNPZ(path: dir.path)) {
            XCTAssertEqual($0 as? ModelError, .notARegularFile(path: dir.path, expected: "an .npz file", actual: "a folder"))
            XCTAssertTrue("\($0)".contains("is a folder, not an .npz file"), "\($0)")
        }
        withinSeconds(10, "read /dev/zero") {
            XCTAssertThrowsError(try Numpy.readNPZ(path: "/dev/zero")) {
                XCTAssertTrue("\($0)".contains("/dev/zero is not a regular file"), "\($0)")
            }
        }
        XCTAssertThrowsError(try Numpy.readNPY(path: dir.path))
    }

    // MARK: numpy's own files still read

    func testNumpyWrittenFilesStillRead() throws {
        for file in ["digits_holdout.npz", "text_encoder_search.npz", "errors/dtypes_deflated.npz"] {
            XCTAssertNoThrow(try Numpy.readNPZ(path: "\(NumpyTests.fixtures)/\(file)"), file)
        }
    }
}

/// Writing outputs: only over regular files, atomically.
final class OutputFileTests: XCTestCase {
    func testNonRegularTargetsAreNeverReplaced() throws {
        let dir = try scratchDirectory("out")
        // A FIFO stands for /dev/full: were the check gone, a test run as root must not replace a device.
        let fifo = dir.appendingPathComponent("fifo").path
        XCTAssertEqual(mkfifo(fifo, 0o644), 0)
        XCTAssertThrowsError(try OutputFile.write(Data("x".utf8), to: fifo)) {
            XCTAssertTrue("\($0)".contains("cannot write \(fifo)") && "\($0)".contains("not a regular file"), "\($0)")
        }
        XCTAssertEqual(FileKind(path: fifo), .other)
        XCTAssertEqual(FileKind(path: "/dev/null"), .other)
        XCTAssertThrowsError(try OutputFile.write(Data("x".utf8), to: dir.path)) {
            XCTAssertTrue("\($0)".contains("it is a folder"), "\($0)")
        }
        XCTAssertThrowsError(try Numpy.writeNPZ(["a": .scalar(1)], path: fifo))
        XCTAssertEqual(FileKind(path: fifo), .other)
        XCTAssertThrowsError(try OutputFile.write(Data(), to: dir.path + "/missing/x.json")) {
            XCTAssertTrue("\($0)".contains("does not exist"), "\($0)")
        }
        // A regular file is replaced whole, and no temporary file is left behind.
        let path = dir.appendingPathComponent("map.json").path
        try OutputFile.write(Data("one".utf8), to: path)
        try OutputFile.write(Data("two".utf8), to: path)
        XCTAssertEqual(try String(contentsOfFile: path, encoding: .utf8), "two")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted(), ["fifo", "map.json"])
    }
}
