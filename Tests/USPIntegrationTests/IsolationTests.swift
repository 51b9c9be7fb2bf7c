import Foundation
import Testing

/// A real uspd's exec'd applications: in a network namespace of their own, as
/// another user and group, under resource limits and a process cap; a crashing application is
/// reaped, logged and audited while the daemon and other sessions go on.
@Suite(.serialized) struct IsolationTests {
    static let config = "handshake_timeout = 1\nhandshake_burst = 100\n"

    /// Namespaces and user switches need root: skipped visibly otherwise, a failure in strict mode.
    static func requireRoot(_ what: String) -> Bool {
        if geteuid() == 0 { return true }
        if Harness.strict { Issue.record("\(what) needs uspd to run as root") } else { print("SKIP: \(what) needs root") }
        return false
    }

    /// An apps.d file for an exec application with extra `[launch]` lines and tables after it.
    static func app(_ name: String, _ command: [String], launch: String = "", tables: String = "", visibility: String = "public") -> String {
        """
        name = "\(name)"
        visibility = "\(visibility)"

        [launch]
        exec = [\(command.map(tomlString).joined(separator: ", "))]
        \(launch)

        \(tables)
        """
    }

    /// The JSON report on the first line of isolation_app.py's output.
    static func report(_ stdout: String) throws -> [String: Any] {
        let first = stdout.split(separator: "\n").first.map(String.init) ?? ""
        return try #require(try JSONSerialization.jsonObject(with: Data(first.utf8)) as? [String: Any], "not a report: \(stdout)")
    }

    @Test func aNoNetworkApplicationCannotConnectOutAndStillServesItsStream() throws {
        guard Self.requireRoot("sandbox = \"no-network\"") else { return }
        let python = try HandoffPeers.requirePython()
        // A listener of the test's own on 127.0.0.1, in the daemon's network namespace.
        let listener = try LoopbackListener()
        defer { listener.close() }
        let probe = [python, HandoffPeers.script("isolation_app.py")]
        let environment = "[launch.environment]\nPROBE_PORT = \"\(listener.port)\""
        let daemon = try DaemonFixture(apps: [
            "boxed.toml": Self.app("boxed", probe, launch: "sandbox = \"no-network\"", tables: environment),
            "open.toml": Self.app("open", probe, tables: environment),
        ], config: Self.config)

        // The same program outside the sandbox reaches both: the probes can succeed.
        let open = try daemon.usp(["connect", daemon.uri, "open"], stdin: "outside\n")
        #expect(open.status == 0, "\(open.stderr)")
        let free = try Self.report(open.stdout)
        #expect(free["tcp_loopback"] as? String == "connected")
        #expect(free["udp_external"] as? String == "routed")

        let boxed = try daemon.usp(["connect", daemon.uri, "boxed"], stdin: "inside the box\n")
        #expect(boxed.status == 0, "\(boxed.stderr)")
        let report = try Self.report(boxed.stdout)
        #expect(report["interfaces"] as? [String] == ["lo"], "only a loopback interface: \(report)")
        #expect(report["tcp_loopback"] as? String == "ENETUNREACH", "the daemon's 127.0.0.1 is not reachable: \(report)")
        #expect(report["udp_external"] as? String == "ENETUNREACH", "no route anywhere: \(report)")
        // ... and the stream it was handed still works both ways.
        #expect(boxed.stdout.hasSuffix("INSIDE THE BOX\n"), "\(boxed.stdout)")
    }

    /// uspd without root (here: as nobody) cannot make a network namespace alone; it enters a user
    /// namespace with it, in which the application keeps its uid and gid, and the sandbox holds.
    @Test func aNoNetworkSandboxAlsoWorksWhenUspdIsNotRoot() throws {
        guard Self.requireRoot("starting uspd as nobody") else { return }
        // A python3 that nobody may run (the test's own may live under /root).
        let python = "/usr/bin/python3"
        guard access(python, X_OK) == 0 else {
            if Harness.strict { Issue.record("\(python) is missing") } else { print("SKIP: \(python) is missing") }
            return
        }
        let listener = try LoopbackListener()
        defer { listener.close() }
        let probe = [python, try Harness.copyForAnyone(HandoffPeers.script("isolation_app.py"))]
        let daemon = try DaemonFixture(apps: [
            "boxed.toml": Self.app("boxed", probe, launch: "sandbox = \"no-network\"",
                                   tables: "[launch.environment]\nPROBE_PORT = \"\(listener.port)\""),
        ], config: Self.config, runAs: (uid: 65534, gid: 65534))
        let boxed = try daemon.usp(["connect", daemon.uri, "boxed"], stdin: "unprivileged box\n")
        #expect(boxed.status == 0, "\(boxed.stderr) / uspd: \(daemon.process?.stderr ?? "")")
        let report = try Self.report(boxed.stdout)
        #expect(report["uid"] as? Int == 65534 && report["gid"] as? Int == 65534, "the application keeps uspd's ids: \(report)")
        #expect(report["interfaces"] as? [String] == ["lo"], "only a loopback interface: \(report)")
        #expect(report["tcp_loopback"] as? String == "ENETUNREACH", "\(report)")
        #expect(report["udp_external"] as? String == "ENETUNREACH", "\(report)")
        #expect(boxed.stdout.hasSuffix("UNPRIVILEGED BOX\n"), "\(boxed.stdout)")

        // The client as an ordinary user too (socket options that need a capability would fail
        // its connect: TCP_NODELAY once went to SOL_SOCKET, where 1 is SO_DEBUG).
        let home = try Harness.temporaryDirectory("nobody-home")
        _ = try Harness.run("/bin/chown", ["65534:65534", home.path])
        let plain = try Harness.run("/usr/bin/setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", try Harness.copyForAnyone(try Harness.executable("usp")),
                                                         "--home", home.path, "connect", daemon.uri, "boxed"], stdin: "as nobody\n")
        #expect(plain.status == 0, "\(plain.stderr)")
        #expect(plain.stdout.hasSuffix("AS NOBODY\n"), "\(plain.stdout)")
    }

    @Test func userAndGroupAreSwitchedAndSupplementaryGroupsCleared() throws {
        guard Self.requireRoot("launch.user") else { return }
        let ids = ["/bin/sh", "-c", "id -u; id -g; id -G; exec cat"]
        let daemon = try DaemonFixture(apps: [
            "nobody.toml": Self.app("nobody", ids, launch: "user = \"nobody\""),
            "grouped.toml": Self.app("grouped", ids, launch: "group = \"nogroup\""),
            "numbers.toml": Self.app("numbers", ids, launch: "user = 65534\ngroup = 65534"),
        ], config: Self.config)
        let nobody = try daemon.usp(["connect", daemon.uri, "nobody"], stdin: "as nobody\n")
        #expect(nobody.status == 0, "\(nobody.stderr)")
        #expect(nobody.stdout == "65534\n65534\n65534\nas nobody\n", "user nobody, its primary group nogroup, no other group")
        let grouped = try daemon.usp(["connect", daemon.uri, "grouped"], stdin: "x\n")
        #expect(grouped.stdout == "0\n65534\n65534\nx\n", "root's uid, group nogroup only: \(grouped.stdout)")
        let numbers = try daemon.usp(["connect", daemon.uri, "numbers"], stdin: "y\n")
        #expect(numbers.stdout == "65534\n65534\n65534\ny\n", "\(numbers.stdout)")
    }

    @Test func anUnknownUserIsALoadErrorWithItsPosition() throws {
        let dir = try Harness.temporaryDirectory("badapps")
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("apps.d"), withIntermediateDirectories: true)
        let file = dir.appendingPathComponent("apps.d/ghost.toml")
        try Self.app("ghost", ["/bin/cat"], launch: "user = \"no-such-user-here\"").write(to: file, atomically: true, encoding: .utf8)
        let r = try Harness.run(try Harness.executable("uspd"), ["serve", "-t", "--data-dir", dir.path])
        let text = r.stdout + r.stderr
        #expect(r.status != 0)
        #expect(text.contains("\(file.path):6:8: launch.user: no user \"no-such-user-here\" on this system"), "\(text)")
    }

    @Test func resourceLimitsAreWhatTheApplicationSees() throws {
        let daemon = try DaemonFixture(apps: [
            "limited.toml": Self.app("limited", ["/bin/sh", "-c", "ulimit -n; ulimit -t; ulimit -v; ulimit -p; exec cat"],
                                     tables: "[rlimits]\nmax_open_files = 40\nmax_cpu_seconds = 20\nmax_memory = \"1G\"\nmax_processes = 64"),
        ], config: Self.config)
        let r = try daemon.usp(["connect", daemon.uri, "limited"], stdin: "within limits\n")
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == "40\n20\n\(1 << 20)\n64\nwithin limits\n", "ulimit -n, -t, -v (KiB), -p (RLIMIT_NPROC): \(r.stdout)")
        let listed = try Harness.run(try Harness.executable("uspd"), ["app", "list", "--data-dir", daemon.dataDirectory.path])
        #expect(listed.stdout.contains("[nofile 40, as 1073741824, cpu 20, nproc 64]"), "uspd app list shows the limits: \(listed.stdout)")
    }

    @Test func theProcessCapRefusesTheExtraSessionWithItsCode() throws {
        let daemon = try DaemonFixture(apps: [
            "solo.toml": Self.app("solo", ["/bin/sh", "-c", "echo started; exec cat"], tables: "[limits]\nmax_sessions = 1"),
        ], config: Self.config)
        let first = try InteractiveClient(daemon, application: "solo")
        try first.waitFor("started")
        let second = try daemon.usp(["connect", daemon.uri, "solo"], stdin: "x\n")
        #expect(second.status != 0)
        #expect(second.stderr.contains("reset the stream: application_busy"), "\(second.stderr)")
        let log = try #require(daemon.process).stderr
        #expect(log.contains("stream 1 of solo refused: max_sessions (1) of solo reached (application_busy)"), "\(log)")
        let refusal = try daemon.audit().last { $0["kind"] as? String == "rate_limited" }
        #expect(refusal?["application"] as? String == "solo")
        #expect(refusal?["result"] as? String == "application_busy")
        #expect(refusal?["detail"] as? String == "max_sessions (1) of solo reached")

        first.send("still mine\n")
        try first.waitFor("still mine")
        #expect(try first.finish() == 0)
        // The slot is free again once the first process has exited and been reaped.
        var third = (status: Int32(-1), stdout: "", stderr: "")
        for _ in 0..<30 {
            third = try daemon.usp(["connect", daemon.uri, "solo"], stdin: "again\n")
            if third.status == 0 { break }
            Thread.sleep(forTimeInterval: 0.1)
        }
        #expect(third.status == 0, "\(third.stderr)")
        #expect(third.stdout == "started\nagain\n")
    }

    @Test func aCrashingApplicationIsReapedLoggedAndAuditedWhileOthersGoOn() throws {
        let daemon = try DaemonFixture(apps: [
            "crashy.toml": Self.app("crashy", ["/bin/sh", "-c", "ulimit -c 0; echo ready; read line; echo got $line; kill -SEGV $$"]),
            "steady.toml": Self.app("steady", ["/bin/cat"]),
            "failing.toml": Self.app("failing", ["/bin/sh", "-c", "echo giving up; exit 3"]),
        ], config: Self.config)
        let pid = try #require(daemon.process).pid
        let steady = try InteractiveClient(daemon, application: "steady")
        steady.send("before\n")
        try steady.waitFor("before")

        let crashy = try InteractiveClient(daemon, application: "crashy")
        try crashy.waitFor("ready")
        crashy.send("boom\n")
        try crashy.waitFor("got boom")
        _ = try #require(daemon.process).waitForOutput(timeout: 10) { $0.contains("killed by SIGSEGV") }
        // The client learns that the application failed: the stream is reset with
        // application_failed (518), after the bytes it wrote before the crash.
        let crashStatus = try crashy.finish()
        #expect(crashStatus != 0)
        #expect(crashy.process.stdout == "ready\ngot boom\n")
        #expect(crashy.process.stderr.contains("failed (it crashed or exited with an error)"), "\(crashy.process.stderr)")

        // The other session is undisturbed and the daemon serves new ones.
        steady.send("after the crash\n")
        try steady.waitFor("after the crash")
        let fresh = try daemon.usp(["connect", daemon.uri, "steady"], stdin: "new session\n")
        #expect(fresh.status == 0 && fresh.stdout == "new session\n", "\(fresh.stderr)")
        #expect(try #require(daemon.process).isRunning)

        let log = try #require(daemon.process).stderr
        let line = log.split(separator: "\n").first { $0.contains("killed by SIGSEGV") }.map(String.init) ?? ""
        #expect(line.contains("crashy (session s-"), "\(log)")
        #expect(line.contains(", stream 1, pid "), "\(line)")
        let exited = try daemon.audit().filter { $0["kind"] as? String == "application_exited" }
        #expect(exited.count == 1, "\(exited)")
        #expect(exited.first?["application"] as? String == "crashy")
        #expect(exited.first?["result"] as? String == "SIGSEGV")
        #expect((exited.first?["detail"] as? String)?.hasPrefix("killed by SIGSEGV (pid ") == true)
        #expect((exited.first?["session"] as? String)?.hasPrefix("s-") == true)

        // A non-zero exit is recorded the same way.
        let failing = try daemon.usp(["connect", daemon.uri, "failing"], stdin: "")
        #expect(failing.stdout == "giving up\n")
        #expect(failing.status != 0 && failing.stderr.contains("failed (it crashed or exited with an error)"), "\(failing.stderr)")
        let failed = try daemon.audit().filter { $0["kind"] as? String == "application_exited" && $0["application"] as? String == "failing" }
        #expect(failed.map { $0["result"] as? String } == ["status 3"], "\(failed)")
        #expect(try #require(daemon.process).stderr.contains("exited with status 3"))

        #expect(try steady.finish() == 0)
        // Every child is reaped: none of uspd's children is a zombie.
        Thread.sleep(forTimeInterval: 0.5)
        #expect(Self.zombieChildren(of: pid) == [], "zombies left under uspd")
    }

    /// /dev/null cannot be polled (epoll refuses it): `usp connect < /dev/null > /dev/null` takes
    /// the thread bridge instead of crashing, and a failed application is still reported.
    @Test func devNullAsStandardInputAndOutputIsServed() throws {
        let daemon = try DaemonFixture(apps: [
            "hello.toml": Self.app("hello", ["/bin/sh", "-c", "echo hello; cat"]),
            "failing.toml": Self.app("failing", ["/bin/sh", "-c", "echo giving up; exit 3"]),
        ], config: Self.config)
        func connect(_ application: String) throws -> (status: Int32, stderr: String) {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: try Harness.executable("usp"))
            process.arguments = ["--home", daemon.home.path, "connect", daemon.uri, application]
            process.standardInput = FileHandle(forReadingAtPath: "/dev/null")
            process.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
            let errors = Pipe()
            process.standardError = errors
            try process.run()
            let text = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            return (process.terminationStatus, text)
        }
        let hello = try connect("hello")
        #expect(hello.status == 0, "\(hello.stderr)")
        let failing = try connect("failing")
        #expect(failing.status == 1 && failing.stderr.contains("failed (it crashed or exited with an error)"), "\(failing.stderr)")
    }

    /// Pids of `parent`'s children in state Z, from /proc.
    static func zombieChildren(of parent: pid_t) -> [Int] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap(Int.init).filter { pid in
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return false }
            let fields = stat[stat.index(close, offsetBy: 2)...].split(separator: " ")
            return fields.count > 1 && fields[0] == "Z" && Int(fields[1]) == Int(parent)
        }
    }
}

/// A TCP listener on 127.0.0.1 (any free port) that never accepts: a connect to it succeeds.
final class LoopbackListener {
    let fd: Int32
    let port: Int

    init() throws {
        let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s, $0, len) == 0 && listen(s, 16) == 0 && getsockname(s, $0, &len) == 0 }
        }
        guard ok else { Glibc.close(s); throw HarnessError("cannot listen on 127.0.0.1") }
        fd = s
        port = Int(UInt16(bigEndian: addr.sin_port))
    }

    func close() { Glibc.close(fd) }
}
