// swift-tools-version: 6.0
// mpq: find which layers of an ONNX model can run in INT8 within an accuracy budget.
//
// Layers, one direction only: cli -> Search -> Kernels -> ONNX (model).
// - ONNX: the model layer. Protobuf import, graph, tensors, .npy/.npz. Executes nothing.
// - CKernels: C SIMD kernels (scalar reference, AVX2, AVX-512 VNNI), picked at run time.
// - Kernels: the runtime. Executes a graph in FP32 or mixed INT8/FP32. Knows nothing of budgets.
// - Search: metrics, evaluation, calibration drivers, sensitivity, search, validation.
// - cli: the `mpq` command.
import PackageDescription

let package = Package(
    name: "mpq",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "mpq", targets: ["cli"]),
        .library(name: "Search", targets: ["Search"]),
        .library(name: "Kernels", targets: ["Kernels"]),
        .library(name: "ONNX", targets: ["ONNX"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
        .package(url: "https://github.com/weichsel/ZIPFoundation", from: "0.9.20"),
    ],
    targets: [
        .systemLibrary(name: "COpenBLAS", path: "Sources/COpenBLAS",
                       providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CGSL", path: "Sources/CGSL",
                       providers: [.apt(["libgsl-dev"])]),
        .systemLibrary(name: "MPQZlib", path: "Sources/MPQZlib",
                       providers: [.apt(["zlib1g-dev"]), .brew(["zlib"])]),
        .target(name: "CKernels", path: "Sources/CKernels"),
        .target(name: "ONNX", dependencies: [
            "MPQZlib",
            .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            .product(name: "ZIPFoundation", package: "ZIPFoundation"),
        ]),
        .target(name: "Kernels", dependencies: ["ONNX", "CKernels", "COpenBLAS"]),
        .target(name: "Search", dependencies: ["Kernels", "ONNX", "CGSL"]),
        .executableTarget(name: "cli", dependencies: [
            "Search", "Kernels", "ONNX",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .executableTarget(name: "mpq-bench", dependencies: ["Search", "Kernels", "CKernels", "COpenBLAS", "ONNX"],
                          path: "benchmarks/Sources"),
        .testTarget(name: "ONNXTests", dependencies: [
            "ONNX", .product(name: "ZIPFoundation", package: "ZIPFoundation"),
        ]),
        .testTarget(name: "KernelsTests", dependencies: ["Kernels", "ONNX", "CKernels"]),
        .testTarget(name: "SearchTests", dependencies: ["Search", "Kernels", "ONNX"]),
        .testTarget(name: "CLITests", dependencies: ["cli", "ONNX"]),
    ],
    swiftLanguageModes: [.v5]
)
