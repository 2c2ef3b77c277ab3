import Dispatch
import Foundation

extension ConvOps {
    /// Parts one image's Conv GEMM splits into over the cores: 1 below ~2M MACs, where a
    /// fork/join costs about what the multiply does. With OpenBLAS's own threads, every
    /// layer of a batch-1 run forked and joined inside sgemm, and on a shared machine
    /// each of those joins waited for a busy core (the detector's batch-1 Convs at
    /// 0.2-1 GFLOP/s under load, `mpq profile`).
    static func singleImageParts(m: Int, pixels: Int, k: Int) -> Int {
        guard m * pixels * k >= 1 << 21, coreCount > 1 else { return 1 }
        return min(coreCount, 8)
    }

    /// One image, groups of 1, not depthwise: im2col split by input channels, then the
    /// GEMM split by pixels (columns of the im2col matrix; by output channels when there
    /// are fewer pixels than channels), each part a single-threaded sgemm on its slice
    /// followed by the bias and `epilogue` on that slice while it is in cache.
    static func convOneImageSplit(x: UnsafePointer<Float>, w: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                                  out: UnsafeMutablePointer<Float>, m: Int, g: WindowGeometry, channels: Int,
                                  parts: Int, epilogue: ConvEpilogue) {
        let outP = g.outputCount, inP = g.inputCount, k = channels * g.kernelCount
        let col: UnsafeMutablePointer<Float>? = g.isPointwise ? nil : .allocate(capacity: k * outP)
        defer { col?.deallocate() }
        let run = { (count: Int, body: (Int) -> Void) in
            if count > 1 { DispatchQueue.concurrentPerform(iterations: count, execute: body) } else { body(0) }
        }
        // One part: OpenBLAS's thread setting stays as it is (it runs small GEMMs on one
        // thread by itself).
        let body = {
            if let col {
                let chunks = min(parts, channels)
                run(chunks) { p in
                    let c0 = channels * p / chunks, c1 = channels * (p + 1) / chunks
                    im2col(src: x + c0 * inP, channels: c1 - c0, g, dst: col + c0 * g.kernelCount * outP)
                }
            }
            let bMat = UnsafePointer(col) ?? x
            if outP >= m {
                // Slices of whole 16-float vectors, so no two parts share a cache line.
                let blocks = (outP + 15) / 16
                let chunks = min(parts, blocks)
                run(chunks) { p in
                    let n0 = min(outP, blocks * p / chunks * 16), n1 = min(outP, blocks * (p + 1) / chunks * 16)
                    guard n0 < n1 else { return }
                    sgemm(m: m, n: n1 - n0, k: k, a: w, lda: k, b: bMat + n0, ldb: outP, c: out + n0, ldc: outP)
                    epilogue.apply(out + n0, rows: m, cols: n1 - n0, ld: outP, bias: bias)
                }
            } else {
                let chunks = min(parts, m)
                run(chunks) { p in
                    let m0 = m * p / chunks, m1 = m * (p + 1) / chunks
                    guard m0 < m1 else { return }
                    sgemm(m: m1 - m0, n: outP, k: k, a: w + m0 * k, lda: k, b: bMat, ldb: outP, c: out + m0 * outP, ldc: outP)
                    epilogue.apply(out + m0 * outP, rows: m1 - m0, cols: outP, ld: outP, bias: bias.map { $0 + m0 })
                }
            }
        }
        if parts > 1 { withSingleThreadedBLAS(body) } else { body() }
    }
}
