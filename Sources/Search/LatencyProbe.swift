import Foundation
import Kernels
import ONNX

/// Whole-model latency of precision maps in mpq's runtime on one real batch: what
/// `--objective latency` optimises. Every number is a full `Session.run` of the model
/// (Q/DQ boundaries, region ops and the graph walk included), never a sum of isolated
/// per-layer micro-benchmarks, which miss what a layer's precision does to its neighbours.
///
/// Timings depend on the machine and its load, so a latency-driven search is deterministic
/// given the seed only for the same measured table: the table is recorded in the map
/// (`layers[].int8_saving_us`, `latency`), and docs/search.md says so.
public struct LatencyProbe {
    public let runtime: MixedPrecisionRuntime
    public let sample: [String: Tensor]
    /// Timed rounds per map (best of); every round times each map once, in turn, so slow
    /// phases of a shared machine hit all maps alike.
    public let repeats: Int

    public init(runtime: MixedPrecisionRuntime, sample: [String: Tensor], repeats: Int = 3) {
        self.runtime = runtime; self.sample = sample; self.repeats = max(1, repeats)
    }

    private var rows: Int { max(1, sample.values.first?.shape.first ?? 1) }

    /// Best-of-`repeats` seconds per sample of each map, measured interleaved after one
    /// untimed warm-up run of each.
    public func secondsPerSample(_ maps: [PrecisionMap]) throws -> [Double] {
        let saved = runtime.map
        defer { try? runtime.apply(saved) }
        var best = [Double](repeating: .infinity, count: maps.count)
        for round in 0...repeats {
            for (i, m) in maps.enumerated() {
                try runtime.apply(m)
                let start = DispatchTime.now().uptimeNanoseconds
                _ = try runtime.session.run(sample)
                let t = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
                if round > 0 { best[i] = min(best[i], t) }   // round 0 warms up
            }
        }
        return best.map { $0 / Double(rows) }
    }

    /// For every quantizable layer: seconds per sample with that layer alone in FP32 (every
    /// other layer INT8), and all-INT8. The difference is the layer's end-to-end INT8 saving.
    ///
    /// One layer is a small share of a pass, often below the run-to-run noise of a shared
    /// machine, and timing one all-INT8 reference against 50 toggles once per round let that
    /// noise decide (a MobileNetV2 shape measured 46 of 53 layers "slower in INT8" while
    /// all-INT8 ran at half FP32's time). So every toggle is timed next to its own all-INT8
    /// run, in alternating order from round to round, the saving is the median of those
    /// paired differences, and a layer counts as slower in INT8 only when every pair says so
    /// (a sign test: p = 2^-repeats); an inconsistent negative saving is reported as 0.
    public func layerToggles() throws -> [String: (layerFP32: Double, allInt8: Double)] {
        let saved = runtime.map
        defer { try? runtime.apply(saved) }
        let names = runtime.layerNames
        func time(_ m: PrecisionMap) throws -> Double {
            try runtime.apply(m)
            let start = DispatchTime.now().uptimeNanoseconds
            _ = try runtime.session.run(sample)
            return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 / Double(rows)
        }
        _ = try time(runtime.allInt8)   // warm-up
        var result: [String: (layerFP32: Double, allInt8: Double)] = [:]
        for name in names {
            var toggled = runtime.allInt8
            toggled.layers[name] = .fp32
            _ = try time(toggled)       // warm-up: a layer's first FP32 run may prepare it
            var refs: [Double] = [], diffs: [Double] = []
            for round in 0..<repeats {
                let (r, t): (Double, Double)
                if round % 2 == 0 { r = try time(runtime.allInt8); t = try time(toggled) } else { t = try time(toggled); r = try time(runtime.allInt8) }
                refs.append(r); diffs.append(t - r)
            }
            var saving = median(diffs)
            if saving < 0 && !diffs.allSatisfy({ $0 < 0 }) { saving = 0 }
            let ref = median(refs)
            result[name] = (ref + saving, ref)
        }
        return result
    }

    private func median(_ v: [Double]) -> Double {
        let s = v.sorted()
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }

    /// The chosen map's latency next to FP32 and all-INT8, measured side by side.
    public func confirm(_ map: PrecisionMap) throws -> PrecisionMapDocument.LatencyRecord {
        let t = try secondsPerSample([runtime.allFP32, runtime.allInt8, map])
        func ms(_ s: Double) -> Double { round4(s * Double(rows) * 1e3) }
        return .init(batch: rows, repeats: repeats, fp32Ms: ms(t[0]), int8AllMs: ms(t[1]), mapMs: ms(t[2]),
                     kernelPath: runtime.path.resolved.rawValue)
    }
}
