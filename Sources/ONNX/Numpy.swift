import Foundation
import ZIPFoundation

/// NumPy `.npy` and `.npz` files: the data format mpq reads (and writes for outputs).
/// Supported: float32/64/16, int64/32/16/8, uint8/16/32/64, bool; little-endian, C order;
/// `.npz` entries stored or deflated.
public enum Numpy {
    /// The most memory one data file may take once decoded, unless `MPQ_MAX_DATA_MB` says
    /// otherwise: 512 MiB (floats take 4 bytes an element in memory, integers 8).
    public static var defaultLimitBytes: Int {
        if let text = ProcessInfo.processInfo.environment["MPQ_MAX_DATA_MB"], let mb = Int(text), mb > 0 {
            return mb.multipliedReportingOverflow(by: 1 << 20).overflow ? Int.max : mb << 20
        }
        return 512 << 20
    }

    /// Reads every array of an `.npz` file, keyed by name (without the `.npy` suffix).
    /// Each entry's `.npy` header is read first and its declared size checked against the
    /// entry's size and `limitBytes` (decoded memory, all arrays together) before the rest
    /// is inflated; CRCs are checked (docs/data-validation.md).
    /// Arrays named in `skipping` are not read (a streamed input's).
    public static func readNPZ(path: String, limitBytes: Int = Numpy.defaultLimitBytes, skipping: Set<String> = []) throws -> [String: Tensor] {
        try FileKind.requireRegularFile(path, expected: "an .npz file")
        let archive = try NPZArchive(path: path)
        var out: [String: Tensor] = [:]
        var total = 0
        for entry in archive.entries where !entry.name.hasSuffix("/") {
            let name = entry.name.hasSuffix(".npy") ? String(entry.name.dropLast(4)) : entry.name
            if skipping.contains(name) { continue }
            let entryPath = "\(path):\(entry.name)"
            guard out[name] == nil else { throw ModelError.badData(path: path, reason: "array '\(name)' appears twice") }
            let tensor = try archive.withEntry(entry) { reader -> Tensor in
                let size = entry.uncompressedSize
                let prefix = try reader.read(min(size, 12))
                let end = try NPYHeader.headerEnd(prefix, path: entryPath)
                guard end >= prefix.count else { throw ModelError.badData(path: entryPath, reason: "unreadable .npy header (\(end) bytes)") }
                guard end <= size else {
                    throw ModelError.badData(path: entryPath, reason: "truncated .npy header (\(end) bytes declared, the entry has \(size))")
                }
                let header = try NPYHeader(bytes: prefix + (try reader.read(end - prefix.count)), path: entryPath)
                guard header.dataBytes == size - end else {
                    throw ModelError.badData(path: entryPath, reason: "array of shape \(Tensor.describe(header.shape)) (\(header.descr)) needs \(header.dataBytes) data bytes, the entry has \(size - end)")
                }
                let (sum, overflow) = total.addingReportingOverflow(header.memoryBytes)
                guard !overflow, sum <= limitBytes else {
                    throw ModelError.badData(path: entryPath, reason: "array of shape \(Tensor.describe(header.shape)) (\(header.descr)) takes \(describeBytes(header.memoryBytes)) in memory; with the arrays before it that is over the \(describeBytes(limitBytes)) limit for one data file (set MPQ_MAX_DATA_MB to raise it)")
                }
                total = sum
                var payload = Data(count: header.dataBytes)
                try payload.withUnsafeMutableBytes { try reader.fill($0) }
                return TensorDecoder.decodeRaw(payload, dtype: header.dtype, shape: header.shape, count: header.count)
            }
            out[name] = tensor
        }
        return out
    }

    /// Whether `path` starts with the `.npy` magic (`\x93NUMPY`); false for anything unreadable.
    public static func isNPY(path: String) -> Bool {
        // Only a regular file is opened: opening a FIFO for reading blocks until a writer
        // comes (a fuzz reproducer hung here); anything else is refused later, by name.
        guard FileKind(path: path) == .regular, let h = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? h.close() }
        return (try? h.read(upToCount: 6)) == Data([0x93] + Array("NUMPY".utf8))
    }

    /// Reads an `.npy` file.
    public static func readNPY(path: String) throws -> Tensor {
        try FileKind.requireRegularFile(path, expected: "an .npy file")
        guard let data = FileManager.default.contents(atPath: path) else { throw ModelError.fileNotFound(path: path) }
        return try parseNPY(data, path: path)
    }

    /// Parses the bytes of one `.npy` array.
    public static func parseNPY(_ data: Data, path: String) throws -> Tensor {
        let end = try NPYHeader.headerEnd([UInt8](data.prefix(12)), path: path)
        guard data.count >= end else { throw ModelError.badData(path: path, reason: "truncated .npy header") }
        let header = try NPYHeader(bytes: [UInt8](data.prefix(end)), path: path)
        guard data.count - end >= header.dataBytes else {
            throw ModelError.badData(path: path, reason: "array of shape \(Tensor.describe(header.shape)) (\(header.descr)) needs \(header.dataBytes) data bytes, the file has \(data.count - end)")
        }
        let base = data.startIndex + end
        return TensorDecoder.decodeRaw(data[base..<base + header.dataBytes], dtype: header.dtype, shape: header.shape, count: header.count)
    }

    static func describeBytes(_ n: Int) -> String {
        n >= 1 << 30 ? String(format: "%.1f GiB", Double(n) / Double(1 << 30))
            : n >= 1 << 20 ? String(format: "%.1f MiB", Double(n) / Double(1 << 20)) : "\(n) bytes"
    }

    static func parseDescr(_ d: String, path: String) throws -> (DType, Bool) {
        guard let order = d.first, let kind = d.dropFirst().first, let size = Int(d.dropFirst(2)) else {
            throw ModelError.badData(path: path, reason: "unsupported dtype '\(d)'")
        }
        let table: [String: DType] = ["f4": .float32, "f8": .float64, "f2": .float16, "i8": .int64, "i4": .int32,
                                      "i2": .int16, "i1": .int8, "u1": .uint8, "u2": .uint16, "u4": .uint32,
                                      "u8": .uint64, "b1": .bool]
        guard let t = table["\(kind)\(size)"] else {
            throw ModelError.badData(path: path, reason: "unsupported dtype '\(d)' (mpq reads float16/32/64, int8-64, uint8-64, bool)")
        }
        return (t, order == ">")
    }

    static func field(_ header: String, _ key: String) -> String? {
        guard let r = header.range(of: "'\(key)':") else { return nil }
        let rest = header[r.upperBound...]
        let end = rest.firstIndex(of: ",") ?? rest.endIndex
        return String(rest[..<end])
    }

    static func shapeField(_ header: String) -> String? {
        guard let r = header.range(of: "'shape':"), let open = header[r.upperBound...].firstIndex(of: "("),
              let close = header[open...].firstIndex(of: ")") else { return nil }
        return String(header[header.index(after: open)..<close])
    }

    /// Serialises a tensor as `.npy` (version 1.0, little-endian, C order).
    public static func npyData(_ t: Tensor) -> Data {
        var d = npyHeader(dtype: t.dtype, shape: t.shape)
        switch t.dtype {
        case .float32, .float16, .float64:
            t.floats.withUnsafeBytes { d.append(contentsOf: $0) }
        case .int64: t.ints.withUnsafeBytes { d.append(contentsOf: $0) }
        case .int32, .uint32: t.ints.map { Int32(truncatingIfNeeded: $0) }.withUnsafeBytes { d.append(contentsOf: $0) }
        case .int16, .uint16: t.ints.map { Int16(truncatingIfNeeded: $0) }.withUnsafeBytes { d.append(contentsOf: $0) }
        case .int8, .uint8, .bool: d.append(contentsOf: t.ints.map { UInt8(truncatingIfNeeded: $0) })
        case .uint64: t.ints.withUnsafeBytes { d.append(contentsOf: $0) }
        }
        return d
    }

    /// The `.npy` header (version 1.0, little-endian, C order) of an array of `shape`; its
    /// data follows as `npyData` writes it (floats as float32).
    public static func npyHeader(dtype: DType, shape: [Int]) -> Data {
        let descr: String
        switch dtype {
        case .float32, .float16, .float64: descr = "<f4"   // mpq computes floats in float32
        case .int64: descr = "<i8"
        case .int32: descr = "<i4"
        case .int16: descr = "<i2"
        case .int8: descr = "|i1"
        case .uint8: descr = "|u1"
        case .uint16: descr = "<u2"
        case .uint32: descr = "<u4"
        case .uint64: descr = "<u8"
        case .bool: descr = "|b1"
        }
        let shapeText = shape.isEmpty ? "()" : shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
        var header = "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(shapeText), }"
        while (10 + header.utf8.count + 1) % 64 != 0 { header += " " }
        header += "\n"
        var d = Data([0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(header.utf8.count & 0xff), UInt8(header.utf8.count >> 8)])
        d.append(contentsOf: Array(header.utf8))
        return d
    }

    /// Writes arrays as an uncompressed `.npz`, atomically (no partial file on failure),
    /// and only over a regular file (OutputFile).
    public static func writeNPZ(_ arrays: [String: Tensor], path: String) throws {
        try OutputFile.write(to: path) { tmp in
            let archive = try Archive(url: URL(fileURLWithPath: tmp), accessMode: .create)
            for name in arrays.keys.sorted() {
                let data = npyData(arrays[name]!)
                try archive.addEntry(with: name + ".npy", type: .file, uncompressedSize: Int64(data.count),
                                     modificationDate: Date(timeIntervalSince1970: 315532800),
                                     compressionMethod: .none) { pos, size in
                    data.subdata(in: Int(pos)..<Int(pos) + size)
                }
            }
        }
    }
}
