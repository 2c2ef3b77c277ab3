import Kernels
import ONNX
