import ONNX

/// ONNX `auto_pad`.
enum AutoPad: String {
    case notSet = "NOTSET", valid = "VALID", sameUpper = "SAME_UPPER", sameLower = "SAME_LOWER"

    init(attribute: String) throws {
        guard let v = AutoPad(rawValue: attribute) else {
            throw OpError("auto_pad '\(attribute)' is not one of NOTSET, VALID, SAME_UPPER, SAME_LOWER")
        }
        self = v
    }
}

/// Three spatial sizes (depth, height, width; the leading ones 1 below rank 3) held inline.
/// The window geometry was eight `[Int]` arrays built, copied and freed on every Conv and
/// pool call: with their generic-metadata lookups and reference counting that was about 40%
/// of a small FP32 Conv's Swift time (a 100 x (1x1 Conv + Relu) chain on 8x4x4 at batch 1:
/// 4.8 us per pair against ONNX Runtime's 1.7; s13-lead). A collection, so indexing,
/// `reduce`, `suffix` and `allSatisfy` read as they did on the arrays.
struct Dims3: RandomAccessCollection, MutableCollection, Equatable, CustomStringConvertible {
    var d0: Int, d1: Int, d2: Int

    init(_ d0: Int, _ d1: Int, _ d2: Int) { self.d0 = d0; self.d1 = d1; self.d2 = d2 }
    init(repeating v: Int) { self.init(v, v, v) }
    /// `v` (1 to 3 values) right-aligned, the leading positions `fill`.
    init<C: RandomAccessCollection>(_ v: C, fill: Int) where C.Element == Int, C.Index == Int {
        let lead = 3 - v.count, first = v.startIndex
        self.init(lead > 0 ? fill : v[first], lead > 1 ? fill : v[first + 1 - lead], lead > 2 ? fill : v[first + 2 - lead])
    }

    var startIndex: Int { 0 }
    var endIndex: Int { 3 }
    @inline(__always) func index(after i: Int) -> Int { i + 1 }
    @inline(__always) func index(before i: Int) -> Int { i - 1 }
    subscript(i: Int) -> Int {
        @inline(__always) get { i == 0 ? d0 : (i == 1 ? d1 : d2) }
        @inline(__always) set {
            if i == 0 { d0 = newValue } else if i == 1 { d1 = newValue } else { d2 = newValue }
        }
    }
    var product: Int { d0 * d1 * d2 }
    var description: String { "[\(d0), \(d1), \(d2)]" }
}

/// The spatial geometry of a sliding window (convolution or pooling) over 1 to 3
/// spatial dimensions, padded to exactly three by leading size-1 dimensions with a unit
/// kernel, so that one loop nest serves Conv1D, 2D and 3D alike.
struct WindowGeometry {
    /// Spatial rank before padding to three.
    var rank: Int
    var input: Dims3
    var kernel: Dims3
    var stride: Dims3
    var dilation: Dims3
    var padHead: Dims3
    var padTail: Dims3
    var output: Dims3

    var inputCount: Int { input.product }
    var outputCount: Int { output.product }
    var kernelCount: Int { kernel.product }
    /// Output spatial shape at the original rank.
    var outputShape: [Int] { Array(output.suffix(rank)) }
    /// Pads as ONNX lists them: all heads, then all tails, at the original rank.
    var pads: [Int] { Array(padHead.suffix(rank)) + Array(padTail.suffix(rank)) }
    /// True when the window reads the input unchanged (1x1 kernel, unit stride, no padding).
    var isPointwise: Bool {
        kernel.allSatisfy { $0 == 1 } && stride.allSatisfy { $0 == 1 }
            && padHead.allSatisfy { $0 == 0 } && padTail.allSatisfy { $0 == 0 }
    }

    /// Validates the per-axis attributes and pads them to three dimensions; the output
    /// size is left to the caller (convolution and pooling compute it differently).
    init(input: [Int], kernel: [Int], strides: [Int]?, dilations: [Int]?, pads: [Int]?, op: String) throws {
        let r = input.count
        guard (1...3).contains(r) else {
            throw OpError("\(op) supports 1 to 3 spatial dimensions, got \(r) (spatial shape \(Tensor.describe(input)))")
        }
        // Absent attributes take their defaults without building arrays (every Conv and pool
        // call comes here).
        guard kernel.count == r, (strides?.count ?? r) == r, (dilations?.count ?? r) == r, (pads?.count ?? 2 * r) == 2 * r else {
            throw OpError("\(op) attributes do not match \(r) spatial dimensions: kernel_shape \(kernel), strides \(strides ?? []), dilations \(dilations ?? []), pads \(pads ?? [])")
        }
        let most = TensorLimits.maxDim
        func within(_ v: [Int]?, _ low: Int) -> Bool { v?.allSatisfy { $0 >= low } ?? true }
        guard kernel.allSatisfy({ $0 >= 1 }), within(strides, 1), within(dilations, 1), within(pads, 0) else {
            throw OpError("\(op) needs positive kernel_shape \(kernel), strides \(strides ?? []), dilations \(dilations ?? []) and non-negative pads \(pads ?? [])")
        }
        // Bounded so that the geometry's sums and products below cannot overflow Int
        // (a file with pads or dilations of 2^62 would otherwise trap).
        func bounded(_ v: [Int]?) -> Bool { v?.allSatisfy { $0 <= most } ?? true }
        guard bounded(kernel), bounded(strides), bounded(dilations), bounded(pads) else {
            throw OpError("\(op) kernel_shape \(kernel), strides \(strides ?? []), dilations \(dilations ?? []) and pads \(pads ?? []) must be at most \(most)")
        }
        self.rank = r
        self.input = Dims3(input, fill: 1)
        self.kernel = Dims3(kernel, fill: 1)
        self.stride = strides.map { Dims3($0, fill: 1) } ?? Dims3(repeating: 1)
        self.dilation = dilations.map { Dims3($0, fill: 1) } ?? Dims3(repeating: 1)
        self.padHead = pads.map { Dims3($0[0..<r], fill: 0) } ?? Dims3(repeating: 0)
        self.padTail = pads.map { Dims3($0[r..<2 * r], fill: 0) } ?? Dims3(repeating: 0)
        self.output = Dims3(repeating: 1)
    }

    /// Extent of the dilated kernel along axis `i` (of three).
    func effectiveKernel(_ i: Int) -> Int { dilation[i] * (kernel[i] - 1) + 1 }

    /// Convolution output sizes, with `auto_pad` resolved as ONNX Runtime does
    /// (SAME_*: output `ceil(in/stride)`, the odd pad going to the tail for SAME_UPPER
    /// and to the head for SAME_LOWER).
    mutating func resolveConv(autoPad: AutoPad, op: String) throws {
        for i in 0..<3 {
            let ek = effectiveKernel(i)
            switch autoPad {
            case .notSet: break
            case .valid: padHead[i] = 0; padTail[i] = 0
            case .sameUpper, .sameLower:
                let target = (input[i] + stride[i] - 1) / stride[i]
                let needed = max(0, (target - 1) * stride[i] + ek - input[i])
                padHead[i] = autoPad == .sameLower ? (needed + 1) / 2 : needed / 2
                padTail[i] = needed - padHead[i]
            }
            let span = input[i] + padHead[i] + padTail[i] - ek
            guard span >= 0 else {
                throw OpError("\(op) kernel \(Tensor.describe(Array(kernel.suffix(rank)))) with dilations \(Array(dilation.suffix(rank))) is larger than the padded input \(Tensor.describe(Array(input.suffix(rank)))) (pads \(pads))")
            }
            output[i] = span / stride[i] + 1
        }
    }
}

/// The output indices `o` in `0..<outSize` for which `o*stride + offset` falls inside
/// `0..<inSize`: a half-open range, so window loops run without per-element bounds checks.
@inline(__always)
func validWindowRange(offset: Int, stride: Int, inSize: Int, outSize: Int) -> Range<Int> {
    let lo = offset >= 0 ? 0 : (-offset + stride - 1) / stride
    let last = inSize - 1 - offset
    let hi = last < 0 ? 0 : min(outSize, last / stride + 1)
    return min(lo, hi)..<hi
}
