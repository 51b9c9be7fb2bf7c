import Foundation
import Testing

/// Finds the shared, read-only data directory (test vectors and tools) that lives outside the repository.
///
/// The directory is `$USP_SHARED_DIR` when that is set, otherwise `<package root>/../shared`, with the
/// package root derived from this file's `#filePath`. The data is never copied into the repository.
///
/// When something is missing, a test that needs it is skipped visibly (a `SKIP:` line on stdout and a
/// cancelled test in the `swift test` summary), unless `USP_REQUIRE_SHARED=1`, in which case it fails
/// with the path it looked for.
enum SharedData {
    struct Missing: Error, CustomStringConvertible {
        let description: String
    }

    static var isRequired: Bool {
        ProcessInfo.processInfo.environment["USP_REQUIRE_SHARED"] == "1"
    }

    /// `<package root>`: this file is `<root>/Tests/USPCoreTests/SharedData.swift`.
    static var packageRoot: URL {
        URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent()  // USPCoreTests
            .deletingLastPathComponent()  // Tests
            .deletingLastPathComponent()  // package root
    }

    static var directory: URL {
        if let dir = ProcessInfo.processInfo.environment["USP_SHARED_DIR"], !dir.isEmpty {
            return URL(fileURLWithPath: dir, isDirectory: true).standardizedFileURL
        }
        return packageRoot.appendingPathComponent("../shared", isDirectory: true).standardizedFileURL
    }

    /// The URL of `relativePath` inside the shared directory. If it is missing, fails the test
    /// (`USP_REQUIRE_SHARED=1`) or skips it; either way this throws and the test stops.
    static func file(_ relativePath: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> URL {
        let dir = directory
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: dir.path, isDirectory: &isDir), isDir.boolValue else {
            try unavailable("shared data directory \(dir.path) does not exist (set USP_SHARED_DIR)",
                            sourceLocation: sourceLocation)
        }
        let url = dir.appendingPathComponent(relativePath)
        guard FileManager.default.isReadableFile(atPath: url.path) else {
            try unavailable("shared data file \(url.path) is missing", sourceLocation: sourceLocation)
        }
        return url
    }

    /// The contents of `relativePath` inside the shared directory (see `file(_:)`).
    static func data(_ relativePath: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> Data {
        try Data(contentsOf: file(relativePath, sourceLocation: sourceLocation))
    }

    /// Stops the current test because a prerequisite is missing: a failure under `USP_REQUIRE_SHARED=1`,
    /// otherwise a visible skip.
    static func unavailable(_ reason: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> Never {
        if isRequired {
            throw Missing(description: "USP_REQUIRE_SHARED=1 and \(reason)")
        }
        print("SKIP: \(reason)")
        try Test.cancel("SKIP: \(reason)", sourceLocation: sourceLocation)
    }
}

/// Hex helpers for test data. Kept inside `SharedData` so they cannot clash with helpers other test files declare.
extension SharedData {
    static func bytes(hex: String) -> [UInt8] {
        let chars = Array(hex.utf8)
        precondition(chars.count % 2 == 0, "odd-length hex string")
        func nibble(_ c: UInt8) -> UInt8 {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
            default: preconditionFailure("bad hex digit in \(hex)")
            }
        }
        var out = [UInt8]()
        out.reserveCapacity(chars.count / 2)
        var i = 0
        while i < chars.count {
            out.append(nibble(chars[i]) << 4 | nibble(chars[i + 1]))
            i += 2
        }
        return out
    }

    static func hex(_ bytes: some Collection<UInt8>) -> String {
        let digits = Array("0123456789abcdef")
        var s = ""
        s.reserveCapacity(bytes.count * 2)
        for b in bytes {
            s.append(digits[Int(b >> 4)])
            s.append(digits[Int(b & 0x0f)])
        }
        return s
    }
}
