import Foundation

/// Threads for a C row kernel (`mpq_rowwise.h`) over `count` floats: all cores from 64k
/// floats up (a few tens of microseconds of work per core), else the calling thread, so
/// small tensors do not pay the pool's wake-up.
func rowThreads(_ count: Int) -> Int32 {
    count >= 1 << 16 ? Int32(coreCount) : 1
}

/// Threads for a 256-entry code table lookup of `count` codes (`mpq_lookup_u8_threads`): all
/// cores from 32,768 codes. One AVX2 core looks up 65,536 codes in ~11 us and two in ~7 (the
/// pool's hand-off included), 24,576 in 4.1 against 3.3 (s27; the detector's SiLUs at batch 1).
func lookupThreads(_ count: Int) -> Int32 {
    count >= 1 << 15 ? Int32(coreCount) : 1
}

/// Threads for a LayerNormalization row pass (the op, or the fused bias + residual chain) over
/// `count` floats: all cores from 16k floats. Its double-precision moments cost ~0.5 ns a
/// float on one core (MiniLM's [128 x 384] rows at batch 1: 23-29 us), so 16k floats are
/// ~8 us of work against the pool's hand-off of a few; at 64k (`rowThreads`) batch 1 of
/// MiniLM ran its 13 LayerNorms on one core. MiniLM FP32 batch 1, two threads: 16.36 -> 16.15
/// ms (model_env_ab.py, 6 rounds, s38). Rows are independent, so the bits do not change.
func normThreads(_ count: Int) -> Int32 {
    count >= 1 << 14 ? Int32(coreCount) : 1
}
