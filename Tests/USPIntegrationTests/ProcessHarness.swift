import Foundation
import Testing

/// Real processes for integration tests: the built `uspd` and `usp`, OpenSSH's `sshd`, an HTTP
/// server, `curl`. Everything runs on 127.0.0.1 in a temporary directory and is killed at the end.
final class RunningProcess: @unchecked Sendable {
    let process: Process
    let name: String
    private let lock = NSLock()
    private var out = Data()
    private var err = Data()

    init(_ name: String, executable: String, arguments: [String], environment: [String: String] = [:],
         directory: URL? = nil, stdin: FileHandle? = nil) throws {
        self.name = name
        process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        process.environment = env
        if let directory { process.currentDirectoryURL = directory }
        let o = Pipe(), e = Pipe()
        process.standardOutput = o
        process.standardError = e
        if let stdin { process.standardInput = stdin }
        o.fileHandleForReading.readabilityHandler = { [weak self] h in
            let d = h.availableData
            guard let self, !d.isEmpty else { return }
            self.lock.lock(); self.out.append(d); self.lock.unlock()
        }
        e.fileHandleForReading.readabilityHandler = { [weak self] h in
            let d = h.availableData
            guard let self, !d.isEmpty else { return }
            self.lock.lock(); self.err.append(d); self.lock.unlock()
        }
        try process.run()
    }

    var stdout: String { lock.lock(); defer { lock.unlock() }; return String(decoding: out, as: UTF8.self) }
    var stderr: String { lock.lock(); defer { lock.unlock() }; return String(decoding: err, as: UTF8.self) }

    /// Waits until `predicate` holds on stdout+stderr, or fails after `timeout` seconds.
    func waitForOutput(timeout: Double = 20, _ predicate: (String) -> Bool) throws -> String {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let text = stdout + stderr
            if predicate(text) { return text }
            if !process.isRunning { break }
            Thread.sleep(forTimeInterval: 0.02)
        }
        let text = stdout + stderr
        if predicate(text) { return text }
        throw HarnessError("\(name): expected output did not appear within \(timeout) s; output so far:\n\(text)")
    }

    /// Waits for exit; kills after `timeout`.
    @discardableResult
    func wait(timeout: Double = 30) throws -> Int32 {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning, Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
        if process.isRunning {
            stop()
            throw HarnessError("\(name) did not exit within \(timeout) s; output:\n\(stdout)\(stderr)")
        }
        return process.terminationStatus
    }

    func signal(_ sig: Int32) { if process.isRunning { kill(process.processIdentifier, sig) } }

    func stop() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGTERM)
        let deadline = Date().addingTimeInterval(5)
        while process.isRunning, Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    deinit { stop() }
}

struct HarnessError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

enum Harness {
    /// The package root, from this file's path.
    static let packageRoot: URL = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The directory holding the built executables (the same build as the tests).
    static var binDirectory: URL {
        if let dir = ProcessInfo.processInfo.environment["USP_BIN_DIR"] { return URL(fileURLWithPath: dir) }
        // The test bundle lives in .build/<triple>/debug; the executables are beside it.
        let bundle = Bundle.main.bundleURL
        for candidate in [bundle, bundle.deletingLastPathComponent()] {
            if FileManager.default.isExecutableFile(atPath: candidate.appendingPathComponent("uspd").path) { return candidate }
        }
        return packageRoot.appendingPathComponent(".build/debug")
    }

    static func executable(_ name: String) throws -> String {
        let path = binDirectory.appendingPathComponent(name).path
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw HarnessError("\(name) not built at \(path): run `swift build` first (or set USP_BIN_DIR)")
        }
        return path
    }

    static func tool(_ name: String, candidates: [String]) -> String? {
        candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    static func temporaryDirectory(_ label: String) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("usp-it-\(label)-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// A TCP port that was free a moment ago on 127.0.0.1.
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw HarnessError("socket() failed") }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = 0
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        guard bound == 0 else { throw HarnessError("bind() failed") }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    /// Waits until something accepts TCP connections on 127.0.0.1:port.
    static func waitForPort(_ port: Int, timeout: Double = 20) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_port = UInt16(port).bigEndian
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            close(fd)
            if rc == 0 { return }
            Thread.sleep(forTimeInterval: 0.05)
        }
        throw HarnessError("nothing listening on 127.0.0.1:\(port) after \(timeout) s")
    }

    /// Runs a command to completion and returns (status, stdout, stderr).
    static func run(_ executable: String, _ arguments: [String], environment: [String: String] = [:], stdin: String? = nil,
                    timeout: Double = 60) throws -> (status: Int32, stdout: String, stderr: String) {
        var input: FileHandle?
        var pipe: Pipe?
        if stdin != nil { pipe = Pipe(); input = pipe!.fileHandleForReading }
        let p = try RunningProcess((executable as NSString).lastPathComponent, executable: executable, arguments: arguments,
                                   environment: environment, stdin: input ?? FileHandle.nullDevice)
        if let stdin, let pipe {
            pipe.fileHandleForWriting.write(Data(stdin.utf8))
            try pipe.fileHandleForWriting.close()
        }
        let status = try p.wait(timeout: timeout)
        Thread.sleep(forTimeInterval: 0.05)
        return (status, p.stdout, p.stderr)
    }

    /// True when strict mode asks missing prerequisites to fail rather than skip.
    static var strict: Bool { ProcessInfo.processInfo.environment["USP_REQUIRE_SHARED"] == "1" }
}
