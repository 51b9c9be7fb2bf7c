import Foundation
import Testing
import USPUnix

/// What a descriptor is as a socket, as `usp agent` checks a socket systemd passes it.
@Suite struct SocketDescriptionTests {
    @Test func aListeningUnixSocketHasItsPath() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("sd-\(UUID().uuidString.prefix(8)).sock").path
        let fd = try UnixSocket.listen(at: try UnixSocketAddress(path: path))
        defer { close(fd); unlink(path) }
        let d = try SocketDescription.of(fd)
        #expect(d == SocketDescription(domain: AF_UNIX, type: CInt(SOCK_STREAM.rawValue), isListening: true, path: path))
        #expect(d.domainName == "AF_UNIX")
        #expect(d.typeName == "stream")
    }

    @Test func otherDescriptorsAreToldApart() throws {
        let pair = try SocketPair.make()
        defer { pair.close() }
        let unnamed = try SocketDescription.of(pair.first)
        #expect(unnamed.isListening == false)
        #expect(unnamed.path == nil)
        let datagram = socket(AF_UNIX, CInt(SOCK_DGRAM.rawValue), 0)
        defer { close(datagram) }
        #expect(try SocketDescription.of(datagram).typeName == "datagram")
        let pipe = try ProcessSpawn.pipe()
        defer { close(pipe.read); close(pipe.write) }
        #expect(throws: UnixError(.systemCall, errno: ENOTSOCK, "")) { try SocketDescription.of(pipe.read) }
        #expect(throws: UnixError(.systemCall, errno: EBADF, "")) { try SocketDescription.of(9999) }
    }
}
