import Foundation

extension Graph {
    /// A 64-bit FNV-1a digest of the graph's structure and weights, as 16 hex digits.
    /// Calibration tables and precision maps record it so they are never applied to a
    /// different model by mistake.
    public var digest: String {
        var h: UInt64 = 0xcbf29ce484222325
        func mix<S: Sequence>(_ bytes: S) where S.Element == UInt8 {
            for b in bytes { h = (h ^ UInt64(b)) &* 0x100000001b3 }
        }
        func mix(_ s: String) { mix(s.utf8); mix([0]) }
        for n in nodes {
            mix(n.name); mix(n.opType); n.inputs.forEach(mix); n.outputs.forEach(mix)
        }
        for name in initializers.keys.sorted() {
            let t = initializers[name]!
            mix(name); mix(t.shape.map(String.init).joined(separator: ","))
            if t.dtype.isFloating { t.floats.withUnsafeBytes { mix($0) } } else { t.ints.withUnsafeBytes { mix($0) } }
        }
        return String(format: "%016llx", h)
    }
}
