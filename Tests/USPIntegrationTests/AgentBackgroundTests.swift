import Foundation
import Testing
import USPUnix

/// `usp agent start` and `usp agent stop`, as ssh-agent is used: a detached agent that outlives
/// the command that started it, found and stopped again by its socket.
@Suite(.serialized) struct AgentBackgroundTests {
    @Test func startStatusStopAndAgain() throws {
        let home = try Harness.temporaryDirectory("background")
        chmod(home.path, 0o700)
        let socket = home.appendingPathComponent("agent.sock").path
        let start = try Self.usp(home, ["agent", "start", "--rate", "3/min", "--burst", "2"])
        #expect(start.status == 0, "\(start.stderr)")
        let pid = try #require(Self.pid(in: start.stdout, after: "agent started (pid "), "\(start.stdout)")
        defer { if ProcessLiveness.isRunning(pid) { kill(pid, SIGKILL) } }
        #expect(start.stdout == "agent started (pid \(pid)) on \(socket)\n")
        // Detached: its own session, its stdin /dev/null; the options reached it.
        #expect(getsid(pid) == pid)
        #expect(realpath("/proc/\(pid)/fd/0") == "/dev/null")
        let started = try #require(AgentProcess.log(home: home).first { $0["event"] as? String == "started" })
        #expect(started["pid"] as? Int == Int(pid))
        #expect(started["rate"] as? String == "3/min")
        #expect(started["burst"] as? Int == 2)
        #expect(started["socket_activated"] as? Bool == false)

        let status = try Self.usp(home, ["agent", "status"])
        #expect(status.status == 0, "\(status.stderr)")
        #expect(status.stdout == "no open streams\n")

        // Started again: the running agent is reported, nothing new starts.
        let twice = try Self.usp(home, ["agent", "start"])
        #expect(twice.status == 0, "\(twice.stderr)")
        #expect(twice.stdout == "agent already running (pid \(pid)) on \(socket)\n")
        #expect(AgentProcess.log(home: home).filter { $0["event"] as? String == "started" }.count == 1)

        let stop = try Self.usp(home, ["agent", "stop"])
        #expect(stop.status == 0, "\(stop.stderr)")
        #expect(stop.stdout == "agent stopped (pid \(pid))\n")
        #expect(!ProcessLiveness.isRunning(pid))
        #expect(!FileManager.default.fileExists(atPath: socket))
        #expect(AgentProcess.log(home: home).last?["event"] as? String == "stopped")

        let none = try Self.usp(home, ["agent", "stop"])
        #expect(none.status == 1)
        #expect(none.stdout.isEmpty)
        #expect(none.stderr == "usp: agent: no agent is running on \(socket) (not_running)\n")
    }

    @Test func anAgentThatCannotStartIsReportedWithItsOwnLine() throws {
        let home = try Harness.temporaryDirectory("background-refused")
        chmod(home.path, 0o770)
        let start = try Self.usp(home, ["agent", "start"])
        #expect(start.status == 1)
        #expect(start.stdout.isEmpty)
        #expect(start.stderr.hasPrefix("usp: agent: the agent exited with status 1 before it listened: \(home.path) is writable by its group"),
                "\(start.stderr)")
        #expect(start.stderr.hasSuffix("(start_failed)\n"), "\(start.stderr)")
        // The agent's own line stays in agent.err.
        let errors = try String(contentsOf: home.appendingPathComponent("agent.err"), encoding: .utf8)
        #expect(errors.contains("(unsafe_socket)"), "\(errors)")
    }

    static func usp(_ home: URL, _ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        try Harness.run(try Harness.executable("usp"), ["--home", home.path] + arguments, timeout: 30)
    }

    /// The number after `prefix` in `text`.
    static func pid(in text: String, after prefix: String) -> pid_t? {
        guard let range = text.range(of: prefix) else { return nil }
        return pid_t(text[range.upperBound...].prefix { $0.isNumber })
    }
}
