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
