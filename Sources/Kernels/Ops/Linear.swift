import ONNX

enum LinearOps {
    static let table: [String: OpEntry] = [:]
}
