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
    public func layerToggles() throws -> [String: (layerFP32: Double, allInt8: Double)] {
        let names = runtime.layerNames
        var maps = [runtime.allInt8]
        for name in names {
            var m = runtime.allInt8
            m.layers[name] = .fp32
            maps.append(m)
        }
        let t = try secondsPerSample(maps)
        return Dictionary(uniqueKeysWithValues: names.enumerated().map { ($0.element, (t[$0.offset + 1], t[0])) })
    }

    /// The chosen map's latency next to FP32 and all-INT8, measured side by side.
    public func confirm(_ map: PrecisionMap) throws -> PrecisionMapDocument.LatencyRecord {
        let t = try secondsPerSample([runtime.allFP32, runtime.allInt8, map])
        func ms(_ s: Double) -> Double { round4(s * Double(rows) * 1e3) }
        return .init(batch: rows, repeats: repeats, fp32Ms: ms(t[0]), int8AllMs: ms(t[1]), mapMs: ms(t[2]),
                     kernelPath: runtime.path.resolved.rawValue)
    }
}
