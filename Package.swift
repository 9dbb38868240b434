// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "libsnapshotter",
    products: [
        .library(name: "snapshotter", type: .dynamic, targets: ["Snapshotter"]),
        .executable(name: "snapshotctl", targets: ["snapshotctl"]),
    ],
    dependencies: [
        // For snapshotctl only; the library depends on system libraries.
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        .systemLibrary(name: "CXXHash", pkgConfig: "libxxhash",
                       providers: [.apt(["libxxhash-dev"])]),
        .systemLibrary(name: "CLMDB", pkgConfig: "lmdb",
                       providers: [.apt(["liblmdb-dev"])]),
        // libcurl's headers; the library is opened when first needed
        // (Sources/CCurl/include/ccurl.h), not linked.
        .target(name: "CCurl"),
        .target(name: "CShim"),
        // The engine's layers, each a target so the compiler holds the
        // arrows of docs/design-notes.md ("Targets"); scripts/check-layers.py
        // fails on an import the table does not allow.
        // System calls, errors, logging, JSON, concurrency primitives.
        .target(name: "SnapshotterSystem", dependencies: ["CShim"]),
        // SPF1, digests, the content store, output directories.
        .target(name: "SnapshotterStore", dependencies: ["SnapshotterSystem", "CXXHash", "CShim"]),
        // LMDB, its records and their one owner, the snapshot config.
        .target(name: "SnapshotterMetadata", dependencies: ["SnapshotterSystem", "SnapshotterStore", "CLMDB", "CShim"]),
        // HTTP over libcurl, registries, content transports.
        .target(name: "SnapshotterRemote",
                dependencies: ["SnapshotterSystem", "SnapshotterStore", "SnapshotterMetadata", "CCurl", "CShim"]),
        // The engine: the facade, snapshot, restore, GC, leases, verify.
        .target(
            name: "SnapshotterCore",
            dependencies: ["SnapshotterSystem", "SnapshotterStore", "SnapshotterMetadata", "SnapshotterRemote", "CShim"]
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
        // The collector benchmark: swift run -c release snapshotter-bench (README, Benchmark).
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
            dependencies: ["SnapshotterCore", "SnapshotterSystem", "SnapshotterStore", "SnapshotterMetadata", "SnapshotterRemote", "CShim"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
