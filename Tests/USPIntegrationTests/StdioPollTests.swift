import Foundation
import Testing

/// `usp connect` on one thread (`StdioPollSession`): what a user of ssh's ProxyCommand, a shell
/// pipe or a script sees, with the real client and daemon.
@Suite struct StdioPollTests {
    static let apps = [
        "echo.toml": execApp("echo", command: ["/bin/cat"], visibility: "public"),
        "yes.toml": execApp("yes", command: ["/usr/bin/yes", "usp"], visibility: "public"),
    ]

    static func bash(_ script: String, timeout: Double = 60) throws -> (status: Int32, stdout: String, stderr: String) {
        try Harness.run("/bin/bash", ["-c", script], timeout: timeout)
    }

    /// The relay runs on the main thread alone: no event loop, no task threads.
    @Test func aConnectionRunsOnOneThread() throws {
        let daemon = try DaemonFixture(apps: Self.apps)
        let client = try InteractiveClient(daemon, application: "echo")
        client.send("first\n")
        try client.waitFor("first")
        let status = try String(contentsOfFile: "/proc/\(client.process.pid)/status", encoding: .utf8)
        let threads = status.split(separator: "\n").first { $0.hasPrefix("Threads:") }
        #expect(threads?.split(separator: "\t").last == "1", "\(threads ?? "no Threads line")")
        client.send("second\n")
        try client.waitFor("second")
        #expect(try client.finish() == 0, "\(client.process.stderr)")
        #expect(client.process.stdout == "first\nsecond\n")
    }

    /// No thread is started at all, from exec to exit: not during the relay, and not when it ends
    /// (an `async` main would hand the main thread to Dispatch, which starts its worker and
    /// manager threads then). Traced with strace: every clone is a thread or a process.
    @Test func noThreadIsStartedFromStartToExit() throws {
        guard let strace = Harness.tool("strace", candidates: ["/usr/bin/strace", "/bin/strace"]) else {
            if Harness.strict { Issue.record("strace is not installed (apt-get install strace)") } else { print("SKIP: strace not installed") }
            return
        }
        let daemon = try DaemonFixture(apps: Self.apps)
        let usp = try Harness.executable("usp")
        let trace = try Harness.temporaryDirectory("strace").appendingPathComponent("clones").path
        let run = try Self.bash("printf 'ping\\n' | \(strace) -f -qq -e trace=clone,clone3,vfork,fork -o \(trace) \(usp) --home \(daemon.home.path) connect \(daemon.uri) echo")
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout == "ping\n")
        let clones = try String(contentsOfFile: trace, encoding: .utf8).split(separator: "\n").filter { $0.contains("clone") || $0.contains("fork") }
        #expect(clones.isEmpty, "threads or processes started: \(clones.joined(separator: " | "))")
        // The same trace catches them when they are there: a command that does start Swift
        // concurrency (the menu, through the async API) shows its clones.
        let menu = try Self.bash("\(strace) -f -qq -e trace=clone,clone3 -o \(trace) \(usp) --home \(daemon.home.path) menu \(daemon.uri)")
        #expect(menu.status == 0, "\(menu.stderr)")
        #expect(try String(contentsOfFile: trace, encoding: .utf8).contains("clone"), "the trace sees threads")
    }

    /// stdin and stdout pipes are made non-blocking for the relay and given back as they were: a
    /// shell that shares them must not find them non-blocking afterwards.
    @Test func theDescriptorsFlagsAreGivenBack() throws {
        let daemon = try DaemonFixture(apps: Self.apps)
        let input = Pipe()
        let shared = dup(input.fileHandleForReading.fileDescriptor)
        defer { close(shared) }
        #expect(fcntl(shared, F_GETFL) & O_NONBLOCK == 0)
        let client = try RunningProcess("usp connect echo", executable: try Harness.executable("usp"),
                                        arguments: ["--home", daemon.home.path, "connect", daemon.uri, "echo"], stdin: input.fileHandleForReading)
        input.fileHandleForWriting.write(Data("x\n".utf8))
        _ = try client.waitForOutput { $0.contains("x") }
        #expect(fcntl(shared, F_GETFL) & O_NONBLOCK != 0, "non-blocking while it relays")
        try input.fileHandleForWriting.close()
        #expect(try client.wait(timeout: 20) == 0, "\(client.stderr)")
        #expect(fcntl(shared, F_GETFL) & O_NONBLOCK == 0, "given back blocking")
    }

    /// Pipes on stdin and stdout are grown to 1 MiB for the relay (a quarter of the reads and
    /// wake-ups of a 64 KiB pipe in bulk), seen from the ends the test holds.
    @Test func pipesAreGrownForBulk() throws {
        let daemon = try DaemonFixture(apps: Self.apps)
        let input = Pipe()
        let getPipeSize: CInt = 1032
        let writeEnd = input.fileHandleForWriting.fileDescriptor
        #expect(fcntl(writeEnd, getPipeSize) == 65536, "a pipe starts at 64 KiB")
        let client = try RunningProcess("usp connect echo", executable: try Harness.executable("usp"),
                                        arguments: ["--home", daemon.home.path, "connect", daemon.uri, "echo"], stdin: input.fileHandleForReading)
        input.fileHandleForWriting.write(Data("x\n".utf8))
        _ = try client.waitForOutput { $0.contains("x") }
        #expect(fcntl(writeEnd, getPipeSize) == 1 << 20, "stdin's pipe")
        // stdout is the harness's pipe: seen through the client's own descriptor.
        let stdout = open("/proc/\(client.pid)/fd/1", O_RDONLY | O_NONBLOCK)
        #expect(stdout >= 0)
        if stdout >= 0 {
            #expect(fcntl(stdout, getPipeSize) == 1 << 20, "stdout's pipe")
            close(stdout)
        }
        try input.fileHandleForWriting.close()
        #expect(try client.wait(timeout: 20) == 0, "\(client.stderr)")
    }

    /// A reader that goes away (`| head`) is one plain line and status 1, not a crash; the
    /// daemon serves the next client.
    @Test func aReaderThatGoesAwayIsReportedPlainly() throws {
        let daemon = try DaemonFixture(apps: Self.apps)
        let usp = try Harness.executable("usp")
        let r = try Self.bash("'\(usp)' --home '\(daemon.home.path)' connect '\(daemon.uri)' yes | head -c 200000 | wc -c; echo \"status ${PIPESTATUS[0]}\"")
        #expect(r.stdout.contains("200000") && r.stdout.contains("status 1"), "\(r.stdout) \(r.stderr)")
        #expect(r.stderr.contains("usp: cannot write to standard output: Broken pipe"), "\(r.stderr)")
        let next = try daemon.usp(["connect", daemon.uri, "echo"], stdin: "still here\n")
        #expect(next.status == 0 && next.stdout == "still here\n", "\(next.stderr)")
    }

    /// Megabytes each way at once, through pipes: nothing lost, reordered or stuck, whether the
    /// relay waits on the socket, on stdin or on stdout.
    @Test func megabytesBothWaysThroughPipes() throws {
        let daemon = try DaemonFixture(apps: Self.apps)
        let dir = try Harness.temporaryDirectory("poll-bulk")
        let usp = try Harness.executable("usp")
        let r = try Self.bash("""
            set -eo pipefail
            head -c 24000000 /dev/urandom > '\(dir.path)/in'
            cat '\(dir.path)/in' | '\(usp)' --home '\(daemon.home.path)' connect '\(daemon.uri)' echo | sha256sum
            sha256sum < '\(dir.path)/in'
            """, timeout: 120)
        let sums = r.stdout.split(separator: "\n").map { $0.prefix(64) }
        #expect(r.status == 0 && sums.count == 2 && sums[0] == sums[1], "\(r.stdout) \(r.stderr)")
    }

    /// Regular files and /dev/null as stdin and stdout (they cannot be made non-blocking, and
    /// poll always reports them ready).
    @Test func filesAndDevNullAsStdinAndStdout() throws {
        let daemon = try DaemonFixture(apps: Self.apps)
        let dir = try Harness.temporaryDirectory("poll-files")
        let usp = try Harness.executable("usp")
        let r = try Self.bash("""
            set -e
            head -c 3000000 /dev/urandom > '\(dir.path)/in'
            '\(usp)' --home '\(daemon.home.path)' connect '\(daemon.uri)' echo < '\(dir.path)/in' > '\(dir.path)/out'
            cmp '\(dir.path)/in' '\(dir.path)/out' && echo same
            '\(usp)' --home '\(daemon.home.path)' connect '\(daemon.uri)' echo < /dev/null > /dev/null && echo null-ok
            """, timeout: 120)
        #expect(r.status == 0 && r.stdout == "same\nnull-ok\n", "\(r.stdout) \(r.stderr)")
    }

    /// A host name is resolved on the same thread and its addresses tried in turn (localhost's ::1
    /// is refused here, 127.0.0.1 answers); a name that does not resolve says so.
    @Test func hostNamesResolveAndFailPlainly() throws {
        let daemon = try DaemonFixture(apps: Self.apps)
        let byName = daemon.uri.replacingOccurrences(of: "@127.0.0.1:", with: "@localhost:")
        let ok = try daemon.usp(["connect", byName, "echo"], stdin: "by name\n")
        #expect(ok.status == 0 && ok.stdout == "by name\n", "\(ok.stderr)")
        let bad = daemon.uri.replacingOccurrences(of: "@127.0.0.1:", with: "@no-such-host.invalid:")
        let failed = try daemon.usp(["connect", bad, "echo"], stdin: "")
        #expect(failed.status == 1)
        #expect(failed.stderr.contains("the host name no-such-host.invalid does not resolve"), "\(failed.stderr)")
    }
}

extension StdioPollTests {
    /// Closed stdin and stdout (`<&- >&-`) become /dev/null, as with ssh: the socket never takes
    /// their numbers, so the connection ends normally (EOF in, output discarded).
    @Test func closedStandardDescriptorsBecomeDevNull() throws {
        let daemon = try DaemonFixture(apps: Self.apps)
        let usp = try Harness.executable("usp")
        let r = try Self.bash("'\(usp)' --home '\(daemon.home.path)' connect '\(daemon.uri)' echo <&- >&-; echo \"status $?\"")
        #expect(r.stdout == "status 0\n", "\(r.stdout) \(r.stderr)")
        #expect(r.stderr.isEmpty, "\(r.stderr)")
    }
}
