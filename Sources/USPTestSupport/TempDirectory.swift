import Foundation

/// A fresh directory under the system temporary directory, removed at deinit. Removal first
/// clears any immutable flag below it (`chattr -R -i`), since a test may set one on purpose.
public final class TempDirectory: @unchecked Sendable {
    public let path: String

    public init(_ label: String = "test") {
        let base = FileManager.default.temporaryDirectory.path
        path = "\(base)/usp-\(label)-\(UUID().uuidString)"
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    public func file(_ name: String) -> String { "\(path)/\(name)" }

    /// Writes `text` to `name` in the directory and returns its path.
    @discardableResult
    public func write(_ name: String, _ text: String) -> String {
        let p = file(name)
        try! Data(text.utf8).write(to: URL(fileURLWithPath: p))
        return p
    }

    public func remove(_ name: String) { try! FileManager.default.removeItem(atPath: file(name)) }

    deinit {
        Self.clearImmutableFlags(path)
        try? FileManager.default.removeItem(atPath: path)
    }

    /// Runs `chattr -R -i` on `path`, quietly; a missing chattr or a failure leaves it as it was.
    private static func clearImmutableFlags(_ path: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/chattr")
        p.arguments = ["-R", "-i", path]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        guard (try? p.run()) != nil else { return }
        p.waitUntilExit()
    }
}
