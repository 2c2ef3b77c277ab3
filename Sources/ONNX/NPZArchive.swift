import Foundation
import MPQZlib

/// A read-only `.npz` (zip) archive, parsed by mpq itself so that nothing is trusted:
/// every offset and size is bounds-checked against the file, an entry is inflated only
/// up to the size its central-directory record declares, a corrupt deflate stream is an
/// error (never a loop), and every entry's CRC-32 is checked.
///
/// ZIPFoundation is kept for writing; its reader inflated a corrupt stream forever and
/// allocated whatever an entry declared before any check (issue 10).
struct NPZArchive {
    struct Entry {
        let name: String
        /// 0 stored, 8 deflated.
        let method: Int
        let crc32: UInt32
        let compressedSize: Int
        let uncompressedSize: Int
        let localHeaderOffset: Int
    }

    let path: String
    let bytes: Data
    let entries: [Entry]

    init(path: String) throws {
        self.path = path
        do { bytes = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped) } catch {
            throw ModelError.unreadable(path: path, reason: error.localizedDescription)
        }
        entries = try Self.centralDirectory(bytes, path: path)
    }

    private func fail(_ reason: String) -> ModelError { .badData(path: path, reason: reason) }

    // MARK: - Structure

    private static func centralDirectory(_ b: Data, path: String) throws -> [Entry] {
        func bad(_ r: String) -> ModelError { .badData(path: path, reason: "not a zip/.npz archive (\(r))") }
        let r = ByteReader(data: b, fail: bad)
        // End of central directory: 22 bytes plus a comment of at most 65535.
        guard b.count >= 22 else { throw bad("\(b.count) bytes, too short") }
        var eocd = -1
        var i = b.count - 22
        let lowest = max(0, b.count - 22 - 0xFFFF)
        while i >= lowest {
            if try r.u32(i) == 0x0605_4B50 { eocd = i; break }
            i -= 1
        }
        guard eocd >= 0 else { throw bad("no end-of-central-directory record") }
        var count = Int(try r.u16(eocd + 10))
        var size = Int(try r.u32(eocd + 12))
        var offset = Int(try r.u32(eocd + 16))
        if count == 0xFFFF || size == 0xFFFF_FFFF || offset == 0xFFFF_FFFF {
            // ZIP64: the locator sits just before the classic record.
            guard eocd >= 20, try r.u32(eocd - 20) == 0x0706_4B50 else { throw bad("ZIP64 sizes without a ZIP64 locator") }
            let z = try r.int64(eocd - 12)
            guard try r.u32(z) == 0x0606_4B50 else { throw bad("bad ZIP64 end-of-central-directory record") }
            count = try r.int64(z + 32)
            size = try r.int64(z + 40)
            offset = try r.int64(z + 48)
        }
        guard offset <= b.count, size <= b.count - offset else {
            throw bad("central directory at \(offset) (\(size) bytes) lies outside the \(b.count)-byte file")
        }
        guard count <= size / 46 else { throw bad("\(count) entries cannot fit a \(size)-byte central directory") }
        var entries: [Entry] = []
        var p = offset
        for _ in 0..<count {
            guard try r.u32(p) == 0x0201_4B50 else { throw bad("bad central directory record at \(p)") }
            let flags = try r.u16(p + 8)
            let method = Int(try r.u16(p + 10))
            let crc = try r.u32(p + 16)
            var csize = Int(try r.u32(p + 20)), usize = Int(try r.u32(p + 24))
            let nameLen = Int(try r.u16(p + 28)), extraLen = Int(try r.u16(p + 30)), commentLen = Int(try r.u16(p + 32))
            var local = Int(try r.u32(p + 42))
            let name = String(decoding: try r.bytes(p + 46, nameLen), as: UTF8.self)
            // ZIP64 extra field: the 64-bit values of the fields saturated above, in order.
            var e = p + 46 + nameLen
            let extraEnd = e + extraLen
            while e + 4 <= extraEnd {
                let id = try r.u16(e), len = Int(try r.u16(e + 2))
                if id == 1 {
                    var q = e + 4
                    if usize == 0xFFFF_FFFF { usize = try r.int64(q); q += 8 }
                    if csize == 0xFFFF_FFFF { csize = try r.int64(q); q += 8 }
                    if local == 0xFFFF_FFFF { local = try r.int64(q) }
                }
                e += 4 + len
            }
            if flags & 1 != 0 { throw ModelError.badData(path: path, reason: "entry '\(name)' is encrypted") }
            entries.append(Entry(name: name, method: method, crc32: crc, compressedSize: csize, uncompressedSize: usize,
                                 localHeaderOffset: local))
            p = extraEnd + commentLen
        }
        return entries
    }

    /// Where an entry's stored or compressed bytes lie in the file.
    func dataRange(_ e: Entry) throws -> Range<Int> {
        let r = ByteReader(data: bytes) { self.fail("entry '\(e.name)': \($0)") }
        guard try r.u32(e.localHeaderOffset) == 0x0403_4B50 else {
            throw fail("entry '\(e.name)': no local file header at offset \(e.localHeaderOffset)")
        }
        let start = e.localHeaderOffset + 30 + Int(try r.u16(e.localHeaderOffset + 26)) + Int(try r.u16(e.localHeaderOffset + 28))
        guard start <= bytes.count, e.compressedSize <= bytes.count - start else {
            throw fail("entry '\(e.name)': \(e.compressedSize) compressed bytes at offset \(start) run past the end of the \(bytes.count)-byte file")
        }
        return start..<start + e.compressedSize
    }

    /// Streams one entry: `body` reads the payload through the reader, which checks the
    /// declared size and, once everything is read, the end of the stream and the CRC-32.
    func withEntry<T>(_ e: Entry, _ body: (EntryReader) throws -> T) throws -> T {
        let range = try dataRange(e)
        guard e.method == 0 || e.method == 8 else {
            throw fail("entry '\(e.name)': compression method \(e.method) is not supported (stored or deflated only)")
        }
        if e.method == 0 && e.compressedSize != e.uncompressedSize {
            throw fail("entry '\(e.name)' is stored with \(e.compressedSize) bytes but declares \(e.uncompressedSize)")
        }
        return try bytes.withUnsafeBytes { all -> T in
            let input = UnsafeRawBufferPointer(rebasing: all[range.lowerBound..<range.upperBound])
            let reader = try EntryReader(entry: e, input: input, archivePath: path)
            defer { reader.close() }
            let value = try body(reader)
            try reader.finish()
            return value
        }
    }
}

/// Reads an entry's payload in order: copied when stored, inflated with zlib (raw
/// deflate) when deflated. Never produces more than the declared size.
final class EntryReader {
    let entry: NPZArchive.Entry
    private let input: UnsafeRawBufferPointer
    private let archivePath: String
    private var stream: UnsafeMutablePointer<z_stream>?
    private var storedPosition = 0
    private var ended = false
    private var crc: uLong = 0
    /// Payload bytes handed out so far.
    private(set) var produced = 0

    init(entry: NPZArchive.Entry, input: UnsafeRawBufferPointer, archivePath: String) throws {
        self.entry = entry; self.input = input; self.archivePath = archivePath
        crc = MPQZlib.crc32(0, nil, 0)
        if entry.method == 8 {
            // Heap-allocated: zlib keeps a pointer back to the stream and must not see it move.
            let s = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
            s.initialize(to: z_stream())
            guard inflateInit2_(s, -MAX_WBITS, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
                s.deinitialize(count: 1); s.deallocate()
                throw ModelError.badData(path: archivePath, reason: "entry '\(entry.name)': cannot start zlib")
            }
            stream = s
        }
    }

    func close() {
        guard let s = stream else { return }
        inflateEnd(s)
        s.deinitialize(count: 1); s.deallocate()
        stream = nil
    }

    private func fail(_ reason: String) -> ModelError {
        .badData(path: archivePath, reason: "entry '\(entry.name)': \(reason)")
    }

    /// Fills `out` completely, or throws when the entry is shorter, corrupt, or would
    /// exceed its declared size.
    func fill(_ out: UnsafeMutableRawBufferPointer) throws {
        guard out.count > 0 else { return }
        guard out.count <= entry.uncompressedSize - produced else {
            throw fail("reading \(out.count) bytes at \(produced) would exceed the declared \(entry.uncompressedSize)")
        }
        if let s = stream {
            try inflate(s, into: out)
        } else {
            out.copyMemory(from: UnsafeRawBufferPointer(rebasing: input[storedPosition..<storedPosition + out.count]))
            storedPosition += out.count
        }
        crc = updateCRC(crc, UnsafeRawBufferPointer(out))
        produced += out.count
    }

    /// Reads `count` bytes into a new array.
    func read(_ count: Int) throws -> [UInt8] {
        var a = [UInt8](repeating: 0, count: count)
        try a.withUnsafeMutableBytes { try fill($0) }
        return a
    }

    private func inflate(_ s: UnsafeMutablePointer<z_stream>, into out: UnsafeMutableRawBufferPointer) throws {
        guard !ended else { throw fail("the deflate stream ends after \(produced) of \(entry.uncompressedSize) declared bytes") }
        let base = out.baseAddress!.assumingMemoryBound(to: Bytef.self)
        var done = 0
        while done < out.count {
            let want = min(out.count - done, Int(UInt32.max))
            s.pointee.next_out = base + done
            s.pointee.avail_out = uInt(want)
            feed(s)
            let inBefore = s.pointee.avail_in
            let r = MPQZlib.inflate(s, Z_NO_FLUSH)
            let got = want - Int(s.pointee.avail_out)
            done += got
            switch r {
            case Z_STREAM_END:
                ended = true
                if done < out.count {
                    throw fail("the deflate stream ends after \(produced + done) of \(entry.uncompressedSize) declared bytes")
                }
            case Z_OK:
                // zlib always moves forward on Z_OK; stop rather than spin if it ever does not.
                if got == 0 && s.pointee.avail_in == inBefore { throw fail("the deflate stream makes no progress") }
            case Z_BUF_ERROR:
                if got == 0 { throw fail("the deflate stream is truncated after \(produced + done) of \(entry.uncompressedSize) bytes") }
            default:
                let message = s.pointee.msg.map { String(cString: $0) } ?? "zlib error \(r)"
                throw fail("corrupt deflate stream (\(message)) after \(produced + done) bytes")
            }
        }
    }

    /// Hands zlib the next part of the compressed bytes once it has consumed the last
    /// (at most 4 GiB at a time: `avail_in` is 32-bit).
    private func feed(_ s: UnsafeMutablePointer<z_stream>) {
        guard s.pointee.avail_in == 0 else { return }
        let consumed = Int(s.pointee.total_in)
        let chunk = max(min(input.count - consumed, Int(UInt32.max)), 0)
        s.pointee.next_in = UnsafeMutablePointer(mutating: input.baseAddress.map { $0.assumingMemoryBound(to: Bytef.self) + consumed })
        s.pointee.avail_in = uInt(chunk)
    }

    /// After the declared size: the stream must end there and the CRC-32 must match.
    func finish() throws {
        guard produced == entry.uncompressedSize else {
            throw fail("\(entry.uncompressedSize - produced) declared bytes were not read")
        }
        if let s = stream, !ended {
            // The end-of-stream marker may still be pending when the output filled exactly.
            var scratch: UInt8 = 0
            try withUnsafeMutablePointer(to: &scratch) { p in
                s.pointee.next_out = p
                s.pointee.avail_out = 1
                feed(s)
                let r = MPQZlib.inflate(s, Z_FINISH)
                if s.pointee.avail_out == 0 { throw fail("the deflate stream holds more than the declared \(entry.uncompressedSize) bytes") }
                if r != Z_STREAM_END {
                    let message = s.pointee.msg.map { String(cString: $0) } ?? "zlib error \(r)"
                    throw fail("corrupt or truncated deflate stream at its end (\(message))")
                }
            }
        }
        let got = UInt32(truncatingIfNeeded: crc)
        guard got == entry.crc32 else {
            throw fail(String(format: "bad CRC-32: the archive declares %08x, the data has %08x", entry.crc32, got))
        }
    }

    private func updateCRC(_ c: uLong, _ b: UnsafeRawBufferPointer) -> uLong {
        var c = c, offset = 0
        while offset < b.count {
            let n = min(b.count - offset, Int(UInt32.max))
            c = MPQZlib.crc32(c, b.baseAddress!.assumingMemoryBound(to: Bytef.self) + offset, uInt(n))
            offset += n
        }
        return c
    }
}

/// Little-endian fields at bounds-checked offsets.
private struct ByteReader {
    let data: Data
    let fail: (String) -> ModelError

    private func check(_ at: Int, _ n: Int) throws {
        guard at >= 0, n >= 0, at <= data.count, n <= data.count - at else {
            throw fail("a field at offset \(at) runs past the end of the \(data.count)-byte file")
        }
    }

    func bytes(_ at: Int, _ n: Int) throws -> Data {
        try check(at, n)
        return data[data.startIndex + at..<data.startIndex + at + n]
    }

    private func le(_ at: Int, _ n: Int) throws -> UInt64 {
        try check(at, n)
        var v: UInt64 = 0
        for k in 0..<n { v |= UInt64(data[data.startIndex + at + k]) << (8 * k) }
        return v
    }

    func u16(_ at: Int) throws -> UInt16 { UInt16(try le(at, 2)) }
    func u32(_ at: Int) throws -> UInt32 { UInt32(try le(at, 4)) }
    /// A 64-bit size or offset, which must fit an Int.
    func int64(_ at: Int) throws -> Int {
        let v = try le(at, 8)
        guard v <= UInt64(Int.max) else { throw fail("a 64-bit field at offset \(at) is out of range (\(v))") }
        return Int(v)
    }
}
