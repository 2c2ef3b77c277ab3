import CKernels
import XCTest

/// `mpq_run_ranges` (thread_pool.c, "Contiguous ranges"): the INT8 conv kernels' batch-1 split.
/// Every unit runs exactly once with a task index below the thread count, and a task takes its
/// own range front to back before it takes units from the back of the others' ranges.
final class PoolRangesTests: XCTestCase {
    /// What the callback records: per unit how often it ran and on which task, and (single
    /// threaded only, where no two calls overlap) the order of the units.
    /// Raw buffers, not arrays: two pool threads write different slots at the same time, which
    /// Swift's exclusivity checks would refuse on one array property.
    final class Record {
        let count: Int
        let runsBuffer: UnsafeMutablePointer<Int32>
        let taskBuffer: UnsafeMutablePointer<Int32>
        var order: [Int32] = []
        let keepOrder: Bool
        init(units: Int, keepOrder: Bool) {
            count = units
            runsBuffer = .allocate(capacity: max(units, 1))
            runsBuffer.initialize(repeating: 0, count: max(units, 1))
            taskBuffer = .allocate(capacity: max(units, 1))
            taskBuffer.initialize(repeating: -1, count: max(units, 1))
            self.keepOrder = keepOrder
        }
        deinit { runsBuffer.deallocate(); taskBuffer.deallocate() }
        var runs: [Int32] { Array(UnsafeBufferPointer(start: runsBuffer, count: count)) }
        var task: [Int32] { Array(UnsafeBufferPointer(start: taskBuffer, count: count)) }
    }

    private static let record: @convention(c) (UnsafeMutableRawPointer?, Int32, Int32) -> Void = { arg, unit, task in
        let r = Unmanaged<Record>.fromOpaque(arg!).takeUnretainedValue()
        // Each unit index is written by the one call that runs it (exactly once if the split
        // is right); a unit run twice shows up as runs == 2.
        r.runsBuffer[Int(unit)] += 1
        r.taskBuffer[Int(unit)] = task
        if r.keepOrder { r.order.append(unit) }
    }

    private func run(threads: Int, units: Int, keepOrder: Bool = false) -> Record {
        let r = Record(units: units, keepOrder: keepOrder)
        let ctx = Unmanaged.passUnretained(r).toOpaque()
        mpq_run_ranges(Int32(threads), Int32(units), PoolRangesTests.record, ctx)
        return r
    }

    func testEveryUnitRunsOnceOnAValidTask() {
        var rng = SystemRandomNumberGenerator()
        for threads in 1...4 {
            for units in [0, 1, 2, 3, 5, 7, 16, 63, 64, 65, 196, 1000] + (0..<4).map({ _ in Int.random(in: 1...3000, using: &rng) }) {
                for _ in 0..<3 {
                    let r = run(threads: threads, units: units)
                    XCTAssertEqual(r.runs, Array(repeating: 1, count: units), "threads \(threads) units \(units)")
                    XCTAssertTrue(r.task.allSatisfy { $0 >= 0 && $0 < Int32(max(1, min(threads, units))) },
                                  "threads \(threads) units \(units): task \(r.task.max() ?? -1)")
                }
            }
        }
    }

    /// Inside a task that owns a core the pool runs its tasks in order on one thread: task 0
    /// runs its range [0, U/2) in order, then takes task 1's [U/2, U) from the back.
    func testOwnRangeFirstThenOthersFromTheBack() {
        mpq_set_single_threaded(1)
        defer { mpq_set_single_threaded(0) }
        for units in [2, 9, 64, 197] {
            let r = run(threads: 2, units: units, keepOrder: true)
            let half = units / 2
            XCTAssertEqual(r.order.map(Int.init), Array(0..<half) + Array((half..<units).reversed()), "units \(units)")
            XCTAssertTrue(r.task.allSatisfy { $0 == 0 })
            let r3 = run(threads: 3, units: units, keepOrder: true)
            let a = units / 3, b = 2 * units / 3
            XCTAssertEqual(r3.order.map(Int.init), Array(0..<a) + Array((a..<b).reversed()) + Array((b..<units).reversed()),
                           "units \(units), 3 tasks")
        }
    }
}
