import CKernels
import Foundation

/// The cores this process may use, read once: on Linux `activeProcessorCount` reads cgroup
/// files on every call, which cost more than a small Conv (digits_cnn at batch 1: 0.17 ->
/// 0.3 ms when asked per Conv). It ignores the affinity mask, so the smaller of it and the
/// mask's CPUs (`taskset -c 0` runs one thread, not two taking turns on one CPU).
let processCoreCount: Int = {
    let foundation = max(1, ProcessInfo.processInfo.activeProcessorCount)
    let mask = Int(mpq_affinity_cpu_count())
    return mask > 0 ? min(foundation, mask) : foundation
}()

/// The cores the calling thread may split work over: every thread-count decision of the
/// runtime reads this. 1 inside a task that already owns a core (`mpq_set_single_threaded`,
/// the session's image chains), else `processCoreCount`.
var coreCount: Int { mpq_single_threaded() != 0 ? 1 : processCoreCount }
