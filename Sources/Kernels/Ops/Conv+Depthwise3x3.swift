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
        let d = [g.input[1], g.input[2], g.stride[1], g.stride[2], g.padHead[1], g.padHead[2], g.output[1], g.output[2]]
        guard g.input[0] == 1, g.kernel[0] == 1, g.kernel[1] == 3, g.kernel[2] == 3,
              g.dilation[1] == 1, g.dilation[2] == 1, g.output[0] == 1,
              d.allSatisfy({ $0 <= Int(Int32.max) }) else { return false }
        let v = d.map { Int32($0) }
        mpq_depthwise3x3_f32(MPQ_PATH_AUTO, src, v[0], v[1], w, v[2], v[3], v[4], v[5], v[6], v[7], dst)
        return true
    }
}
