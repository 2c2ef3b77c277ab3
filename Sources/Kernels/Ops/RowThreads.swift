import Foundation

/// Threads for a C row kernel (`mpq_rowwise.h`) over `count` floats: all cores from 64k
/// floats up (a few tens of microseconds of work per core), else the calling thread, so
/// small tensors do not pay the pool's wake-up.
func rowThreads(_ count: Int) -> Int32 {
    count >= 1 << 16 ? Int32(coreCount) : 1
}
