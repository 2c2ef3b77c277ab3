import Foundation
import ZIPFoundation

/// NumPy `.npy` and `.npz` files: the data format mpq reads (and writes for outputs).
/// Supported: float32/64/16, int64/32/16/8, uint8/16/32/64, bool; little-endian, C order;
/// `.npz` entries stored or deflated.
public enum Numpy {
    /// Reads every array of an `.npz` file, keyed by name (without the `.npy` suffix).
    public static func readNPZ(path: String) throws -> [String: Tensor] {
        let url = URL(fileURLWithPath: path)
        guard FileManager.default.fileExists(atPath: path) else { throw ModelError.fileNotFound(path: path) }
        let archive: Archive
        do { archive = try Archive(url: url, accessMode: .read) } catch {
            throw ModelError.badData(path: path, reason: "not a zip/.npz archive (\(error))")
        }
        var out: [String: Tensor] = [:]
        for entry in archive where entry.type == .file {
            var bytes = Data()
            bytes.reserveCapacity(Int(entry.uncompressedSize))
            do {
                _ = try archive.extract(entry, skipCRC32: false) { bytes.append($0) }
            } catch {
                throw ModelError.badData(path: path, reason: "entry '\(entry.path)' cannot be extracted (\(error))")
            }
            let name = entry.path.hasSuffix(".npy") ? String(entry.path.dropLast(4)) : entry.path
            out[name] = try parseNPY(bytes, path: "\(path):\(entry.path)")
        }
        return out
    }

    /// Reads an `.npy` file, or an `.npz` when the name ends so (then `key` picks the array).
    public static func readNPY(path: String) throws -> Tensor {
        guard let data = FileManager.default.contents(atPath: path) else { throw ModelError.fileNotFound(path: path) }
        return try parseNPY(data, path: path)
    }

    /// Parses the bytes of one `.npy` array.
    public static func parseNPY(_ data: Data, path: String) throws -> Tensor {
        // Only the header is copied; the payload is decoded straight from `data`.
        let prefix = [UInt8](data.prefix(12))
        guard prefix.count >= 10, prefix[0] == 0x93, Array(prefix[1...5]) == Array("NUMPY".utf8) else {
            throw ModelError.badData(path: path, reason: "not a .npy array (bad magic)")
        }
        let major = prefix[6]
        let headerLen: Int, headerStart: Int
        if major == 1 {
            headerLen = Int(prefix[8]) | Int(prefix[9]) << 8; headerStart = 10
        } else {
            guard prefix.count >= 12 else { throw ModelError.badData(path: path, reason: "truncated .npy header") }
            headerLen = Int(prefix[8]) | Int(prefix[9]) << 8 | Int(prefix[10]) << 16 | Int(prefix[11]) << 24
            headerStart = 12
        }
        guard data.count >= headerStart + headerLen else { throw ModelError.badData(path: path, reason: "truncated .npy header") }
        let base = data.startIndex
        let header = String(decoding: data[base + headerStart..<base + headerStart + headerLen], as: UTF8.self)
        guard let descr = field(header, "descr").map({ $0.trimmingCharacters(in: CharacterSet(charactersIn: "'\" ")) }),
              let shapeText = shapeField(header) else {
            throw ModelError.badData(path: path, reason: "unreadable .npy header \(header)")
        }
        if field(header, "fortran_order")?.contains("True") == true {
            throw ModelError.badData(path: path, reason: "Fortran-ordered arrays are not supported; save with np.ascontiguousarray")
        }
        let shape = try shapeText.split(separator: ",").compactMap { part -> Int? in
            let s = part.trimmingCharacters(in: .whitespaces)
            if s.isEmpty { return nil }
            guard let v = Int(s), v >= 0 else { throw ModelError.badData(path: path, reason: "bad shape (\(shapeText))") }
            return v
        }
        let (dtype, bigEndian) = try parseDescr(descr, path: path)
        guard !bigEndian || TensorDecoder.byteSize(dtype) == 1 else {
            throw ModelError.badData(path: path, reason: "big-endian dtype '\(descr)' is not supported")
        }
        let count = shape.reduce(1, *)
        let start = headerStart + headerLen
        let need = count * TensorDecoder.byteSize(dtype)
        guard data.count - start >= need else {
            throw ModelError.badData(path: path, reason: "array of shape \(Tensor.describe(shape)) (\(descr)) needs \(need) data bytes, the file has \(data.count - start)")
        }
        return TensorDecoder.decodeRaw(data[data.startIndex + start..<data.startIndex + start + need],
                                       dtype: dtype, shape: shape, count: count)
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
        let descr: String
        switch t.dtype {
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
        let shapeText = t.shape.isEmpty ? "()" : t.shape.count == 1 ? "(\(t.shape[0]),)" : "(" + t.shape.map(String.init).joined(separator: ", ") + ")"
        var header = "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(shapeText), }"
        while (10 + header.utf8.count + 1) % 64 != 0 { header += " " }
        header += "\n"
        var d = Data([0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(header.utf8.count & 0xff), UInt8(header.utf8.count >> 8)])
        d.append(contentsOf: Array(header.utf8))
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

    /// Writes arrays as an uncompressed `.npz`, atomically (no partial file on failure).
    public static func writeNPZ(_ arrays: [String: Tensor], path: String) throws {
        let url = URL(fileURLWithPath: path)
        let tmp = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())")
        try? FileManager.default.removeItem(at: tmp)
        do {
            let archive = try Archive(url: tmp, accessMode: .create)
            for name in arrays.keys.sorted() {
                let data = npyData(arrays[name]!)
                try archive.addEntry(with: name + ".npy", type: .file, uncompressedSize: Int64(data.count),
                                     modificationDate: Date(timeIntervalSince1970: 315532800),
                                     compressionMethod: .none) { pos, size in
                    data.subdata(in: Int(pos)..<Int(pos) + size)
                }
            }
        } catch {
            try? FileManager.default.removeItem(at: tmp)
            throw ModelError.unreadable(path: path, reason: "cannot write (\(error))")
        }
        _ = try? FileManager.default.removeItem(at: url)
        try FileManager.default.moveItem(at: tmp, to: url)
    }
}
