import Foundation
import Testing

/// Out of descriptors, uspd must not spin on accept: it pauses accepting (the connections wait in
/// the kernel's backlog), says why once, and serves again as soon as descriptors come back.
@Suite(.serialized) struct DescriptorExhaustionTests {
    static let config = """
        handshake_timeout = 30
        max_unauthenticated = 4096
        max_connections_per_source = 0
        handshake_rate = 1000000
        handshake_burst = 1000000

        """

    static func cpuTicks(_ pid: Int32) throws -> Int {
        let stat = try String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)
        // Fields after the command name (which may hold spaces): utime and stime are 14 and 15.
        let fields = stat[stat.range(of: ")")!.upperBound...].split(separator: " ")
        return Int(fields[11])! + Int(fields[12])!
    }

    static func connect(port: Int) -> Int32? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let ok = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if ok != 0 { close(fd); return nil }
        return fd
    }

    @Test func outOfDescriptorsTheAcceptLoopPausesAndResumes() throws {
        let daemon = try DaemonFixture(config: Self.config, descriptorLimit: 64)
        let uspd = try #require(daemon.process)
        #expect(uspd.stderr.contains("the descriptor limit is 64"), "a limit below what max_connections needs is named: \(uspd.stderr)")

        // More silent connections than uspd has descriptors: it accepts until EMFILE, the rest queue.
        var held: [Int32] = []
        defer { for fd in held { close(fd) } }
        for _ in 0..<150 { if let fd = Self.connect(port: daemon.port) { held.append(fd) } }
        Thread.sleep(forTimeInterval: 0.5)
        let before = try Self.cpuTicks(uspd.pid)
        Thread.sleep(forTimeInterval: 2)
        let used = try Self.cpuTicks(uspd.pid) - before
        // 2 s is 200 ticks of 10 ms; under 10 % is under 20.
        #expect(used < 20, "uspd used \(used) ticks of CPU in 2 s while out of descriptors")
        let pausing = uspd.stderr.components(separatedBy: "pausing new connections").count - 1
        #expect(pausing >= 1 && pausing <= 3, "the pause is said once per episode, not once per failed accept: \(pausing)")

        // Descriptors come back: a real client is served within a second.
        for fd in held { close(fd) }
        held = []
        let started = Date()
        var menu = (status: Int32(-1), stdout: "", stderr: "")
        while Date().timeIntervalSince(started) < 5 {
            menu = try daemon.usp(["menu", daemon.uri], timeout: 10)
            if menu.status == 0 { break }
        }
        #expect(menu.status == 0, "served again: \(menu.stderr)")
        #expect(Date().timeIntervalSince(started) < 2, "served again within \(Date().timeIntervalSince(started)) s")
    }
}
