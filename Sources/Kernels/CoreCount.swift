import CKernels
import Foundation

/// The cores this process may use, read once: on Linux `activeProcessorCount` reads cgroup
/// files on every call, which cost more than a small Conv (digits_cnn at batch 1: 0.17 ->
/// 0.3 ms when asked per Conv).
let processCoreCount = max(1, ProcessInfo.processInfo.activeProcessorCount)

/// The cores the calling thread may split work over: every thread-count decision of the
/// runtime reads this. 1 inside a task that already owns a core (`mpq_set_single_threaded`,
/// the session's image chains), else `processCoreCount`.
var coreCount: Int { mpq_single_threaded() != 0 ? 1 : processCoreCount }
