import Foundation
import Testing
import USPUnix

@Suite struct TCPSocketLookupTests {
    /// A loopback TCP connection inside this process: (listener, client end, server end).
    static func connectedPair() throws -> (CInt, CInt, CInt) {
        let listener = socket(AF_INET, CInt(SOCK_STREAM.rawValue), 0)
        let client = socket(AF_INET, CInt(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let connected = withUnsafeMutablePointer(to: &address) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { a in
                bind(listener, a, length) == 0 && listen(listener, 4) == 0 && getsockname(listener, a, &length) == 0
                    && connect(client, a, length) == 0
            }
        }
        try #require(connected)
        let server = accept(listener, nil, nil)
        try #require(server >= 0)
        return (listener, client, server)
    }

    @Test func findsAndDuplicatesTheConnectionByItsAddresses() throws {
        let (listener, client, server) = try Self.connectedPair()
        defer { close(listener); close(client); close(server) }
        let (local, remote) = try #require(TCPSocketLookup.endpoints(of: server))
        #expect(local.address == "127.0.0.1")
        #expect(remote == TCPSocketLookup.endpoints(of: client)?.local)

        let copy = try TCPSocketLookup.duplicate(local: local, remote: remote)
        defer { close(copy) }
        #expect(copy != server)
        #expect(try CloseOnExec.isSet(copy))
        // The duplicate is the same connection: it outlives the original descriptor.
        close(server)
        try StreamIO.writeAll(copy, Array("through the copy\n".utf8))
        #expect(try StreamIO.readLine(client, limit: 100) == "through the copy")

        // The reverse direction names the client's end, not the server's.
        let clientCopy = try TCPSocketLookup.duplicate(local: remote, remote: local)
        defer { close(clientCopy) }
        #expect(TCPSocketLookup.endpoints(of: clientCopy)?.local == remote)
    }

    @Test func noMatchIsENOENT() throws {
        let nowhere = TCPSocketLookup.Endpoint(address: "127.0.0.1", port: 1)
        #expect {
            try TCPSocketLookup.duplicate(local: nowhere, remote: nowhere)
        } throws: { error in
            (error as? UnixError)?.errno == ENOENT
        }
    }
}
