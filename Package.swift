// swift-tools-version:6.0
import PackageDescription

// SNAPSHOTTER_DRAGONFLY=0 builds without the Dragonfly transport: no gRPC
// stack (and no Foundation) in the library, which is then about a tenth
// of the size; a Dragonfly endpoint is refused as unsupported. Builds with
// and without it want separate scratch paths (`make lib DRAGONFLY=0`).
let dragonfly = Context.environment["SNAPSHOTTER_DRAGONFLY"] != "0"
let dragonflyPackages: [Package.Dependency] = dragonfly ? [
    .package(url: "https://github.com/grpc/grpc-swift-2", from: "2.4.3"),
    .package(url: "https://github.com/grpc/grpc-swift-nio-transport", from: "2.9.2"),
    .package(url: "https://github.com/grpc/grpc-swift-protobuf", from: "2.4.1"),
    .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
] : []
let dragonflyTargets: [Target] = dragonfly ? [
    // Generated client code for the Dragonfly peer daemon's gRPC API
    // (scripts/gen-dragonfly.sh).
    .target(
        name: "DragonflyAPI",
        dependencies: [
            .product(name: "GRPCCore", package: "grpc-swift-2"),
            .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
            .product(name: "SwiftProtobuf", package: "swift-protobuf"),
        ],
        path: "Sources/DragonflyAPI"
    ),
] : []
let dragonflyDependencies: [Target.Dependency] = dragonfly ? [
    "DragonflyAPI",
    .product(name: "GRPCCore", package: "grpc-swift-2"),
    .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
    .product(name: "SwiftProtobuf", package: "swift-protobuf"),
] : []
let dragonflySettings: [SwiftSetting] = dragonfly ? [.define("SNAPSHOTTER_DRAGONFLY")] : []

let package = Package(
    name: "libsnapshotter",
    products: [
        .library(name: "snapshotter", type: .dynamic, targets: ["Snapshotter"]),
        .executable(name: "snapshotctl", targets: ["snapshotctl"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ] + dragonflyPackages,
    targets: [
        .systemLibrary(name: "CXXHash", pkgConfig: "libxxhash",
                       providers: [.apt(["libxxhash-dev"])]),
        .systemLibrary(name: "CLMDB", pkgConfig: "lmdb",
                       providers: [.apt(["liblmdb-dev"])]),
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl",
                       providers: [.apt(["libcurl4-openssl-dev"])]),
        .target(name: "CShim"),
        .target(
            name: "SnapshotterCore",
            dependencies: ["CXXHash", "CLMDB", "CCurl", "CShim"] + dragonflyDependencies,
            swiftSettings: dragonflySettings
        ),
        // The public header as a module, so the ABI layer uses its types.
        .systemLibrary(name: "CSnapshotterABI"),
        // The C ABI: @_cdecl functions that only translate. Only the
        // header's names are exported (version script), with a SONAME.
        .target(
            name: "Snapshotter",
            dependencies: ["SnapshotterCore", "CSnapshotterABI"],
            exclude: ["exports.map"],
            linkerSettings: [
                .unsafeFlags([
                    "-Xlinker", "--version-script=\(Context.packageDirectory)/Sources/Snapshotter/exports.map",
                    "-Xlinker", "-soname=libsnapshotter.so.0",
                ]),
            ]
        ),
        .executableTarget(
            name: "snapshotctl",
            dependencies: [
                "SnapshotterCore",
                "CSnapshotterABI", // the header's version
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // The collector benchmark (bench/gc.sh runs it in release).
        .executableTarget(
            name: "snapshotter-bench",
            dependencies: ["SnapshotterCore"],
            path: "bench/swift"
        ),
        // A child process for the tests of leases across PID namespaces.
        .executableTarget(
            name: "snapshotter-testchild",
            dependencies: ["SnapshotterCore"],
            path: "Tests/TestChild"
        ),
        .testTarget(
            name: "SnapshotterCoreTests",
            dependencies: ["SnapshotterCore", "CShim"],
            swiftSettings: dragonflySettings
        ),
    ] + dragonflyTargets,
    swiftLanguageModes: [.v6]
)
