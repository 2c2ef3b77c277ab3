import CKernels
import XCTest
@testable import Kernels

/// The `ort` scheme's region kernels in C (`mpq_requantize_f32`, `mpq_requantize_binary_f32`,
/// `mpq_lookup_u8grid_f32`): every path the machine has against the scalar reference, bit
/// for bit, over awkward lengths (the 16-lane tail) with ties, -0, saturation and NaN; and
/// the reference against the formula written out here in Swift (the one these kernels
/// replaced), so the runtime's numbers did not move.
final class RegionKernelPathTests: XCTestCase {
    static let lengths = Array(1...17) + [31, 32, 33, 63, 64, 65, 1000]
    static let quants: [(Float, UInt8)] = [(0.1, 0), (0.05, 128), (0.37, 255), (1, 3), (1 / 255, 0), (0.0713, 131)]

    /// Random values, halves of the grid (ties), extremes, NaN and infinities.
    func values(_ n: Int, scale: Float, seed: UInt64) -> [Float] {
        var rng = TestRNG(seed: seed)
        let special: [Float] = [0, -0.0, 0.5 * scale, 1.5 * scale, -2.5 * scale, 1e9, -1e9, .nan, .infinity, -.infinity]
        return (0..<n).map { i in
            switch rng.int(0...3) {
            case 0: return special[i % special.count]
            case 1: return (Float(rng.int(-300...300)) + 0.5) * scale
            default: return rng.float(-40...40) * scale
            }
        }
    }

    /// Swift's form of requantize: divide, clamp, round half to even, scale, + 0.
    func swiftRequant(_ r: Float, _ s: Float, _ zp: UInt8) -> Float {
        let lo = Float(0) - Float(zp), hi = Float(255) - Float(zp)
        var v = r / s
        v = v > lo ? v : lo
        v = v < hi ? v : hi
        return v.rounded(.toNearestOrEven) * s + 0
    }

    func testRequantizeAndBinaryEveryPathBitExact() {
        var cases = 0
        for (i, (s, zp)) in Self.quants.enumerated() {
            for n in Self.lengths {
                let a = values(n, scale: s, seed: UInt64(7 * n + i)), b = values(n, scale: s * 0.7, seed: UInt64(11 * n + i))
                let wantQ = a.map { swiftRequant($0, s, zp) }
                let wantAdd = zip(a, b).map { swiftRequant($0 + $1, s, zp) }
                let wantMul = zip(a, b).map { swiftRequant($0 * $1, s, zp) }
                for path in int8AvailablePaths {
                    var y = [Float](repeating: 7, count: n)
                    mpq_requantize_f32(path, a, n, s, zp, &y)
                    XCTAssertEqual(y.map(\.bitPattern), wantQ.map(\.bitPattern), "requantize \(int8PathName(path)) n \(n) s \(s) zp \(zp)")
                    var inPlace = a
                    inPlace.withUnsafeMutableBufferPointer { mpq_requantize_f32(path, $0.baseAddress, n, s, zp, $0.baseAddress) }
                    XCTAssertEqual(inPlace.map(\.bitPattern), wantQ.map(\.bitPattern), "in place \(int8PathName(path)) n \(n)")
                    mpq_requantize_binary_f32(path, 0, a, b, n, s, zp, &y)
                    XCTAssertEqual(y.map(\.bitPattern), wantAdd.map(\.bitPattern), "add \(int8PathName(path)) n \(n) s \(s) zp \(zp)")
                    mpq_requantize_binary_f32(path, 1, a, b, n, s, zp, &y)
                    XCTAssertEqual(y.map(\.bitPattern), wantMul.map(\.bitPattern), "mul \(int8PathName(path)) n \(n) s \(s) zp \(zp)")
                    cases += 1
                }
            }
        }
        print("region requantize/add/mul paths covered: \(int8AvailablePaths.map(int8PathName).joined(separator: ", ")) (\(cases) cases)")
    }

    func testLookupEveryPathBitExact() {
        var rng = TestRNG(seed: 3)
        let table = (0..<256).map { _ in rng.float(-5...5) }
        for (i, (s, zp)) in Self.quants.enumerated() {
            for n in Self.lengths {
                // On the grid (what the runtime feeds it) and off it (ties, NaN, saturation).
                var x = (0..<n).map { _ in (Float(rng.int(0...255)) - Float(zp)) * s + 0 }
                x += values(n, scale: s, seed: UInt64(13 * n + i))
                let want = x.map { v -> Float in
                    var k = (v / s).rounded(.toNearestOrEven) + Float(zp)
                    k = k > 0 ? k : 0
                    k = k < 255 ? k : 255
                    return table[Int(k)]
                }
                for path in int8AvailablePaths {
                    var y = [Float](repeating: 7, count: x.count)
                    mpq_lookup_u8grid_f32(path, x, x.count, s, zp, table, &y)
                    XCTAssertEqual(y.map(\.bitPattern), want.map(\.bitPattern), "lookup \(int8PathName(path)) n \(x.count) s \(s) zp \(zp)")
                }
            }
        }
        print("region lookup paths covered: \(int8AvailablePaths.map(int8PathName).joined(separator: ", "))")
    }
}
