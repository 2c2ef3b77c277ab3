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

/// The spatial geometry of a sliding window (convolution or pooling) over 1 to 3
/// spatial dimensions, padded to exactly three by leading size-1 dimensions with a unit
/// kernel, so that one loop nest serves Conv1D, 2D and 3D alike.
struct WindowGeometry {
    /// Spatial rank before padding to three.
    var rank: Int
    var input: [Int]
    var kernel: [Int]
    var stride: [Int]
    var dilation: [Int]
    var padHead: [Int]
    var padTail: [Int]
    var output: [Int]

    var inputCount: Int { input.reduce(1, *) }
    var outputCount: Int { output.reduce(1, *) }
    var kernelCount: Int { kernel.reduce(1, *) }
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
        let s = strides ?? [Int](repeating: 1, count: r)
        let d = dilations ?? [Int](repeating: 1, count: r)
        let p = pads ?? [Int](repeating: 0, count: 2 * r)
        guard kernel.count == r, s.count == r, d.count == r, p.count == 2 * r else {
            throw OpError("\(op) attributes do not match \(r) spatial dimensions: kernel_shape \(kernel), strides \(s), dilations \(d), pads \(p)")
        }
        guard kernel.allSatisfy({ $0 >= 1 }), s.allSatisfy({ $0 >= 1 }), d.allSatisfy({ $0 >= 1 }), p.allSatisfy({ $0 >= 0 }) else {
            throw OpError("\(op) needs positive kernel_shape \(kernel), strides \(s), dilations \(d) and non-negative pads \(p)")
        }
        // Bounded so that the geometry's sums and products below cannot overflow Int
        // (a file with pads or dilations of 2^62 would otherwise trap).
        let most = TensorLimits.maxDim
        guard (kernel + s + d + p).allSatisfy({ $0 <= most }) else {
            throw OpError("\(op) kernel_shape \(kernel), strides \(s), dilations \(d) and pads \(p) must be at most \(most)")
        }
        let lead = 3 - r
        func pad3(_ v: [Int], _ fill: Int) -> [Int] { [Int](repeating: fill, count: lead) + v }
        self.rank = r
        self.input = pad3(input, 1)
        self.kernel = pad3(kernel, 1)
        self.stride = pad3(s, 1)
        self.dilation = pad3(d, 1)
        self.padHead = pad3(Array(p.prefix(r)), 0)
        self.padTail = pad3(Array(p.suffix(r)), 0)
        self.output = [Int](repeating: 1, count: 3)
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
