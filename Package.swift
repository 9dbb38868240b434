// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "libsnapshotter",
    products: [
        .executable(name: "snapshotctl", targets: ["snapshotctl"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
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
            dependencies: ["CXXHash", "CLMDB", "CCurl", "CShim"]
        ),
        .executableTarget(
            name: "snapshotctl",
            dependencies: [
                "SnapshotterCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(
            name: "SnapshotterCoreTests",
            dependencies: ["SnapshotterCore", "CShim"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
