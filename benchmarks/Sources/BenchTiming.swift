import Foundation

/// Times `body` after `warmup` untimed runs; `iterations` timed runs.
struct BenchTiming {
    let seconds: [Double]
    var min: Double { seconds.min() ?? .nan }
    var median: Double {
        let s = seconds.sorted()
        return s.isEmpty ? .nan : (s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2)
    }

    static func measure(warmup: Int, iterations: Int, _ body: () -> Void) -> BenchTiming {
        for _ in 0..<warmup { body() }
        var seconds: [Double] = []
        for _ in 0..<iterations {
            let t0 = DispatchTime.now().uptimeNanoseconds
            body()
            seconds.append(Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9)
        }
        return BenchTiming(seconds: seconds)
    }
}

/// Seeded SplitMix64 for benchmark inputs (values do not change speed, but runs stay reproducible).
struct BenchRNG {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
