import Foundation
import Testing

/// Real processes for integration tests: the built `uspd` and `usp`, OpenSSH's `sshd`, an HTTP
/// server, `curl`. Everything runs on 127.0.0.1 in a temporary directory and is killed at the end.
final class RunningProcess: @unchecked Sendable {
    let pid: pid_t
    let name: String
    private let lock = NSLock()
    private var out = Data()
    private var err = Data()
    private var exitStatus: Int32?
    private var readers: [Thread] = []

    /// Spawns with posix_spawn; stdout and stderr are drained by two threads. `stdin` (if given) is
    /// the child's standard input; otherwise /dev/null. `descriptor3` (if given, and not 0, 1 or 2)
    /// is placed on the child's fd 3, as a service manager passes a socket.
    init(_ name: String, executable: String, arguments: [String], environment: [String: String] = [:],
         directory: URL? = nil, stdin: FileHandle? = nil, descriptor3: Int32? = nil) throws {
        self.name = name
        var outPipe: [Int32] = [0, 0], errPipe: [Int32] = [0, 0]
        guard pipe(&outPipe) == 0, pipe(&errPipe) == 0 else { throw HarnessError("pipe() failed") }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if let stdin {
            posix_spawn_file_actions_adddup2(&actions, stdin.fileDescriptor, 0)
        } else {
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        }
        posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
        posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2)
        for fd in [outPipe[0], outPipe[1], errPipe[0], errPipe[1]] { posix_spawn_file_actions_addclose(&actions, fd) }
        // dup2 onto itself would leave close-on-exec set: move a descriptor 3 out of the way first.
        let passed = descriptor3.map { $0 == 3 ? fcntl($0, F_DUPFD_CLOEXEC, 10) : $0 }
        defer { if let passed, passed != descriptor3 { close(passed) } }
        if let passed { posix_spawn_file_actions_adddup2(&actions, passed, 3) }
        // Nothing else leaks into the child (a pipe's write end there would hide EOF from it).
        _ = uspAddCloseFrom(&actions, passed == nil ? 3 : 4)
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { argv.forEach { free($0) }; envp.forEach { free($0) } }
        var child: pid_t = 0
        let rc = posix_spawn(&child, executable, &actions, nil, argv, envp)
        close(outPipe[1]); close(errPipe[1])
        guard rc == 0 else {
            close(outPipe[0]); close(errPipe[0])
            throw HarnessError("cannot start \(executable): \(String(cString: strerror(rc)))")
        }
        pid = child
        for (fd, isOut) in [(outPipe[0], true), (errPipe[0], false)] {
            let t = Thread { [weak self] in
                var buffer = [UInt8](repeating: 0, count: 65536)
                while true {
                    let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                    if n <= 0 { if n < 0 && errno == EINTR { continue }; break }
                    guard let self else { break }
                    self.lock.lock()
                    if isOut { self.out.append(contentsOf: buffer[0..<n]) } else { self.err.append(contentsOf: buffer[0..<n]) }
                    self.lock.unlock()
                }
                close(fd)
            }
            t.start()
            readers.append(t)
        }
    }

    var stdout: String { lock.lock(); defer { lock.unlock() }; return String(decoding: out, as: UTF8.self) }
    var stderr: String { lock.lock(); defer { lock.unlock() }; return String(decoding: err, as: UTF8.self) }

    /// Reaps the child if it has exited.
    var isRunning: Bool {
        lock.lock(); defer { lock.unlock() }
        if exitStatus != nil { return false }
        var status: Int32 = 0
        let r = waitpid(pid, &status, WNOHANG)
        if r == pid {
            let code = status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
            exitStatus = code
            return false
        }
        return r == 0
    }

    /// Waits until `predicate` holds on stdout+stderr, or fails after `timeout` seconds.
    func waitForOutput(timeout: Double = 20, _ predicate: (String) -> Bool) throws -> String {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let text = stdout + stderr
            if predicate(text) { return text }
            if !isRunning { Thread.sleep(forTimeInterval: 0.05); break }
            Thread.sleep(forTimeInterval: 0.02)
        }
        let text = stdout + stderr
        if predicate(text) { return text }
        throw HarnessError("\(name): expected output did not appear within \(timeout) s; output so far:\n\(text)")
    }

    /// Waits for exit (and for its output to be drained); kills after `timeout`. Returns the exit
    /// status, or 128 + signal.
    @discardableResult
    func wait(timeout: Double = 30) throws -> Int32 {
        let deadline = Date().addingTimeInterval(timeout)
        while isRunning, Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
        if isRunning {
            let threads = threadStates()
            stop()
            throw HarnessError("\(name) did not exit within \(timeout) s; its threads then: \(threads); output:\n\(stdout)\(stderr)")
        }
        let drained = Date().addingTimeInterval(2)
        while readers.contains(where: { !$0.isFinished }), Date() < drained { Thread.sleep(forTimeInterval: 0.005) }
        lock.lock(); defer { lock.unlock() }
        return exitStatus ?? -1
    }

    func signal(_ sig: Int32) { if isRunning { kill(pid, sig) } }

    /// SIGSTOP, then waits until every thread is stopped. kill(2) returns before the stop reaches
    /// all threads: on a busy machine one of them can run on for a while.
    func suspend(timeout: Double = 10) throws {
        signal(SIGSTOP)
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let states = threadStates()
            if !states.isEmpty, states.allSatisfy({ $0.state == "T" || $0.state == "t" }) { return }
            Thread.sleep(forTimeInterval: 0.005)
        }
        throw HarnessError("\(name) (pid \(pid)) was sent SIGSTOP but not all its threads stopped within \(timeout) s: \(threadStates())")
    }

    /// Each thread's state letter and kernel wait channel, from /proc.
    func threadStates() -> [(tid: String, state: String, wchan: String)] {
        let task = "/proc/\(pid)/task"
        guard let tids = try? FileManager.default.contentsOfDirectory(atPath: task) else { return [] }
        return tids.sorted().compactMap { tid in
            guard let stat = try? String(contentsOfFile: "\(task)/\(tid)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return nil }
            let state = stat[stat.index(close, offsetBy: 2)...].prefix(1)
            let wchan = (try? String(contentsOfFile: "\(task)/\(tid)/wchan", encoding: .utf8)) ?? "?"
            return (tid, String(state), wchan)
        }
    }

    func stop() {
        guard isRunning else { return }
        kill(pid, SIGTERM)
        let deadline = Date().addingTimeInterval(5)
        while isRunning, Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
        if isRunning { kill(pid, SIGKILL) }
        while isRunning { Thread.sleep(forTimeInterval: 0.01) }
    }

    deinit { stop() }
}

/// glibc ≥ 2.34 has it; the Swift Glibc module does not export it.
@_silgen_name("posix_spawn_file_actions_addclosefrom_np")
func uspAddCloseFrom(_ actions: UnsafeMutablePointer<posix_spawn_file_actions_t>, _ from: Int32) -> Int32

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

    /// A copy of the file at `path` in a new temporary directory that every user may enter and
    /// read (mode 755 both), for a process run as another user.
    static func copyForAnyone(_ path: String) throws -> String {
        let dir = try temporaryDirectory("shared")
        let copy = dir.appendingPathComponent((path as NSString).lastPathComponent).path
        try FileManager.default.copyItem(atPath: path, toPath: copy)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: dir.path)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: copy)
        return copy
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
                                   environment: environment, stdin: input)
        if let stdin, let pipe {
            try pipe.fileHandleForReading.close()
            pipe.fileHandleForWriting.write(Data(stdin.utf8))
            try pipe.fileHandleForWriting.close()
        }
        let status = try p.wait(timeout: timeout)
        return (status, p.stdout, p.stderr)
    }

    /// True when strict mode asks missing prerequisites to fail rather than skip.
    static var strict: Bool { ProcessInfo.processInfo.environment["USP_REQUIRE_SHARED"] == "1" }
}
