import Foundation
import Testing
import USPUnix

@Suite struct UnixSocketTests {
    static func temporaryPath(_ name: String) -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("uspunix-\(UUID().uuidString.prefix(8))")
        try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir.appendingPathComponent(name).path
    }

    @Test func listenConnectAcceptAndPeerCredentials() throws {
        let address = try UnixSocketAddress(path: Self.temporaryPath("s.sock"))
        let listener = try UnixSocket.listen(at: address)
        defer { close(listener); unlink(address.path) }
        let client = try UnixSocket.connect(to: address)
        defer { close(client) }
        let server = try UnixSocket.accept(listener)
        defer { close(server) }
        #expect(try CloseOnExec.isSet(server))
        #expect(try CloseOnExec.isSet(client))

        let peer = try PeerCredentials.of(server)
        #expect(peer == PeerCredentials(pid: getpid(), uid: getuid(), gid: getgid()))
        try StreamIO.writeAll(client, Array("ok\nrest".utf8))
        #expect(try StreamIO.readLine(server, limit: 100) == "ok")
        #expect(try StreamIO.readExactly(server, 4) == Array("rest".utf8))
    }

    @Test func missingAndRefusingSocketsGiveTheirErrno() throws {
        let missing = try UnixSocketAddress(path: Self.temporaryPath("none.sock"))
        #expect(throws: UnixError.call("connect", errno: ENOENT)) { try UnixSocket.connect(to: missing) }

        // A socket file nobody listens on: bound, never listening.
        let path = Self.temporaryPath("dead.sock")
        let fd = socket(AF_UNIX, CInt(SOCK_STREAM.rawValue), 0)
        let address = try UnixSocketAddress(path: path)
        #expect(address.withSockAddr { bind(fd, $0, $1) } == 0)
        defer { close(fd); unlink(path) }
        #expect(throws: UnixError.call("connect", errno: ECONNREFUSED)) { try UnixSocket.connect(to: address) }
    }

    @Test func staleSocketFileIsReplaced() throws {
        let path = Self.temporaryPath("stale.sock")
        let address = try UnixSocketAddress(path: path)
        close(try UnixSocket.listen(at: address))
        // The file stays behind, refusing connections; a new listener takes its place.
        let listener = try UnixSocket.listen(at: address)
        defer { close(listener); unlink(path) }
        close(try UnixSocket.connect(to: address))
    }

    @Test func pathsThatDoNotFitAreRefused() {
        #expect(throws: UnixError(.invalidPath, "")) { try UnixSocketAddress(path: "/" + String(repeating: "x", count: 200)) }
        #expect(throws: UnixError(.invalidPath, "")) { try UnixSocketAddress(path: "") }
        #expect(UnixSocketAddress.maximumPathLength == 107)
    }

    @Test func timeoutsAndCloseOnExecHelpers() throws {
        let pair = try SocketPair.make()
        defer { pair.close() }
        try UnixSocket.setTimeouts(pair.first, seconds: 0.05)
        #expect(throws: UnixError(.timedOut, errno: EAGAIN, "")) { try StreamIO.readExactly(pair.first, 1) }
        try CloseOnExec.set(pair.second, false)
        #expect(try !CloseOnExec.isSet(pair.second))
        let copy = try CloseOnExec.duplicate(pair.second, atLeast: 50)
        defer { close(copy) }
        #expect(copy >= 50)
        #expect(try CloseOnExec.isSet(copy))
    }
}
