import Foundation
import ZIPFoundation

/// One array of an `.npz` written in pieces: its type and shape, and a reader of its data
/// bytes (as `Numpy.npyData` lays them out after the header), asked for in chunks.
public struct NPZEntrySource {
    public let name: String
    public let dtype: DType
    public let shape: [Int]
    /// Data bytes after the header: elements x element size.
    public let dataBytes: Int
    /// Bytes `offset..<offset + count` of the data.
    public let read: (_ offset: Int, _ count: Int) throws -> Data

    public init(name: String, dtype: DType, shape: [Int], dataBytes: Int, read: @escaping (Int, Int) throws -> Data) {
        self.name = name; self.dtype = dtype; self.shape = shape; self.dataBytes = dataBytes; self.read = read
    }
}

extension Numpy {
    /// Writes arrays as an uncompressed `.npz` without holding any of them whole: each entry
    /// is stored (its size, header plus data, known up front) and its CRC-32 computed as the
    /// chunks go by, so memory is one chunk. Same archive calls as `writeNPZ(_:path:)`, so the
    /// same arrays give the same bytes; atomic like it (OutputFile).
    public static func writeNPZ(streaming entries: [NPZEntrySource], path: String) throws {
        try OutputFile.write(to: path) { tmp in
            let archive = try Archive(url: URL(fileURLWithPath: tmp), accessMode: .create)
            for entry in entries.sorted(by: { $0.name < $1.name }) {
                let header = npyHeader(dtype: entry.dtype, shape: entry.shape)
                let total = header.count + entry.dataBytes
                try archive.addEntry(with: entry.name + ".npy", type: .file, uncompressedSize: Int64(total),
                                     modificationDate: Date(timeIntervalSince1970: 315532800),
                                     compressionMethod: .none) { pos, size in
                    let start = Int(pos), end = min(Int(pos) + size, total)
                    var chunk = Data()
                    if start < header.count { chunk.append(header.subdata(in: start..<min(end, header.count))) }
                    if end > header.count {
                        let from = max(start, header.count) - header.count
                        let piece = try entry.read(from, end - header.count - from)
                        guard piece.count == end - header.count - from else {
                            throw OutputError(path: path, reason: "array '\(entry.name)' gave \(piece.count) bytes where \(end - header.count - from) were due")
                        }
                        chunk.append(piece)
                    }
                    return chunk
                }
            }
        }
    }
}
