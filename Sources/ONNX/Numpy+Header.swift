import Foundation

/// The header of one `.npy` array, parsed with checked arithmetic: element count and
/// byte sizes overflow into an error naming the shape, never a trap.
struct NPYHeader {
    /// Longest header accepted (numpy writes 64-byte aligned headers of ~128 bytes).
    static let maxHeaderBytes = 1 << 20

    let descr: String
    let dtype: DType
    let shape: [Int]
    let count: Int
    /// Bytes of the payload in the file.
    let dataBytes: Int
    /// Bytes the decoded tensor takes in memory (Float storage for floats, Int64 for integers).
    let memoryBytes: Int

    /// Where the header ends (the payload's offset), from the first 10 (version 1) or 12 bytes.
    static func headerEnd(_ prefix: [UInt8], path: String) throws -> Int {
        guard prefix.count >= 10, prefix[0] == 0x93, Array(prefix[1...5]) == Array("NUMPY".utf8) else {
            throw ModelError.badData(path: path, reason: "not a .npy array (bad magic)")
        }
        let length: Int, start: Int
        switch prefix[6] {
        case 1:
            length = Int(prefix[8]) | Int(prefix[9]) << 8; start = 10
        case 2, 3:
            guard prefix.count >= 12 else { throw ModelError.badData(path: path, reason: "truncated .npy header") }
            length = Int(prefix[8]) | Int(prefix[9]) << 8 | Int(prefix[10]) << 16 | Int(prefix[11]) << 24
            start = 12
        default:
            throw ModelError.badData(path: path, reason: "unsupported .npy format version \(prefix[6]).\(prefix[7])")
        }
        guard length <= maxHeaderBytes else {
            throw ModelError.badData(path: path, reason: ".npy header of \(length) bytes is longer than the \(maxHeaderBytes) accepted")
        }
        return start + length
    }

    /// Parses the header; `bytes` runs from the magic to the end of the header.
    init(bytes: [UInt8], path: String) throws {
        let start = bytes.count >= 7 && bytes[6] == 1 ? 10 : 12
        let header = String(decoding: bytes.dropFirst(start), as: UTF8.self)
        guard let descr = Numpy.field(header, "descr").map({ $0.trimmingCharacters(in: CharacterSet(charactersIn: "'\" ")) }),
              let shapeText = Numpy.shapeField(header) else {
            throw ModelError.badData(path: path, reason: "unreadable .npy header \(header)")
        }
        if Numpy.field(header, "fortran_order")?.contains("True") == true {
            throw ModelError.badData(path: path, reason: "Fortran-ordered arrays are not supported; save with np.ascontiguousarray")
        }
        let shape = try shapeText.split(separator: ",").compactMap { part -> Int? in
            let s = part.trimmingCharacters(in: .whitespaces)
            if s.isEmpty { return nil }
            guard s.allSatisfy(\.isASCII), let v = Int(s), v >= 0 else {
                throw ModelError.badData(path: path, reason: "bad shape (\(shapeText))")
            }
            return v
        }
        let (dtype, bigEndian) = try Numpy.parseDescr(descr, path: path)
        guard !bigEndian || TensorDecoder.byteSize(dtype) == 1 else {
            throw ModelError.badData(path: path, reason: "big-endian dtype '\(descr)' is not supported")
        }
        var count = 1
        for d in shape {
            let (p, overflow) = count.multipliedReportingOverflow(by: d)
            guard !overflow else {
                throw ModelError.badData(path: path, reason: "shape \(Tensor.describe(shape)) has more elements than an array can hold")
            }
            count = p
        }
        let item = TensorDecoder.byteSize(dtype)
        let (data, o1) = count.multipliedReportingOverflow(by: item)
        let (memory, o2) = count.multipliedReportingOverflow(by: dtype.isFloating ? MemoryLayout<Float>.size : MemoryLayout<Int64>.size)
        guard !o1, !o2 else {
            throw ModelError.badData(path: path, reason: "array of shape \(Tensor.describe(shape)) (\(descr)) is larger than memory can address")
        }
        self.descr = descr; self.dtype = dtype; self.shape = shape; self.count = count
        self.dataBytes = data; self.memoryBytes = memory
    }
}
