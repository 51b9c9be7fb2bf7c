// swift-tools-version: 6.1
// Coverage-guided fuzz targets (libFuzzer) for every decoder that reads bytes from outside.
// A package of its own so that `swift build` / `swift test` of the main package are unaffected;
// build it only with `--sanitize=fuzzer` (scripts/fuzz.sh does). See docs/FUZZING.md.
import PackageDescription

/// One libFuzzer executable per decoder. libFuzzer supplies `main`, so a target's source is not
/// named main.swift and has no top-level code: it only exports `LLVMFuzzerTestOneInput`.
func fuzzTarget(_ name: String, _ dependencies: [Target.Dependency]) -> Target {
    .executableTarget(name: name, dependencies: ["FuzzSupport"] + dependencies, path: "Sources/\(name)")
}

let package = Package(
    name: "usp-fuzz",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(name: "usp", path: ".."),
    ],
    targets: [
        // The harness side shared by the targets: libFuzzer glue, seed writing, fixed keys,
        // deterministic randomness, an in-memory session policy.
        .target(name: "FuzzSupport", dependencies: [.product(name: "USPCore", package: "usp")]),
        fuzzTarget("fuzz-handshake", [.product(name: "USPCore", package: "usp")]),
        fuzzTarget("fuzz-record", [.product(name: "USPCore", package: "usp")]),
        fuzzTarget("fuzz-frame", [.product(name: "USPCore", package: "usp")]),
        fuzzTarget("fuzz-message", [.product(name: "USPCore", package: "usp")]),
        // USPConfig is not a product of the main package; USPServer's product carries its module.
        fuzzTarget("fuzz-config", [.product(name: "USPServer", package: "usp"), .product(name: "USPUnix", package: "usp")]),
        fuzzTarget("fuzz-agent", [.product(name: "USPAgent", package: "usp"), .product(name: "USPClient", package: "usp"),
                                  .product(name: "USPCore", package: "usp")]),
        fuzzTarget("fuzz-handoff", [.product(name: "USPApp", package: "usp"), .product(name: "USPCore", package: "usp"),
                                    .product(name: "USPUnix", package: "usp")]),
        fuzzTarget("fuzz-snapshot", [.product(name: "USPCore", package: "usp")]),
    ]
)
