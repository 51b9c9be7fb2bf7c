// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "usp",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "USPCore", targets: ["USPCore"]),
        .executable(name: "usp-demo", targets: ["usp-demo"]),
        .executable(name: "usp-bench", targets: ["usp-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-crypto.git", exact: "4.5.2"),
        .package(url: "https://github.com/x-sheep/swift-property-based.git", exact: "2.0.1"),
        .package(url: "https://github.com/ordo-one/malloc-interposer.git", exact: "1.6.1"),
    ],
    targets: [
        // In-place ChaCha20-Poly1305 over the system libcrypto (OpenSSL 3 EVP), so
        // the record path allocates nothing per record. See docs/PROTOCOL.md §Records.
        .target(
            name: "CUSPCrypto",
            linkerSettings: [.linkedLibrary("crypto")]
        ),
        // Sans-I/O protocol core: Noise, records, frames, streams, messages, sessions.
        .target(
            name: "USPCore",
            dependencies: [
                "CUSPCrypto",
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .executableTarget(
            name: "usp-demo",
            dependencies: ["USPCore"]
        ),
        .executableTarget(
            name: "usp-bench",
            dependencies: [
                "USPCore",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "MallocInterposerSwift", package: "malloc-interposer"),
            ]
        ),
        .testTarget(
            name: "USPCoreTests",
            dependencies: [
                "USPCore",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "PropertyBased", package: "swift-property-based"),
            ],
            exclude: ["Interop"]
        ),
    ]
)
