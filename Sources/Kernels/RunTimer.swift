import Foundation

/// Each plan node's wall time in one plain run, as the run executes it: image chains, the
/// blocked layout and every fusion on (`Session.profile`). The run loop laps it after every
/// node it runs; a chain's nodes are timed inside the chain (on whichever thread runs the
/// image) and the chain's wall time is then split over them in proportion, so the nodes of a
/// run add up to the run (less what precedes the first node and follows the last).
///
/// Why not time nodes node by node with an observer, as `profile` did before s29: observing a
/// node turns off the chains and the blocked layout, so on a chained CNN every node was timed
/// in a mode the real run never uses (the detector's nodes summed to 0.57 ms for a 0.53 ms run,
/// MobileNetV2's INT8 to 4.6 ms for 3.6).
final class RunTimer: @unchecked Sendable {
    private(set) var nanos: [UInt64]
    private var inChain: [UInt64]
    private let lock = NSLock()

    init(nodes: Int) {
        nanos = [UInt64](repeating: 0, count: nodes)
        inChain = nanos
    }

    func reset() {
        for i in nanos.indices { nanos[i] = 0; inChain[i] = 0 }
    }

    /// Node `i` ran from `mark` until now: its time; `mark` becomes now.
    func lap(_ i: Int, _ mark: inout UInt64) {
        let now = DispatchTime.now().uptimeNanoseconds
        nanos[i] += now &- mark
        mark = now
    }

    /// Node `i` of a running chain took `ns` (any thread: image by image, the chain's images
    /// run on several at once).
    func addInChain(_ i: Int, _ ns: UInt64) {
        lock.lock(); inChain[i] += ns; lock.unlock()
    }

    /// The chain over plan indices `range` ran from `mark` until now: its wall time, split over
    /// its nodes by their time inside it (on several threads those add up to more than the
    /// wall time; the rest, stacking the images' outputs, is spread the same way). `mark`
    /// becomes now.
    func closeChain(_ range: Range<Int>, _ mark: inout UInt64) {
        let now = DispatchTime.now().uptimeNanoseconds
        let wall = now &- mark
        mark = now
        lock.lock(); defer { lock.unlock() }
        let measured = range.reduce(UInt64(0)) { $0 + inChain[$1] }
        guard measured > 0 else {
            nanos[range.lowerBound] += wall
            return
        }
        for i in range {
            nanos[i] += UInt64((Double(inChain[i]) / Double(measured) * Double(wall)).rounded())
            inChain[i] = 0
        }
    }
}
