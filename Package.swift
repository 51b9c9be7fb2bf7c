// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "usp",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "USPCore", targets: ["USPCore"]),
        .library(name: "USPClient", targets: ["USPClient"]),
        .library(name: "USPServer", targets: ["USPServer"]),
        .library(name: "USPUnix", targets: ["USPUnix"]),
        .library(name: "USPApp", targets: ["USPApp"]),
        .library(name: "USPAgent", targets: ["USPAgent"]),
        .executable(name: "usp-example-upper", targets: ["usp-example-upper"]),
        .executable(name: "uspd", targets: ["uspd"]),
        .executable(name: "usp", targets: ["usp"]),
        .executable(name: "usp-demo", targets: ["usp-demo"]),
        .executable(name: "usp-bench", targets: ["usp-bench"]),
        .executable(name: "usp-chaos", targets: ["usp-chaos"]),
        .executable(name: "usp-store-bench", targets: ["usp-store-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-crypto.git", exact: "4.5.2"),
        .package(url: "https://github.com/apple/swift-nio.git", exact: "2.101.3"),
        .package(url: "https://github.com/apple/swift-log.git", exact: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", exact: "1.8.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", exact: "2.13.0"),
        .package(url: "https://github.com/groue/GRDB.swift.git", exact: "7.10.0"),
        .package(url: "https://github.com/LebJe/TOMLKit.git", exact: "0.6.0"),
        .package(url: "https://github.com/x-sheep/swift-property-based.git", exact: "2.0.1"),
        .package(url: "https://github.com/ordo-one/malloc-interposer.git", exact: "1.6.1"),
        .package(url: "https://github.com/apple/swift-metrics.git", exact: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", exact: "2.4.1"),
        .package(url: "https://github.com/vapor/postgres-nio.git", exact: "1.33.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", exact: "2.37.6"),
    ],
    targets: [
        // In-place AEADs, so the record path allocates nothing per record: AES-256-GCM (records, when
        // both hellos offer it) from BoringSSL's EVP_AEAD (built into the program by swift-crypto);
        // ChaCha20-Poly1305 from BoringSSL for short records and the system's OpenSSL libcrypto
        // (loaded on the first long record) for bulk. See docs/PROTOCOL.md §4, §4.2.
        .target(
            name: "CUSPCrypto",
            dependencies: [.product(name: "Crypto", package: "swift-crypto")]
        ),
        // Sans-I/O protocol core: Noise, records, frames, streams, messages, sessions.
        .target(
            name: "USPCore",
            dependencies: [
                "CUSPCrypto",
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // SwiftNIO channel handlers that drive the core's session state machines: the server's, the
        // client's, and a dedicated stream's after a relay-free hand-off.
        .target(
            name: "USPNIO",
            dependencies: [
                "USPCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        // The shape every module's error shares: a stable code compared alone, one line for a person.
        .target(name: "USPErrors"),
        // System plumbing without NIO: socketpairs, descriptor passing (SCM_RIGHTS), peer
        // credentials, close-on-exec, length-prefixed messages, child processes and their reaper,
        // the user database, the terminal password prompt, environment variables. Shared by the
        // daemon, USPConfig, USPApp, the client library and agent, and the executables.
        .target(name: "USPUnix", dependencies: ["CUSPSpawn", "USPErrors"]),
        // fork + execve for exec'd applications: network namespace, resource limits, user and
        // group, all between fork and exec, where only async-signal-safe calls may run.
        .target(name: "CUSPSpawn"),
        // For application authors: sessions handed over by uspd (unix hand-off or fd 3) as an
        // async sequence of (metadata, NIOAsyncChannel). See docs/APPLICATIONS.md.
        .target(
            name: "USPApp",
            dependencies: [
                "USPUnix", "USPCore", "USPNIO", "USPErrors",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        // An example application on USPApp: greets the identity, upper-cases lines.
        .executableTarget(
            name: "usp-example-upper",
            dependencies: ["USPApp", .product(name: "NIOCore", package: "swift-nio")]
        ),
        // uspd.toml and apps.d/*.toml: the model and its TOML loaders (users and groups resolved
        // with USPUnix's SystemAccounts).
        .target(
            name: "USPConfig",
            dependencies: [
                "USPErrors", "USPUnix",
                .product(name: "TOMLKit", package: "TOMLKit"),
            ]
        ),
        // Users, tokens and the audit trail: the store protocol and its SQLite (GRDB) implementation.
        .target(
            name: "USPStore",
            dependencies: [
                "USPErrors",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
            ]
        ),
        // The store on PostgreSQL (a fleet of uspd nodes sharing one database, docs/FLEET.md). Its
        // own module, linked by uspd and the tests only: the server library and the fuzz targets
        // do not build postgres-nio.
        .target(
            name: "USPStorePostgres",
            dependencies: [
                "USPStore",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The daemon's library: listener, policy, registry, launchers, rate limits, audit.
        .target(
            name: "USPServer",
            dependencies: [
                "USPCore", "USPNIO", "USPConfig", "USPStore", "USPUnix",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // The client library: async connection API, known servers, home directory.
        .target(
            name: "USPClient",
            dependencies: [
                "USPCore", "USPNIO", "USPErrors", "USPUnix", "CUSPResolv",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // The system stub resolver (libresolv), for server keys published in DNS.
        .target(name: "CUSPResolv", linkerSettings: [.linkedLibrary("resolv")]),
        // The client agent (`usp agent`): programs get streams as descriptors from it, never
        // credentials; per-program rate limit and log. See docs/AGENT.md.
        .target(
            name: "USPAgent",
            dependencies: [
                "USPClient", "USPCore", "USPUnix", "USPErrors",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .executableTarget(
            name: "uspd",
            dependencies: [
                "USPServer", "USPConfig", "USPStore", "USPStorePostgres", "USPCore", "USPUnix",
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "usp",
            dependencies: [
                "USPClient", "USPAgent", "USPCore", "USPUnix", .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
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
        // Token issue and validation per second on each store backend (scripts/bench-fleet.sh).
        .executableTarget(
            name: "usp-store-bench",
            dependencies: ["USPStore", "USPStorePostgres"]
        ),
        // The chaos suite's load generator (scripts/chaos.sh, docs/RELIABILITY.md): attackers from
        // chosen 127.x.y.z sources (raw TCP on NIO; USP sessions on USPClient, USPNIO and USPCore)
        // beside a legitimate client whose success and latency it measures against a real uspd.
        .executableTarget(
            name: "usp-chaos",
            dependencies: [
                "USPClient", "USPCore", "USPNIO",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        // Fixtures and sugar shared by the test targets (not a product): an in-memory session
        // policy, seeded randomness, closure sugar over the sessions' action buffers, temporary
        // directories, an in-memory store, and the daemon in-process with a socket client for it.
        .target(
            name: "USPTestSupport",
            dependencies: [
                "USPCore", "USPNIO", "USPConfig", "USPStore", "USPServer",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .testTarget(
            name: "USPCoreTests",
            dependencies: [
                "USPCore", "USPTestSupport", "CUSPCrypto",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "PropertyBased", package: "swift-property-based"),
            ],
            exclude: ["Interop"]
        ),
        .testTarget(name: "USPConfigTests", dependencies: ["USPConfig", "USPTestSupport", "USPUnix"]),
        .testTarget(name: "USPStoreTests", dependencies: ["USPStore", "USPStorePostgres", "USPServer", "USPCore", "USPTestSupport"]),
        .testTarget(name: "USPUnixTests", dependencies: ["USPUnix"]),
        .testTarget(name: "USPAppTests", dependencies: ["USPApp", "USPTestSupport", "USPUnix", "USPCore", .product(name: "NIOCore", package: "swift-nio"),
                                                   .product(name: "NIOPosix", package: "swift-nio")]),
        .testTarget(
            name: "USPServerTests",
            dependencies: [
                "USPServer", "USPTestSupport", "USPCore", "USPClient", "USPUnix", "USPApp", "USPConfig", "USPNIO", "USPStore",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .testTarget(
            name: "USPClientTests",
            dependencies: ["USPClient", "USPTestSupport", "USPCore", "USPNIO", .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio")]
        ),
        .testTarget(name: "USPAgentTests", dependencies: ["USPAgent", "USPClient", "USPCore"]),
        .testTarget(name: "USPIntegrationTests", dependencies: ["USPCore", "USPUnix", "USPAgent", "uspd", "usp", "usp-example-upper"],
                    exclude: ["Python"]),
    ]
)
