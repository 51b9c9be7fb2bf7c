import Foundation
import Testing
import USPUnix

/// fork + execve through CUSPSpawn: descriptors, environment, LISTEN_PID, resource limits, and
/// failures reported with the step that failed.
@Suite struct ProcessSpawnTests {
    /// Runs `script` with /bin/sh, its stdout on a pipe; returns (output, exit).
    static func run(_ script: String, configure: (inout ProcessSpawn) -> Void = { _ in }) throws -> (String, ProcessExit) {
        let out = try ProcessSpawn.pipe()
        var spawn = ProcessSpawn(path: "/bin/sh", arguments: ["sh", "-c", script], environment: ["PATH": "/usr/bin:/bin", "GREETING": "hi"])
        spawn.standardOutput = out.write
        configure(&spawn)
        let pid: pid_t
        do { pid = try spawn.run() } catch {
            close(out.read); close(out.write)
            throw error
        }
        close(out.write)
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(out.read, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            bytes += buffer[0..<n]
        }
        close(out.read)
        var status: CInt = 0
        waitpid(pid, &status, 0)
        return (String(decoding: bytes, as: UTF8.self), ProcessExit(waitStatus: status))
    }

    @Test func theChildGetsItsStreamEnvironmentAndOwnProcessGroupAndNothingElse() throws {
        // A descriptor of ours that is not close-on-exec must still not reach the child.
        let leaky = open("/dev/null", O_RDONLY)
        defer { close(leaky) }
        let (output, exit) = try Self.run("echo \"$GREETING\"; ps -o pgid= -p $$ | tr -d ' '; echo $$; ls /proc/self/fd | sort -n | tr '\\n' ' '")
        let lines = output.split(separator: "\n").map(String.init)
        #expect(exit == .exited(0))
        #expect(lines.first == "hi")
        #expect(lines.count == 4 && lines[1] == lines[2], "its own process group: \(lines)")
        // 0, 1, 2 and the descriptor ls opens to read /proc/self/fd.
        #expect(lines.last?.split(separator: " ").count == 4, "\(lines.last ?? "")")
    }

    @Test func listenPIDIsTheProgramsOwnPidAndDescriptor3IsPlaced() throws {
        let pair = try SocketPair.make()
        defer { pair.close() }
        let (output, _) = try Self.run("echo $LISTEN_PID $$; test -S /proc/self/fd/3 && echo socket3") { spawn in
            spawn.setListenPID = true
            spawn.descriptor3 = pair.second
        }
        let lines = output.split(separator: "\n")
        let pids = lines.first?.split(separator: " ") ?? []
        #expect(pids.count == 2 && pids[0] == pids[1], "\(output)")
        #expect(lines.last == "socket3")
    }

    @Test func aNewSessionAndStandardErrorForADaemon() throws {
        // Field 6 of /proc/PID/stat is the session; the shell's pid is its own session's ID.
        let (output, exit) = try Self.run("echo $$ $(cut -d' ' -f6 /proc/$$/stat); echo to-stderr >&2") { spawn in
            spawn.newSession = true
            spawn.standardError = spawn.standardOutput
        }
        #expect(exit == .exited(0))
        let lines = output.split(separator: "\n").map(String.init)
        let ids = lines.first?.split(separator: " ") ?? []
        #expect(ids.count == 2 && ids[0] == ids[1], "its own session: \(output)")
        #expect(lines.last == "to-stderr")
        // Without it, the child's session is ours.
        let (same, _) = try Self.run("cut -d' ' -f6 /proc/$$/stat")
        #expect(same == "\(getsid(0))\n")
    }

    @Test func resourceLimitsAreSetSoftAndHard() throws {
        let (output, _) = try Self.run("ulimit -n; ulimit -Hn; ulimit -t; ulimit -v") { spawn in
            spawn.resourceLimits = [.openFiles(37), .cpuSeconds(11), .addressSpace(512 << 20)]
        }
        #expect(output == "37\n37\n11\n\(512 << 10)\n")
    }

    @Test func aFailedStepIsNamedWithItsErrno() throws {
        #expect(throws: UnixError.self) { _ = try Self.run("true") { $0.path = "/nonexistent/program" } }
        do {
            _ = try Self.run("true") { $0.path = "/nonexistent/program" }
        } catch let error as UnixError {
            #expect(error.errno == ENOENT)
            #expect(error.detail == "exec /nonexistent/program: No such file or directory")
        }
        // Raising a hard limit above the system's maximum fails in the child, before exec.
        do {
            _ = try Self.run("true") { $0.resourceLimits = [.openFiles(1 << 30)] }
            Issue.record("a limit above fs.nr_open was accepted")
        } catch let error as UnixError {
            #expect(error.detail.hasPrefix("setrlimit RLIMIT_NOFILE 1073741824: "), "\(error.detail)")
        }
    }

    @Test func exitStatusesAreDescribed() throws {
        #expect(try Self.run("exit 3").1 == .exited(3))
        let (_, killed) = try Self.run("ulimit -c 0; kill -SEGV $$")
        #expect(killed == .signaled(SIGSEGV, coreDumped: false))
        #expect(killed.description == "killed by SIGSEGV")
        #expect(killed.summary == "SIGSEGV")
        #expect(ProcessExit.exited(3).description == "exited with status 3")
        #expect(ProcessExit.signaled(SIGABRT, coreDumped: true).description == "killed by SIGABRT (core dumped)")
        #expect(ProcessExit.signalName(64) == "signal 64")
    }
}
