import Foundation
import SwiftProtobuf

/// Converts ONNX TensorProtos (initializers, Constant values, `.pb` test data) to tensors.
enum TensorDecoder {
    /// Decodes a tensor; `baseDirectory` resolves external data locations.
    static func decode(_ p: Onnx_TensorProto, baseDirectory: URL?) throws -> Tensor {
        let name = p.name
        guard let dtype = DType(onnxCode: Int(p.dataType)) else {
            throw ModelError.unsupportedDType(tensor: name, code: Int(p.dataType))
        }
        // Dims are checked before anything is sized from them: a product that overflows
        // traps, and a huge one aborts in the allocator.
        let shape = p.dims.map { Int($0) }
        if let problem = TensorLimits.sizeProblem(shape, dtype: dtype) {
            throw ModelError.invalidTensor(tensor: name, reason: problem)
        }
        let count = TensorLimits.product(shape)!
        var raw: Data? = p.hasRawData ? p.rawData : nil
        if p.dataLocation == .external {
            raw = try readExternal(p, baseDirectory: baseDirectory)
        }
        if let raw {
            let size = byteSize(dtype)
            guard raw.count == count * size else {
                throw ModelError.invalidGraph(reason: "tensor '\(name)' of shape \(Tensor.describe(shape)) and type \(dtype) needs \(count * size) bytes, it has \(raw.count)")
            }
            return decodeRaw(raw, dtype: dtype, shape: shape, count: count)
        }
        // Typed fields (see onnx.proto: which field holds which type).
        func check(_ n: Int) throws {
            guard n == count else {
                throw ModelError.invalidGraph(reason: "tensor '\(name)' of shape \(Tensor.describe(shape)) holds \(n) values, expected \(count)")
            }
        }
        switch dtype {
        case .float32:
            try check(p.floatData.count); return Tensor(shape: shape, floats: p.floatData)
        case .float64:
            try check(p.doubleData.count); return Tensor(shape: shape, floats: p.doubleData.map { Float($0) }, dtype: .float64)
        case .float16:
            try check(p.int32Data.count)
            return Tensor(shape: shape, floats: p.int32Data.map { halfToFloat(UInt16(truncatingIfNeeded: $0)) }, dtype: .float16)
        case .int64:
            try check(p.int64Data.count); return Tensor(shape: shape, ints: p.int64Data, dtype: .int64)
        case .uint32, .uint64:
            try check(p.uint64Data.count)
            return Tensor(shape: shape, ints: p.uint64Data.map { Int64(truncatingIfNeeded: $0) }, dtype: dtype)
        case .int32, .int16, .int8, .uint8, .uint16, .bool:
            try check(p.int32Data.count)
            return Tensor(shape: shape, ints: p.int32Data.map { dtype.wrap(Int64($0)) }, dtype: dtype)
        }
    }

    static func byteSize(_ t: DType) -> Int {
        switch t {
        case .float32, .int32, .uint32: return 4
        case .float64, .int64, .uint64: return 8
        case .float16, .int16, .uint16: return 2
        case .int8, .uint8, .bool: return 1
        }
    }

    /// Little-endian raw bytes to a tensor.
    static func decodeRaw(_ raw: Data, dtype: DType, shape: [Int], count: Int) -> Tensor {
        raw.withUnsafeBytes { (b: UnsafeRawBufferPointer) -> Tensor in
            func load<T: FixedWidthInteger>(_: T.Type) -> [Int64] {
                (0..<count).map { Int64(truncatingIfNeeded: T(littleEndian: b.loadUnaligned(fromByteOffset: $0 * MemoryLayout<T>.size, as: T.self))) }
            }
            switch dtype {
            case .float32:
                return Tensor(shape: shape, floats: (0..<count).map {
                    Float(bitPattern: UInt32(littleEndian: b.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) })
            case .float64:
                return Tensor(shape: shape, floats: (0..<count).map {
                    Float(Double(bitPattern: UInt64(littleEndian: b.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self)))) }, dtype: .float64)
            case .float16:
                return Tensor(shape: shape, floats: (0..<count).map {
                    halfToFloat(UInt16(littleEndian: b.loadUnaligned(fromByteOffset: $0 * 2, as: UInt16.self))) }, dtype: .float16)
            case .int64: return Tensor(shape: shape, ints: load(Int64.self), dtype: dtype)
            case .uint64: return Tensor(shape: shape, ints: load(UInt64.self).map { $0 }, dtype: dtype)
            case .int32: return Tensor(shape: shape, ints: load(Int32.self), dtype: dtype)
            case .uint32: return Tensor(shape: shape, ints: load(UInt32.self), dtype: dtype)
            case .int16: return Tensor(shape: shape, ints: load(Int16.self), dtype: dtype)
            case .uint16: return Tensor(shape: shape, ints: load(UInt16.self), dtype: dtype)
            case .int8: return Tensor(shape: shape, ints: load(Int8.self), dtype: dtype)
            case .uint8: return Tensor(shape: shape, ints: load(UInt8.self), dtype: dtype)
            case .bool: return Tensor(shape: shape, ints: load(UInt8.self).map { $0 != 0 ? 1 : 0 }, dtype: dtype)
            }
        }
    }

    /// Reads `location` (relative to the model's folder) at `offset`/`length`. The
    /// location must name a regular file inside the folder once symlinks are resolved,
    /// and offset/length must be plain non-negative integers inside it: anything else is
    /// an error naming the tensor, never a read of some other file or of byte 0.
    static func readExternal(_ p: Onnx_TensorProto, baseDirectory: URL?) throws -> Data {
        var kv: [String: String] = [:]
        for e in p.externalData { kv[e.key] = e.value }
        func fail(_ reason: String) -> ModelError { .externalData(tensor: p.name, reason: reason) }
        guard let location = kv["location"], !location.isEmpty else { throw fail("no 'location' entry") }
        guard !location.hasPrefix("/"), !location.split(separator: "/").contains("..") else {
            throw fail("location '\(location)' must stay inside the model's folder")
        }
        let folder = (baseDirectory ?? URL(fileURLWithPath: ".")).standardizedFileURL.resolvingSymlinksInPath()
        let url = folder.appendingPathComponent(location).standardizedFileURL.resolvingSymlinksInPath()
        let folderPath = folder.path.hasSuffix("/") ? folder.path : folder.path + "/"
        guard url.path == folder.path || url.path.hasPrefix(folderPath) else {
            throw fail("location '\(location)' resolves to \(url.path), outside the model's folder \(folder.path)")
        }
        // stat, not FileHandle: opening a folder "succeeds" and then traps in Foundation.
        var st = stat()
        guard stat(url.path, &st) == 0 else { throw fail("cannot open \(url.path): no such file") }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw fail("location '\(location)' is not a regular file (\(url.path))")
        }
        let fileSize = UInt64(st.st_size)
        func parse(_ key: String) throws -> UInt64? {
            guard let text = kv[key] else { return nil }
            guard !text.isEmpty, text.allSatisfy({ $0.isASCII && $0.isNumber }), let v = UInt64(text) else {
                throw fail("\(key) '\(text)' is not a non-negative integer")
            }
            return v
        }
        let offset = try parse("offset") ?? 0
        guard offset <= fileSize else {
            throw fail("offset \(offset) is past the end of \(url.lastPathComponent) (\(fileSize) bytes)")
        }
        let length = try parse("length") ?? (fileSize - offset)
        guard length <= fileSize - offset else {
            throw fail("\(url.lastPathComponent) has \(fileSize) bytes, the tensor needs bytes \(offset)..<\(offset) + \(length)")
        }
        guard Int(length) <= TensorLimits.maxBytes else {
            throw fail("length \(length) is over the limit of \(TensorLimits.describeBytes(TensorLimits.maxBytes)) (MPQ_MAX_TENSOR_BYTES)")
        }
        guard let handle = try? FileHandle(forReadingFrom: url) else { throw fail("cannot open \(url.path)") }
        defer { try? handle.close() }
        do {
            try handle.seek(toOffset: offset)
            return try handle.read(upToCount: Int(length)) ?? Data()
        } catch {
            throw fail("cannot read \(url.path): \(error.localizedDescription)")
        }
    }
}

/// IEEE half bits to Float.
@inline(__always)
public func halfToFloat(_ bits: UInt16) -> Float {
    Float(Float16(bitPattern: bits))
}

/// Reads one serialized TensorProto (ONNX's test-data `.pb` files).
public func loadTensorProto(at url: URL) throws -> (name: String, tensor: Tensor) {
    guard let data = try? Data(contentsOf: url) else { throw ModelError.fileNotFound(path: url.path) }
    let p: Onnx_TensorProto
    do { p = try Onnx_TensorProto(serializedBytes: data) } catch {
        throw ModelError.badData(path: url.path, reason: "not a TensorProto (\(error))")
    }
    return (p.name, try TensorDecoder.decode(p, baseDirectory: url.deletingLastPathComponent()))
}
