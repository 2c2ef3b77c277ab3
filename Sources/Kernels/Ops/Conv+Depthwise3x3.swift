import CKernels
import ONNX

extension ConvOps {
    /// Depthwise 3x3 (2-D, undilated) plane, the MobileNet case: `mpq_depthwise3x3_f32`
    /// sums each output's nine taps in registers, eight outputs per vector for strides 1
    /// and 2, the same bits as the tap-by-tap `depthwisePlane` (taps inside the input, in
    /// order, from +0, no FMA). Returns false (writing nothing) when the geometry is not
    /// this case.
    static func depthwise3x3Plane(src: UnsafePointer<Float>, weights w: UnsafePointer<Float>,
                                  dst: UnsafeMutablePointer<Float>, _ g: WindowGeometry) -> Bool {
        // No arrays here: this runs once per plane (960 planes per MobileNetV2 layer).
        let limit = Int(Int32.max)
        guard g.input[0] == 1, g.kernel[0] == 1, g.kernel[1] == 3, g.kernel[2] == 3,
              g.dilation[1] == 1, g.dilation[2] == 1, g.output[0] == 1,
              g.input[1] <= limit, g.input[2] <= limit, g.stride[1] <= limit, g.stride[2] <= limit,
              g.padHead[1] <= limit, g.padHead[2] <= limit, g.output[1] <= limit, g.output[2] <= limit else { return false }
        mpq_depthwise3x3_f32(MPQ_PATH_AUTO, src, Int32(g.input[1]), Int32(g.input[2]), w, Int32(g.stride[1]), Int32(g.stride[2]),
                             Int32(g.padHead[1]), Int32(g.padHead[2]), Int32(g.output[1]), Int32(g.output[2]), dst)
        return true
    }
}
