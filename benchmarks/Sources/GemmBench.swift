// `mpq-bench gemm`: INT8 GEMM (every kernel path) vs OpenBLAS cblas_sgemm, same
// shapes, same run, single thread and all cores; plus the VNNI instruction peak,
// so the kernel can be reported as a fraction of what the core can issue.
import CKernels
import COpenBLAS
import Foundation

enum GemmBench {
    struct Options {
        var sizes = [256, 512, 1024, 2048]
        var warmup = 2            // untimed runs before each measurement
        var iterations = 10       // timed runs; min and median reported
        var threads = [1, ProcessInfo.processInfo.activeProcessorCount]
        var referenceMaxSize = 512  // the scalar reference is ~100x slower; skip it above this
        var peakIterations = 20_000_000
        /// 8: B drawn from all of int8; 7: from [-64, 64] (`--weight-bits 7`, ONNX Runtime's
        /// reduce_range), where every k pair's |w0| + |w1| <= 128 and the AVX2 path takes its
        /// vpmaddubsw tiles (exact for such B); ORT's AVX2 kernel multiplies the same way.
        var weightBits = 8
    }

    static func parse(_ args: [String]) -> Options? {
        var o = Options()
        var i = 0
        func ints(_ s: String) -> [Int]? {
            let v = s.split(separator: ",").compactMap { Int($0) }
            return v.isEmpty ? nil : v
        }
        while i < args.count {
            let flag = args[i]
            guard i + 1 < args.count, let value = ints(args[i + 1]) else {
                print("gemm: \(flag) needs a value\n" + usage)
                return nil
            }
            switch flag {
            case "--sizes": o.sizes = value
            case "--warmup": o.warmup = value[0]
            case "--iters": o.iterations = value[0]
            case "--threads": o.threads = value
            case "--reference-max": o.referenceMaxSize = value[0]
            case "--weight-bits" where value[0] == 7 || value[0] == 8: o.weightBits = value[0]
            default:
                print("gemm: unknown option \(flag)\n" + usage)
                return nil
            }
            i += 2
        }
        return o
    }

    static let usage = """
        usage: mpq-bench gemm [--sizes 256,512,1024,2048] [--warmup 2] [--iters 10]
                              [--threads 1,N] [--reference-max 512] [--weight-bits 8|7]
        """

    static func main(_ args: [String]) -> Int32 {
        guard let o = parse(args) else { return 2 }
        let env = ProcessInfo.processInfo.environment
        print("# mpq-bench gemm")
        print("OpenBLAS: \(String(cString: openblas_get_config())), core \(String(cString: openblas_get_corename()))")
        print("OPENBLAS_CORETYPE=\(env["OPENBLAS_CORETYPE"] ?? "(unset)") OPENBLAS_L2_SIZE=\(env["OPENBLAS_L2_SIZE"] ?? "(unset)")"
              + " MPQ_KERNEL_PATH=\(env["MPQ_KERNEL_PATH"] ?? "(unset)")")
        print("weights: " + (o.weightBits == 7 ? "7-bit, B in [-64, 64] (the AVX2 path's vpmaddubsw tiles)" : "8-bit, B in [-128, 127]"))
        print("warm-up \(o.warmup), iterations \(o.iterations); GOPS = 2*M*N*K / time; best = min time, med = median time\n")

        // The fraction of peak is taken against threads x the one-thread peak: on a
        // shared machine the measured all-core peak is only as good as the idlest core.
        let onePeak = measurePeaks(o)[1] ?? .nan
        var rows: [String] = []
        for size in o.sizes {
            for threads in o.threads {
                rows += bench(size: size, threads: threads, o: o, peak: onePeak * Double(threads))
            }
        }
        print("INT8 GEMM engine of the auto path on this CPU: \(String(cString: mpq_qgemm_engine_name(MPQ_PATH_AUTO)))"
              + " (AMX \(mpq_qgemm_amx_available() != 0 ? "available" : "not available"); MPQ_QGEMM_AMX=0 turns it off)\n")
        print("| size | threads | sgemm GFLOPS best / med | path | int8 GOPS best / med | int8 / sgemm (best, med) | % of threads x 1-thread VNNI peak (best) |")
        print("|---:|---:|---:|---|---:|---:|---:|")
        rows.forEach { print($0) }
        return 0
    }

    /// VNNI peak per thread count: every thread runs independent vpdpbusd chains.
    static func measurePeaks(_ o: Options) -> [Int: Double] {
        guard mpq_kernel_path_available(MPQ_PATH_VNNI) != 0 else {
            print("VNNI not available: no peak\n")
            return [:]
        }
        var peaks: [Int: Double] = [:]
        for threads in Set([1] + o.threads).sorted() {
            for (label, fn) in [("zmm", mpq_vnni_peak_ops), ("ymm", mpq_vnni256_peak_ops)] as [(String, (Int) -> Double)] {
                var ops = 0.0
                let t = BenchTiming.measure(warmup: 1, iterations: 5) {
                    let perThread = UnsafeMutableBufferPointer<Double>.allocate(capacity: threads)
                    DispatchQueue.concurrentPerform(iterations: threads) { perThread[$0] = fn(o.peakIterations) }
                    ops = perThread.reduce(0, +)
                    perThread.deallocate()
                }
                let gops = ops / t.min * 1e-9
                print(String(format: "VNNI peak (%@ vpdpbusd, %d thread%@): %.1f GOPS best, %.1f med",
                             label, threads, threads == 1 ? "" : "s", gops, ops / t.median * 1e-9))
                peaks[threads] = max(peaks[threads] ?? 0, gops)
            }
        }
        print("")
        return peaks
    }

    static func bench(size n: Int, threads: Int, o: Options, peak: Double) -> [String] {
        let sevenBit = o.weightBits == 7
        var rng = BenchRNG(state: UInt64(n))
        let ops = 2.0 * Double(n) * Double(n) * Double(n)
        // FP32 baseline.
        let af = (0..<(n * n)).map { _ in Float(Int(rng.next() % 255) - 127) / 127 }
        let bf = (0..<(n * n)).map { _ in Float(Int(rng.next() % 255) - 127) / 127 }
        var cf = [Float](repeating: 0, count: n * n)
        openblas_set_num_threads(Int32(threads))
        let sgemm = BenchTiming.measure(warmup: o.warmup, iterations: o.iterations) {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(n), Int32(n), Int32(n), 1,
                        af, Int32(n), bf, Int32(n), 0, &cf, Int32(n))
        }
        let sBest = ops / sgemm.min * 1e-9, sMed = ops / sgemm.median * 1e-9

        // INT8: A [n][n] u8, B [n][n] s8 (one row per output column), packed once, outside the timing.
        let a = (0..<(n * n)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        let b = (0..<(n * n)).map { _ in sevenBit ? Int8(Int(rng.next() % 129) - 64) : Int8(truncatingIfNeeded: rng.next()) }
        var packed = [UInt8](repeating: 0, count: mpq_pack_b_s8_size(Int32(n), Int32(n)))
        _ = b.withUnsafeBufferPointer { bp in packed.withUnsafeMutableBytes { mpq_pack_b_s8(bp.baseAddress, Int32(n), Int32(n), Int32(n), $0.baseAddress) } }
        var c = [Int32](repeating: 0, count: n * n)
        var out = [Float](repeating: 0, count: n * n)
        let scales = [Float](repeating: 0.01, count: n), bias = [Float](repeating: 0.5, count: n)

        var rows: [String] = []
        func row(_ label: String, _ t: BenchTiming) {
            let best = ops / t.min * 1e-9, med = ops / t.median * 1e-9
            rows.append(String(format: "| %d | %d | %.1f / %.1f | %@ | %.1f / %.1f | %.2fx, %.2fx | %.0f%% |",
                               n, threads, sBest, sMed, label, best, med, best / sBest, med / sMed, 100 * best / peak))
        }
        let paths = [MPQ_PATH_REFERENCE, MPQ_PATH_AVX2, MPQ_PATH_VNNI].filter {
            mpq_kernel_path_available($0) != 0 && ($0 != MPQ_PATH_REFERENCE || n <= o.referenceMaxSize)
        }
        // The VNNI path twice where the CPU has AMX: its VNNI kernel (AMX off), then AMX tiles.
        let engines: [(mpq_kernel_path, Int32)] = paths.flatMap { path -> [(mpq_kernel_path, Int32)] in
            path == MPQ_PATH_VNNI && mpq_qgemm_amx_available() != 0 ? [(path, Int32(0)), (path, Int32(1))] : [(path, Int32(-1))]
        }
        defer { _ = mpq_set_qgemm_amx(-1) }
        a.withUnsafeBufferPointer { ap in
            packed.withUnsafeBytes { pp in
                for (path, amx) in engines {
                    _ = mpq_set_qgemm_amx(amx)
                    let name = String(cString: mpq_qgemm_engine_name(path))
                    let iters = path == MPQ_PATH_REFERENCE ? min(o.iterations, 3) : o.iterations
                    let t = BenchTiming.measure(warmup: path == MPQ_PATH_REFERENCE ? 0 : o.warmup, iterations: iters) {
                        c.withUnsafeMutableBufferPointer {
                            _ = mpq_qgemm_u8s8(path, Int32(n), Int32(n), Int32(n), ap.baseAddress, Int32(n), pp.baseAddress,
                                               128, $0.baseAddress, Int32(n), Int32(threads))
                        }
                    }
                    row(name + " int32", t)
                    if path == MPQ_PATH_REFERENCE { continue }
                    let tf = scales.withUnsafeBufferPointer { sp in
                        bias.withUnsafeBufferPointer { bp in
                            var ep = mpq_epilogue(a_zero_point: 128, a_scale: 0.02, b_scale: sp.baseAddress, bias: bp.baseAddress,
                                                  clamp_lo: 0, clamp_hi: .infinity, bias_i32: nil, out_scale: 0)
                            return BenchTiming.measure(warmup: o.warmup, iterations: o.iterations) {
                                out.withUnsafeMutableBufferPointer {
                                    _ = mpq_qgemm_u8s8_f32(path, Int32(n), Int32(n), Int32(n), ap.baseAddress, Int32(n), pp.baseAddress,
                                                           &ep, $0.baseAddress, Int32(n), Int32(threads))
                                }
                            }
                        }
                    }
                    row(name + " f32+bias+relu", tf)
                }
            }
        }
        return rows
    }
}
