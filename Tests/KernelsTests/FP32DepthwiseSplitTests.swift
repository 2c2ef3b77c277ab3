import CKernels
import XCTest
@testable import Kernels
import ONNX

/// s9-fp32: one image's FP32 depthwise conv splits its channels over the kernel pool from
/// 256K MACs (128K since s15-split; contiguous channel ranges per thread on the lanes kernel),
/// and its output is no longer zero-filled. The
/// split is by channel, never inside a sum, so the split run must give the bits of the same
/// call with every split turned off (`mpq_set_single_threaded`), on every geometry the
/// depthwise drivers take: the 3x3 kernels, stride 2, the window-gather 7x7 planes, the tap
/// loop (5x5 with a channel multiplier of 2, which also checks the zeroed fallback planes),
/// channel counts that do not divide into the chunks.
final class FP32DepthwiseSplitTests: XCTestCase {
    func testSplitImageEqualsUnsplitImage() throws {
        var rng = OpTestRandom(seed: 913)
        let cases: [(x: [Int], w: [Int], strides: [Int], pads: [Int])] = [
            ([1, 96, 56, 56], [96, 1, 3, 3], [2, 2], [0, 0, 1, 1]),   // MobileNetV2 stride-2 layer (shape)
            ([1, 144, 28, 28], [144, 1, 3, 3], [1, 1], [1, 1, 1, 1]),
            ([1, 576, 14, 14], [576, 1, 3, 3], [1, 1], [1, 1, 1, 1]), // 1.0M MACs: split only since s9
            ([1, 960, 7, 7], [960, 1, 3, 3], [1, 1], [1, 1, 1, 1]),   // 7x7: the window-gather kernel
            ([1, 576, 14, 14], [576, 1, 3, 3], [2, 2], [1, 1, 1, 1]), // onto 7x7, 254K MACs: split since s15
            ([1, 67, 33, 29], [67, 1, 3, 3], [1, 1], [1, 1, 1, 1]),   // 67 channels: uneven chunks
            ([1, 40, 30, 30], [80, 1, 5, 5], [1, 1], [2, 2, 2, 2]),   // multiplier 2, 5x5: the tap loop
        ]
        if processCoreCount > 1 {
            XCTAssertGreaterThan(ConvOps.fp32DepthwiseChannelTasks(macs: 576 * 14 * 14 * 9), 1, "the 14x14x576 layer must split")
            XCTAssertGreaterThan(ConvOps.fp32DepthwiseChannelTasks(macs: 576 * 7 * 7 * 9), 1, "the stride-2 576-channel layer onto 7x7 must split")
        }
        for (i, c) in cases.enumerated() {
            let x = rng.tensor(c.x), w = rng.tensor(c.w), b = rng.tensor([c.w[0]])
            func conv(_ ep: ConvEpilogue) throws -> Tensor {
                try ConvOps.Conv(x: x, w: w, b: b, autoPad: "NOTSET", dilations: nil, group: c.x[1], kernelShape: nil,
                                 pads: c.pads, strides: c.strides, epilogue: ep)
            }
            for ep in [ConvEpilogue.none, .clamp(lo: 0, hi: 6)] {
                let split = try conv(ep)
                mpq_set_single_threaded(1)
                let one = try conv(ep)
                mpq_set_single_threaded(0)
                XCTAssertEqual(split.shape, one.shape)
                XCTAssertTrue(split.floats.elementsEqual(one.floats, by: { $0.bitPattern == $1.bitPattern }),
                              "case \(i) \(c.x) epilogue \(ep): split != unsplit")
                if ep == .none {
                    // Every output written: against the by-definition conv (the output is not zero-filled).
                    let ref = ConvOpsTests.referenceConv(x, w, b, group: c.x[1], strides: c.strides, dilations: [1, 1], pads: c.pads)
                    let worst = zip(split.floats, ref.floats).map { abs($0 - $1) / (1 + abs($1)) }.max() ?? 0
                    XCTAssertLessThan(worst, 1e-5, "case \(i) \(c.x): split run vs reference")
                }
            }
        }
    }

    /// Each chunk runs exactly once, whatever the thread and chunk counts.
    func testRunChunksRunsEveryChunkOnce() {
        for (threads, chunks) in [(1, 5), (2, 1), (2, 4), (3, 7), (8, 3), (64, 200)] {
            var seen = [Int32](repeating: 0, count: chunks)
            seen.withUnsafeMutableBufferPointer { p in
                let base = p.baseAddress!
                poolPerform(threads: threads, chunks: chunks) { k in
                    // Distinct k on each call: plain stores to distinct elements.
                    base[k] += 1
                }
            }
            XCTAssertEqual(seen, [Int32](repeating: 1, count: chunks), "threads \(threads) chunks \(chunks)")
        }
    }
}
