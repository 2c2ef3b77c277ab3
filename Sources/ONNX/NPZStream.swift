import Foundation
import MPQZlib

/// One array of an `.npz` read by rows, never whole (docs/scale.md): a stored entry by file
/// offset (`pread`), a deflated one through a streaming inflater that keeps its position, so
/// batches read in order inflate the entry once per pass. Reading a row before the current
/// position restarts the inflater. Bytes come from `pread`, not a memory map, so pages read
/// once do not stay in the process's resident set.
///
/// Thread-safe (a lock around the cursor): evaluation reads batches from one thread, but a
/// `Dataset` is `Sendable`.
public final class NPZArrayStream: @unchecked Sendable {
    public let path: String
    /// The array's name (the entry name without `.npy`).
    public let name: String
    public private(set) var dtype: DType = .float32
    public private(set) var shape: [Int] = [0]
    public var rows: Int { shape[0] }
    private(set) var rowBytes = 0
    private(set) var rowElements = 0
    private let entry: NPZArchive.Entry
    /// A plain `.npy` file rather than an `.npz` entry: errors name the file alone, no CRC.
    private let isPlainNPY: Bool
    /// File offset of the entry's stored or compressed bytes.
    private let dataStart: Int
    /// Offset of the first row in the entry's uncompressed bytes (the `.npy` header's length).
    private var payloadStart = 0
    private let fd: Int32
    private let lock = NSLock()
    private var z: UnsafeMutablePointer<z_stream>?
    /// Uncompressed bytes produced since the inflater (re)started, and compressed bytes fed.
    private var produced = 0
    private var fed = 0
    /// Compressed bytes read ahead for zlib; fixed, so `next_in` stays valid between calls.
    private static let inputSize = 1 << 20
    private let input = UnsafeMutablePointer<Bytef>.allocate(capacity: NPZArrayStream.inputSize)
    private var ended = false

    /// Opens every array of `path` for streaming, keyed by name. A plain `.npy` file (by its
    /// magic bytes) is one array named `input`: the single input of a model.
    public static func open(path: String) throws -> [String: NPZArrayStream] {
        try FileKind.requireRegularFile(path, expected: "an .npz file")
        if Numpy.isNPY(path: path) { return ["input": try NPZArrayStream(npy: path)] }
        let archive = try NPZArchive(path: path)
        var out: [String: NPZArrayStream] = [:]
        for entry in archive.entries where !entry.name.hasSuffix("/") {
            let s = try NPZArrayStream(archive: archive, entry: entry)
            guard out[s.name] == nil else { throw ModelError.badData(path: path, reason: "array '\(s.name)' appears twice") }
            out[s.name] = s
        }
        return out
    }

    /// A plain `.npy` file: one stored "entry" that is the whole file, read by offset like a
    /// stored `.npz` entry (bounds-checked against the file's size; no CRC to check).
    convenience init(npy path: String) throws {
        var info = stat()
        guard stat(path, &info) == 0 else { throw ModelError.unreadable(path: path, reason: String(cString: strerror(errno))) }
        let size = Int(info.st_size)
        try self.init(path: path, entry: NPZArchive.Entry(name: "input.npy", method: 0, crc32: 0, compressedSize: size,
                                                          uncompressedSize: size, localHeaderOffset: 0),
                      dataStart: 0, isPlainNPY: true)
    }

    convenience init(archive: NPZArchive, entry: NPZArchive.Entry) throws {
        guard entry.method == 0 || entry.method == 8 else {
            throw ModelError.badData(path: archive.path, reason: "entry '\(entry.name)': compression method \(entry.method) is not supported (stored or deflated only)")
        }
        if entry.method == 0 && entry.compressedSize != entry.uncompressedSize {
            throw ModelError.badData(path: archive.path, reason: "entry '\(entry.name)' is stored with \(entry.compressedSize) bytes but declares \(entry.uncompressedSize)")
        }
        try self.init(path: archive.path, entry: entry, dataStart: try archive.dataRange(entry).lowerBound, isPlainNPY: false)
    }

    private init(path: String, entry: NPZArchive.Entry, dataStart: Int, isPlainNPY: Bool) throws {
        self.path = path
        self.entry = entry
        self.isPlainNPY = isPlainNPY
        name = entry.name.hasSuffix(".npy") ? String(entry.name.dropLast(4)) : entry.name
        self.dataStart = dataStart
        fd = openReadOnly(path)
        guard fd >= 0 else { throw ModelError.unreadable(path: path, reason: String(cString: strerror(errno))) }
        let entryPath = isPlainNPY ? path : "\(path):\(entry.name)"
        let size = entry.uncompressedSize
        var prefix = [UInt8](repeating: 0, count: min(size, 12))
        try prefix.withUnsafeMutableBytes { try read(at: 0, into: $0) }
        let end = try NPYHeader.headerEnd(prefix, path: entryPath)
        guard end >= prefix.count, end <= size else {
            throw ModelError.badData(path: entryPath, reason: "truncated .npy header (\(end) bytes declared, the entry has \(size))")
        }
        var headerBytes = [UInt8](repeating: 0, count: end)
        try headerBytes.withUnsafeMutableBytes { try read(at: 0, into: $0) }
        let header = try NPYHeader(bytes: headerBytes, path: entryPath)
        guard header.dataBytes == size - end else {
            throw ModelError.badData(path: entryPath, reason: "array of shape \(Tensor.describe(header.shape)) (\(header.descr)) needs \(header.dataBytes) data bytes, the \(isPlainNPY ? "file" : "entry") has \(size - end)")
        }
        guard let first = header.shape.first else {
            throw ModelError.badData(path: entryPath, reason: "a scalar cannot be streamed by rows")
        }
        dtype = header.dtype; shape = header.shape; payloadStart = end
        rowElements = first == 0 ? 0 : header.count / first
        rowBytes = rowElements * TensorDecoder.byteSize(header.dtype)
    }

    deinit {
        if let s = z { inflateEnd(s); s.deinitialize(count: 1); s.deallocate() }
        input.deallocate()
        closeFile(fd)
    }

    /// Rows `range`, decoded like `Numpy.readNPZ` decodes the whole array.
    public func rows(_ range: Range<Int>) throws -> Tensor {
        precondition(range.lowerBound >= 0 && range.upperBound <= rows)
        var raw = Data(count: range.count * rowBytes)
        try lock.withLock {
            try raw.withUnsafeMutableBytes { try read(at: payloadStart + range.lowerBound * rowBytes, into: $0) }
        }
        return TensorDecoder.decodeRaw(raw, dtype: dtype, shape: [range.count] + shape.dropFirst(), count: range.count * rowElements)
    }

    /// Reads the whole entry once, in chunks of about `chunkBytes`, handing each block of rows
    /// (and its first row) to `body`, and checks the CRC-32 of the entry: the checks a full
    /// load makes, in bounded memory.
    public func scan(chunkBytes: Int = 16 << 20, _ body: (Tensor, Int) throws -> Void) throws {
        let step = max(1, chunkBytes / max(rowBytes, 1))
        var crc = MPQZlib.crc32(0, nil, 0)
        var header = [UInt8](repeating: 0, count: payloadStart)
        try lock.withLock {
            try header.withUnsafeMutableBytes { try read(at: 0, into: $0) }
        }
        crc = header.withUnsafeBytes { MPQZlib.crc32(crc, $0.baseAddress?.assumingMemoryBound(to: Bytef.self), uInt($0.count)) }
        var start = 0
        while start < rows {
            let r = start..<min(start + step, rows)
            var raw = Data(count: r.count * rowBytes)
            try lock.withLock {
                try raw.withUnsafeMutableBytes { try read(at: payloadStart + r.lowerBound * rowBytes, into: $0) }
            }
            crc = raw.withUnsafeBytes { b in
                var c = crc, off = 0
                while off < b.count {
                    let n = min(b.count - off, 1 << 30)
                    c = MPQZlib.crc32(c, b.baseAddress!.assumingMemoryBound(to: Bytef.self) + off, uInt(n))
                    off += n
                }
                return c
            }
            try body(TensorDecoder.decodeRaw(raw, dtype: dtype, shape: [r.count] + shape.dropFirst(), count: r.count * rowElements), r.lowerBound)
            start = r.upperBound
        }
        let got = UInt32(truncatingIfNeeded: crc)
        guard isPlainNPY || got == entry.crc32 else {
            throw fail(String(format: "bad CRC-32: the archive declares %08x, the data has %08x", entry.crc32, got))
        }
    }

    private func fail(_ reason: String) -> ModelError {
        .badData(path: path, reason: isPlainNPY ? reason : "entry '\(entry.name)': \(reason)")
    }

    /// Fills `out` with the entry's uncompressed bytes from `offset`. Caller holds the lock
    /// (or is `init`).
    private func read(at offset: Int, into out: UnsafeMutableRawBufferPointer) throws {
        guard out.count > 0 else { return }
        guard offset >= 0, out.count <= entry.uncompressedSize - offset else {
            throw fail("reading \(out.count) bytes at \(offset) would exceed the declared \(entry.uncompressedSize)")
        }
        if entry.method == 0 {
            var done = 0
            while done < out.count {
                let n = pread(fd, out.baseAddress! + done, out.count - done, off_t(dataStart + offset + done))
                guard n > 0 else { throw fail(n == 0 ? "the file ends inside the entry" : "read error: \(String(cString: strerror(errno)))") }
                done += n
            }
            return
        }
        if z == nil || offset < produced { try restart() }
        // Skip to `offset` through a scratch buffer, then inflate straight into `out`.
        var scratch = [UInt8](repeating: 0, count: min(1 << 20, max(offset - produced, 1)))
        while produced < offset {
            let n = min(scratch.count, offset - produced)
            try scratch.withUnsafeMutableBytes { try inflate(into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<n])) }
        }
        try inflate(into: out)
    }

    private func restart() throws {
        if z == nil {
            // Heap-allocated: zlib keeps a pointer back to the stream and must not see it move.
            let s = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
            s.initialize(to: z_stream())
            guard inflateInit2_(s, -MAX_WBITS, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
                s.deinitialize(count: 1); s.deallocate()
                throw fail("cannot start zlib")
            }
            z = s
        } else {
            inflateReset(z!)
        }
        produced = 0; fed = 0; ended = false
        z!.pointee.avail_in = 0
    }

    private func inflate(into out: UnsafeMutableRawBufferPointer) throws {
        let s = z!
        let base = out.baseAddress!.assumingMemoryBound(to: Bytef.self)
        var done = 0
        while done < out.count {
            guard !ended else { throw fail("the deflate stream ends after \(produced) of \(entry.uncompressedSize) declared bytes") }
            if s.pointee.avail_in == 0 {
                let n = min(Self.inputSize, entry.compressedSize - fed)
                guard n > 0 else { throw fail("the deflate stream is truncated after \(produced) of \(entry.uncompressedSize) bytes") }
                let got = pread(fd, input, n, off_t(dataStart + fed))
                guard got > 0 else { throw fail("the file ends inside the entry") }
                fed += got
                s.pointee.next_in = input
                s.pointee.avail_in = uInt(got)
            }
            let want = min(out.count - done, Int(UInt32.max))
            s.pointee.next_out = base + done
            s.pointee.avail_out = uInt(want)
            let r = MPQZlib.inflate(s, Z_NO_FLUSH)
            let got = want - Int(s.pointee.avail_out)
            done += got; produced += got
            switch r {
            case Z_STREAM_END: ended = true
            case Z_OK: break
            case Z_BUF_ERROR: if got == 0 && s.pointee.avail_in > 0 { throw fail("the deflate stream makes no progress") }
            default:
                let message = s.pointee.msg.map { String(cString: $0) } ?? "zlib error \(r)"
                throw fail("corrupt deflate stream (\(message)) after \(produced) bytes")
            }
        }
    }
}

private func openReadOnly(_ path: String) -> Int32 { open(path, O_RDONLY) }
private func closeFile(_ fd: Int32) { _ = close(fd) }
