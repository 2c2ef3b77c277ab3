import CKernels
import XCTest
import ONNX
@testable import Kernels

/// mpq's FP32 GEMM for a constant weight (`mpq_slinear_f32`, docs/fp32-gemm.md "Linear"):
/// every path and thread count against the scalar reference bit for bit, the reference
/// against a naive double-precision product, the bias epilogue against a separate add,
/// and Gemm / MatMul on it against the same ops on OpenBLAS, over shapes around the 6 x 64
/// tile and the 256-deep K block.
final class FP32LinearGemmTests: XCTestCase {
    /// The Conv GEMM's bound (FP32GemmTests): |got - exact| <= 1e-5 x sum |a b| + 1e-6.
    static let relativeTolerance = FP32GemmTests.relativeTolerance
    static let absoluteFloor = FP32GemmTests.absoluteFloor

    var paths: [mpq_kernel_path] {
        [MPQ_PATH_AUTO] + [MPQ_PATH_AVX2, MPQ_PATH_VNNI].filter { mpq_kernel_path_available($0) != 0 }
    }

    /// (m, k, n): rows 1-13 and 128 (MR 6), K across the 256 block (255-257, 600), N across
    /// vectors and panels (1, 15-17, 63-65, 130, 300: the column groups of a split; one row
    /// over 300 columns: a classifier head at batch 1, split by columns only).
    static let shapes: [(Int, Int, Int)] = [
        (1, 1, 1), (5, 3, 17), (6, 16, 64), (7, 255, 65), (13, 257, 130), (2, 600, 15),
        (128, 40, 300), (37, 256, 63), (12, 513, 16), (61, 384, 384), (1, 300, 300),
    ]

    static func data(m: Int, k: Int, n: Int, seed: UInt64) -> (a: [Float], b: [Float], bias: [Float]) {
        var rng = TestRNG(seed: seed)
        return ((0..<m * k).map { _ in rng.float(-2...2) }, (0..<k * n).map { _ in rng.float(-1...1) },
                (0..<n).map { j in j % 5 == 2 ? 0 : rng.float(-1...1) })
    }

    static func run(_ a: [Float], m: Int, packed: PackedLinearWeights, bias: [Float]?, path: mpq_kernel_path, threads: Int32) -> [Float] {
        a.withUnsafeBufferPointer { LinearOps.packedProduct(a: $0.baseAddress!, m: m, packed: packed, bias: bias, path: path, threads: threads) }
    }

    /// B [k][n] transposed to [n][k] (what a Gemm with transB = 1 stores).
    static func transposed(_ b: [Float], k: Int, n: Int) -> [Float] {
        (0..<n * k).map { i in b[(i % k) * n + i / k] }
    }

    /// Both packed layouts (wide rows for the AVX-512 tile, 16-column runs for the AVX2 one),
    /// whichever the host packs by default.
    static let layouts: [Int32] = [Int32(MPQ_SLINEAR_LAYOUT_WIDE), Int32(MPQ_SLINEAR_LAYOUT_SUB16)]

    func testEveryPathAndThreadCountEqualsReferenceAndReferenceMatchesNaiveProduct() {
        var covered = Set<String>()
        for (s, (m, k, n)) in Self.shapes.enumerated() {
            let (a, b, bias) = Self.data(m: m, k: k, n: n, seed: UInt64(s + 1))
            let wide = PackedLinearWeights(Tensor(shape: [k, n], floats: b), k: k, n: n, transB: false,
                                           layout: Int32(MPQ_SLINEAR_LAYOUT_WIDE))
            let ref = Self.run(a, m: m, packed: wide, bias: nil, path: MPQ_PATH_REFERENCE, threads: 1)
            let what = "m\(m) k\(k) n\(n)"
            for i in 0..<m {
                for j in 0..<n {
                    var exact = 0.0, mag = 0.0
                    for p in 0..<k { let t = Double(a[i * k + p]) * Double(b[p * n + j]); exact += t; mag += abs(t) }
                    let err = abs(Double(ref[i * n + j]) - exact)
                    XCTAssertLessThanOrEqual(err, Self.relativeTolerance * mag + Self.absoluteFloor, "\(what) [\(i), \(j)]")
                }
            }
            let refBias = Self.run(a, m: m, packed: wide, bias: bias, path: MPQ_PATH_REFERENCE, threads: 1)
            // The bias epilogue is one float add after the sum: a separate Add's bits.
            XCTAssertEqual(refBias.map(\.bitPattern), ref.indices.map { (ref[$0] + bias[$0 % n]).bitPattern }, what)
            for layout in Self.layouts {
                let packed = PackedLinearWeights(Tensor(shape: [k, n], floats: b), k: k, n: n, transB: false, layout: layout)
                let packedT = PackedLinearWeights(Tensor(shape: [n, k], floats: Self.transposed(b, k: k, n: n)), k: k, n: n,
                                                  transB: true, layout: layout)
                for path in [MPQ_PATH_REFERENCE] + paths {
                    for threads: Int32 in [1, 2, 3] {
                        let how = "\(what) layout \(layout) path \(path.rawValue) threads \(threads)"
                        let got = Self.run(a, m: m, packed: packed, bias: nil, path: path, threads: threads)
                        XCTAssertEqual(got.map(\.bitPattern), ref.map(\.bitPattern), how)
                        let gotBias = Self.run(a, m: m, packed: packedT, bias: bias, path: path, threads: threads)
                        XCTAssertEqual(gotBias.map(\.bitPattern), refBias.map(\.bitPattern), "\(how) transB, bias")
                        covered.insert(String(cString: mpq_kernel_path_name(mpq_resolve_kernel_path(path))))
                    }
                }
            }
        }
        print("FP32 linear GEMM paths covered: \(covered.sorted())")
    }

    /// B read in place (`mpq_slinear_f32_rows`, attention's products) against the same B
    /// packed, bit for bit: N in whole vectors (16-144: partial 64-column panels), K across
    /// the 256 block, rows around the 6-row tile, A's and B's rows padded (lda > k, ldb > n:
    /// what a strided head view passes), with a bias, every path and 1-3 threads. N not a
    /// multiple of 16 (the tiles load whole vectors) and short strides are refused.
    func testRowMajorBEqualsPackedB() {
        for (s, (m, k, n)) in [(1, 1, 16), (5, 31, 32), (7, 128, 32), (13, 32, 128), (128, 257, 48), (6, 600, 144),
                               (37, 256, 64), (20, 384, 80)].enumerated() {
            let (lda, ldb) = (k + s % 3, n + 16 * (s % 2) + (s % 3))
            var rng = TestRNG(seed: UInt64(100 + s))
            let a = (0..<m * lda).map { _ in rng.float(-2...2) }
            let b = (0..<k * ldb).map { _ in rng.float(-1...1) }
            let bias = (0..<n).map { _ in rng.float(-1...1) }
            let dense = (0..<k * n).map { i in b[(i / n) * ldb + i % n] }
            let packed = PackedLinearWeights(Tensor(shape: [k, n], floats: dense), k: k, n: n, transB: false)
            for path in [MPQ_PATH_REFERENCE] + paths {
                for threads: Int32 in [1, 2, 3] {
                    for withBias in [false, true] {
                        var want = [Float](repeating: .nan, count: m * n), got = want
                        a.withUnsafeBufferPointer { pa in
                            bias.withUnsafeBufferPointer { pbias in
                                XCTAssertEqual(mpq_slinear_f32(path, pa.baseAddress, Int32(m), Int32(lda), packed.pointer,
                                                               withBias ? pbias.baseAddress : nil, &want, Int32(n), threads), 0)
                                XCTAssertEqual(mpq_slinear_f32_rows(path, pa.baseAddress, Int32(m), Int32(lda), b, Int32(k), Int32(n),
                                                                    Int32(ldb), withBias ? pbias.baseAddress : nil, &got, Int32(n),
                                                                    threads), 0)
                            }
                        }
                        XCTAssertEqual(got.map(\.bitPattern), want.map(\.bitPattern),
                                       "m\(m) k\(k) n\(n) lda \(lda) ldb \(ldb) path \(path.rawValue) threads \(threads) bias \(withBias)")
                    }
                }
            }
        }
        var y = [Float](repeating: 0, count: 64)
        let a = [Float](repeating: 1, count: 64), b = [Float](repeating: 1, count: 64)
        XCTAssertEqual(mpq_slinear_f32_rows(MPQ_PATH_AUTO, a, 2, 8, b, 8, 8, 8, nil, &y, 8, 1), -1, "N = 8: not whole vectors")
        XCTAssertEqual(mpq_slinear_f32_rows(MPQ_PATH_AUTO, a, 1, 8, b, 2, 16, 8, nil, &y, 16, 1), -1, "ldb < n")
        XCTAssertEqual(mpq_slinear_f32_rows(MPQ_PATH_AUTO, a, 1, 4, b, 2, 16, 16, nil, &y, 16, 1), 0)
        XCTAssertEqual(mpq_slinear_f32_rows(MPQ_PATH_AUTO, a, 1, 1, b, 2, 16, 16, nil, &y, 16, 1), -1, "lda < k")
    }

    /// The two layouts hold the same numbers in different places: packing twice gives the
    /// same header but for its layout field, and the sub-panel pack is the wide one with
    /// each panel's 16-column runs gathered (a packing that swapped two k or two columns
    /// would fail here even where a symmetric test product hides it).
    func testSubPanelLayoutIsTheWideOneRearranged() {
        for (k, n) in [(300, 130), (5, 17), (257, 64)] {
            let b = (0..<k * n).map { Float($0) }
            let wide = PackedLinearWeights(Tensor(shape: [k, n], floats: b), k: k, n: n, transB: false,
                                           layout: Int32(MPQ_SLINEAR_LAYOUT_WIDE))
            let sub = PackedLinearWeights(Tensor(shape: [k, n], floats: b), k: k, n: n, transB: false,
                                          layout: Int32(MPQ_SLINEAR_LAYOUT_SUB16))
            let floats = (Int(mpq_slinear_pack_weights_size(Int32(k), Int32(n))) - 64) / 4
            let w = UnsafeBufferPointer(start: (wide.pointer + 64).assumingMemoryBound(to: Float.self), count: floats)
            let s = UnsafeBufferPointer(start: (sub.pointer + 64).assumingMemoryBound(to: Float.self), count: floats)
            let panels = (n + 63) / 64
            var mismatches = 0, compared = 0
            for k0 in stride(from: 0, to: k, by: 256) {
                let kc = min(256, k - k0)
                for q in 0..<panels {
                    let width = (min(64, n - 64 * q) + 15) / 16 * 16, base = k0 * panels * 64 + q * 64 * kc
                    for kk in 0..<kc {
                        for j in 0..<width where s[base + (j / 16) * 16 * kc + kk * 16 + j % 16] != w[base + kk * width + j] {
                            mismatches += 1
                        }
                        compared += width
                    }
                }
            }
            XCTAssertEqual(mismatches, 0, "k\(k) n\(n): \(mismatches) of \(compared) packed floats misplaced")
            XCTAssertEqual(compared, k * ((n + 15) / 16 * 16), "k\(k) n\(n)")
            // Column 0 of row 1 is B[1][0] = n: the wide layout's second row.
            XCTAssertEqual(w[n <= 64 ? (n + 15) / 16 * 16 : 64], Float(n), "k\(k) n\(n) wide row 1")
        }
    }

    /// Gemm and MatMul on the packed GEMM against the same op on OpenBLAS: each within the
    /// tolerance of the exact product, so within twice it of each other.
    func testGemmAndMatMulAgreeWithOpenBLASPath() throws {
        var rng = TestRNG(seed: 99)
        func tensor(_ shape: [Int]) -> Tensor { Tensor(shape: shape, floats: (0..<shape.reduce(1, *)).map { _ in rng.float(-1...1) }) }
        func assertNear(_ got: Tensor, _ blas: Tensor, k: Int, _ what: String) {
            XCTAssertEqual(got.shape, blas.shape, what)
            // |a|, |b| <= 1 and |bias| <= 1: sum |a b| + |bias| <= k + 1.
            let bound = Float(2 * (Self.relativeTolerance * Double(k + 1) + Self.absoluteFloor))
            let worst = zip(got.floats, blas.floats).map { abs($0 - $1) }.max() ?? 0
            XCTAssertLessThanOrEqual(worst, bound, what)
        }
        for (m, k, n) in [(1, 512, 10), (16, 384, 384), (7, 257, 65), (3, 1, 1)] {
            let a = tensor([m, k])
            for transB in [false, true] {
                let b = tensor(transB ? [n, k] : [k, n])
                for (c, beta) in [(nil, Float(1)), (tensor([n]), 1), (tensor([1, n]), 0.5), (tensor([1]), 2), (tensor([m, n]), 1)] as [(Tensor?, Float)] {
                    func gemm(_ choice: FP32GemmChoice) throws -> Tensor {
                        try LinearOps.Gemm(a: a, b: b, c: c, alpha: 1, beta: beta, transA: false, transB: transB, gemm: choice)
                    }
                    assertNear(try gemm(.mpq), try gemm(.openblas), k: k, "Gemm m\(m) k\(k) n\(n) transB \(transB) C \(c?.shape ?? []) beta \(beta)")
                }
            }
            let b = tensor([k, n])
            let pairs: [(Tensor, Tensor)] = [(a, b), (tensor([2, m, k]), b), (a, Tensor(shape: [1, k, n], floats: b.floats)),
                                             (tensor([k]), b), (a, Tensor(shape: [k], floats: Array(b.floats[0..<k])))]
            for (x, w) in pairs {
                let got = try LinearOps.MatMul(a: x, b: w, gemm: .mpq), blas = try LinearOps.MatMul(a: x, b: w, gemm: .openblas)
                assertNear(got, blas, k: k, "MatMul \(x.shape) x \(w.shape)")
            }
        }
    }

    /// The rule: constant B only (a session's cached packing), OpenBLAS for transA, alpha,
    /// a C per row or per element, and `MPQ_FP32_GEMM=openblas`.
    func testDispatchRule() {
        XCTAssertTrue(LinearOps.usesPackedGemm(m: 128, k: 384, n: 384, choice: .auto))
        XCTAssertFalse(LinearOps.usesPackedGemm(m: 128, k: 384, n: 384, choice: .openblas))
        XCTAssertFalse(LinearOps.usesPackedGemm(m: 0, k: 384, n: 384, choice: .mpq))
        XCTAssertFalse(LinearOps.usesPackedGemm(m: 4, k: 0, n: 384, choice: .mpq))
        // A classifier head at batch 1 (512K multiply-adds): a big weight packs at any M and
        // streams on all cores; a small product stays on OpenBLAS and one thread.
        XCTAssertTrue(LinearOps.usesPackedGemm(m: 1, k: 512, n: 1000, choice: .auto))
        XCTAssertFalse(LinearOps.usesPackedGemm(m: 1, k: 64, n: 64, choice: .auto))
        XCTAssertEqual(LinearOps.packedGemmThreads(macs: 512 * 1000, weights: 512 * 1000), Int32(min(coreCount, 64)))
        XCTAssertEqual(LinearOps.packedGemmThreads(macs: 64 * 1000, weights: 64 * 1000), 1)
        XCTAssertTrue(LinearOps.packedBias(nil, beta: 1, n: 3) != nil, "no C: a bias of nil, not a refusal")
        XCTAssertEqual(LinearOps.packedBias(Tensor(shape: [1], floats: [2]), beta: 0.5, n: 3), .some([1, 1, 1]))
        XCTAssertEqual(LinearOps.packedBias(Tensor(shape: [1, 3], floats: [1, 2, 3]), beta: 1, n: 3), .some([1, 2, 3]))
        XCTAssertTrue(LinearOps.packedBias(Tensor(shape: [2, 1], floats: [1, 2]), beta: 1, n: 3) == nil, "C per row: refused")
        XCTAssertTrue(LinearOps.packedBias(Tensor(shape: [2, 3], floats: [1, 2, 3, 4, 5, 6]), beta: 1, n: 3) == nil,
                      "C per element: refused")
    }

    /// A session packs each constant weight once and reuses it; a tensor that only has the
    /// constant's name (a feed replacing an initializer) is not packed (OpenBLAS runs it).
    func testSessionPacksConstantWeightsOnce() {
        let w = Tensor(shape: [3, 4], floats: (0..<12).map { Float($0 % 7) - 3 })
        let cache = PreparedWeights(constants: ["w": w])
        let a = cache.linearWeights("w", w, k: 3, n: 4, transB: false), b = cache.linearWeights("w", w, k: 3, n: 4, transB: false)
        XCTAssertNotNil(a)
        XCTAssertTrue(a === b)
        var other = w
        other.floats[0] = 99  // copy-on-write: new storage, same name
        XCTAssertNil(cache.linearWeights("w", other, k: 3, n: 4, transB: false))
        XCTAssertNil(cache.linearWeights("x", w, k: 3, n: 4, transB: false))
    }
}
