import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Rows of floats written once, batch by batch, then read back by range: the FP32 reference
/// outputs a candidate is scored against, or the outputs `--save-outputs` writes at the end.
/// They live in a temporary file that is unlinked as soon as it is open (nothing is left
/// behind, even on a crash), so memory holds one batch of them, not N x width
/// (docs/scale.md, "Outputs"). Reads are `pread`s into a fresh array: the page cache, not
/// the process, keeps recently read rows.
public final class RowSpool {
    /// Floats per row.
    public let width: Int
    /// The shape of one row's values (their product is `width`).
    public let sampleShape: [Int]
    public private(set) var rows = 0
    /// Tells spools apart (a freed spool's address may be reused).
    public let identity = UUID()
    private let fd: Int32

    public init(width: Int, sampleShape: [Int]) throws {
        self.width = width
        self.sampleShape = sampleShape
        var template = Array((NSTemporaryDirectory() + "/mpq-rows-XXXXXX").utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else {
            throw RowSpoolError(reason: "cannot create a temporary file in \(NSTemporaryDirectory()) (errno \(errno))")
        }
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
        self.fd = fd
    }

    deinit { close(fd) }

    /// Bytes of the rows written so far (on disk, not in memory).
    public var bytes: Int { rows * width * MemoryLayout<Float>.size }

    /// Appends `values.count / width` rows.
    public func append(_ values: [Float]) throws {
        precondition(width == 0 ? values.isEmpty : values.count % width == 0, "a batch of whole rows")
        try values.withUnsafeBytes { raw in
            var done = 0
            while done < raw.count {
                let n = pwrite(fd, raw.baseAddress! + done, raw.count - done, off_t(bytes + done))
                guard n > 0 else { throw RowSpoolError(reason: "cannot write a temporary file (errno \(errno)); is the temporary folder full?") }
                done += n
            }
        }
        rows += width == 0 ? 0 : values.count / width
    }

    /// The floats of rows `range`.
    public func values(_ range: Range<Int>) throws -> [Float] {
        precondition(range.lowerBound >= 0 && range.upperBound <= rows, "rows \(range) of \(rows)")
        let count = range.count * width
        var out = [Float](repeating: 0, count: count)
        try out.withUnsafeMutableBytes { raw in
            var done = 0
            let start = range.lowerBound * width * MemoryLayout<Float>.size
            while done < raw.count {
                let n = pread(fd, raw.baseAddress! + done, raw.count - done, off_t(start + done))
                guard n > 0 else { throw RowSpoolError(reason: "cannot read back a temporary file (errno \(errno))") }
                done += n
            }
        }
        return out
    }

    /// Rows `range` as outputs.
    public func outputs(_ range: Range<Int>) throws -> Outputs {
        Outputs(values: try values(range), rows: range.count, width: width, sampleShape: sampleShape)
    }

    /// Every row, in memory: for split-level metrics (their scorer needs the whole split) and tests.
    public func all() throws -> Outputs { try outputs(0..<rows) }

    /// Bytes `offset..<offset + count` of the rows as written (little-endian floats), for
    /// writers that copy them out chunk by chunk (`--save-outputs`, `--metric-command`).
    public func bytes(at offset: Int, count: Int) throws -> Data {
        precondition(offset >= 0 && count >= 0 && offset + count <= bytes, "bytes \(offset)+\(count) of \(bytes)")
        var out = Data(count: count)
        try out.withUnsafeMutableBytes { (raw: UnsafeMutableRawBufferPointer) in
            var done = 0
            while done < count {
                let n = pread(fd, raw.baseAddress! + done, count - done, off_t(offset + done))
                guard n > 0 else { throw RowSpoolError(reason: "cannot read back a temporary file (errno \(errno))") }
                done += n
            }
        }
        return out
    }
}

public struct RowSpoolError: Error, CustomStringConvertible {
    public let reason: String
    public var description: String { "outputs spooled to disk: \(reason)" }
}
