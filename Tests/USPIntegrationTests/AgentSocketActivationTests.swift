import Foundation
import Testing
import USPUnix

/// `usp agent` under systemd socket activation, with the test as the service manager: it makes
/// the listening socket, passes it on fd 3 with LISTEN_FDS=1 and LISTEN_PID the agent's pid, and
/// listens for READY=1 and STOPPING=1 on a NOTIFY_SOCKET of its own.
@Suite(.serialized) struct AgentSocketActivationTests {
    @Test func theAgentServesOnThePassedSocketNotifiesAndLeavesTheSocketInPlace() throws {
        let home = try Harness.temporaryDirectory("activated")
        chmod(home.path, 0o700)
        let path = home.appendingPathComponent("agent.sock").path
        let listener = try UnixSocket.listen(at: try UnixSocketAddress(path: path), mode: 0o600)
        defer { close(listener) }
        let notify = try NotifySocket(directory: home)

        let agent = try Self.activatedAgent(home: home, descriptor3: listener, environment: ["NOTIFY_SOCKET": notify.path])
        #expect(try notify.receive() == "READY=1")
        // `usp agent status` finds it at the default place: the socket the test made.
        let status = try Harness.run(try Harness.executable("usp"), ["--home", home.path, "agent", "status"])
        #expect(status.status == 0, "\(status.stderr)\(agent.stderr)")
        #expect(status.stdout == "no open streams\n")
        let started = try #require(AgentProcess.log(home: home).first { $0["event"] as? String == "started" })
        #expect(started["socket_activated"] as? Bool == true)
        #expect(started["socket"] as? String == path)
        #expect(started["pid"] as? Int == Int(agent.pid))

        // `usp agent stop` signals the agent by the pid of its status answer (SO_PEERCRED would
        // name whoever called listen(): here the test, under systemd the service manager).
        let stop = try Harness.run(try Harness.executable("usp"), ["--home", home.path, "agent", "stop"])
        #expect(stop.status == 0, "\(stop.stderr)")
        #expect(stop.stdout == "agent stopped (pid \(agent.pid))\n")
        #expect(try agent.wait() == 0)
        #expect(try notify.receive() == "STOPPING=1")
        // The socket is the service manager's: still there, and still listening for the next agent.
        var info = stat()
        #expect(lstat(path, &info) == 0 && info.st_mode & S_IFMT == S_IFSOCK, "the agent removed a socket it did not make")
        let next = try Self.activatedAgent(home: home, descriptor3: listener)
        _ = try next.waitForOutput { $0.contains("agent listening on \(path)") }
        let again = try Harness.run(try Harness.executable("usp"), ["--home", home.path, "agent", "status", "--json"])
        #expect(again.status == 0, "\(again.stderr)\(next.stderr)")
        #expect(again.stdout == "[]\n")
        next.stop()
        #expect(FileManager.default.fileExists(atPath: path))
    }

    @Test func aPassedDescriptorThatIsNotAListeningUnixStreamSocketOfOursIsRefused() throws {
        let home = try Harness.temporaryDirectory("activated-bad")
        chmod(home.path, 0o700)
        func refusal(_ descriptor: CInt) throws -> String {
            let agent = try Self.activatedAgent(home: home, descriptor3: descriptor)
            #expect(try agent.wait() == 1, "\(agent.stderr)")
            #expect(!FileManager.default.fileExists(atPath: home.appendingPathComponent("agent.sock").path),
                    "a refused agent does not make its own socket instead")
            return agent.stderr
        }
        let what = "usp: agent: descriptor 3 from the service manager (LISTEN_FDS)"

        let pipe = try ProcessSpawn.pipe()
        defer { close(pipe.read); close(pipe.write) }
        #expect(try refusal(pipe.read) == "\(what) is not a socket (invalid_socket)\n")

        let datagram = socket(AF_UNIX, CInt(SOCK_DGRAM.rawValue) | CInt(SOCK_CLOEXEC.rawValue), 0)
        defer { close(datagram) }
        #expect(try refusal(datagram) == "\(what) is a datagram socket, not a stream socket; use ListenStream= (invalid_socket)\n")

        let bound = socket(AF_UNIX, CInt(SOCK_STREAM.rawValue) | CInt(SOCK_CLOEXEC.rawValue), 0)
        defer { close(bound) }
        let boundPath = home.appendingPathComponent("bound.sock").path
        #expect(try UnixSocketAddress(path: boundPath).withSockAddr { bind(bound, $0, $1) } == 0)
        #expect(try refusal(bound) == "\(what) is not listening (a connection, as with Accept=yes); use Accept=no (invalid_socket)\n")

        let tcp = socket(AF_INET, CInt(SOCK_STREAM.rawValue) | CInt(SOCK_CLOEXEC.rawValue), 0)
        defer { close(tcp) }
        #expect(Glibc.listen(tcp, 1) == 0)
        #expect(try refusal(tcp).hasPrefix("\(what) is an AF_INET socket, not AF_UNIX"))

        // A listening socket that others may connect to.
        let openPath = home.appendingPathComponent("open.sock").path
        let open = try UnixSocket.listen(at: try UnixSocketAddress(path: openPath), mode: 0o666)
        defer { close(open) }
        #expect(try refusal(open) == "usp: agent: the agent socket \(openPath) is writable by others (mode 666); refusing to serve on it: SocketMode=0600 in usp-agent.socket (unsafe_socket)\n")
    }

    /// `usp --home HOME agent` with `descriptor3` on fd 3, LISTEN_FDS=1 and LISTEN_PID its own pid
    /// (the shell execs usp, which keeps the shell's pid).
    static func activatedAgent(home: URL, descriptor3: CInt, environment: [String: String] = [:]) throws -> RunningProcess {
        try RunningProcess("usp agent (socket activated)", executable: "/bin/sh",
                           arguments: ["-c", #"export LISTEN_FDS=1 LISTEN_PID=$$; exec "$0" "$@""#, try Harness.executable("usp"),
                                       "--home", home.path, "agent"],
                           environment: environment, descriptor3: descriptor3)
    }
}

/// A NOTIFY_SOCKET as the service manager has one: a datagram socket that receives `READY=1`.
final class NotifySocket {
    let path: String
    private let fd: CInt

    init(directory: URL) throws {
        path = directory.appendingPathComponent("notify.sock").path
        fd = socket(AF_UNIX, CInt(SOCK_DGRAM.rawValue) | CInt(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0, try UnixSocketAddress(path: path).withSockAddr({ bind(fd, $0, $1) }) == 0 else {
            throw HarnessError("cannot bind the notify socket \(path): \(String(cString: strerror(errno)))")
        }
        try UnixSocket.setTimeouts(fd, seconds: 20)
    }

    /// The next datagram as text; fails after 20 s.
    func receive() throws -> String {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        guard n >= 0 else { throw HarnessError("no notification on \(path) within 20 s") }
        return String(decoding: buffer[0..<n], as: UTF8.self)
    }

    deinit { close(fd) }
}
