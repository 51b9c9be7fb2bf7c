import Glibc
import NIOCore
import NIOPosix
import Testing
import USPCore
import USPNIO
@testable import USPClient

/// What a person reads when the network fails: words and the errno name, never the I/O
/// library's call descriptions.
@Suite struct ErrorWordingTests {
    @Test func socketErrorsInWords() {
        #expect(SocketErrorText.describe(IOError(errnoCode: ECONNRESET, reason: "read(descriptor:pointer:size:)"))
                == "the connection was reset by the other side (ECONNRESET)")
        #expect(SocketErrorText.describe(IOError(errnoCode: EADDRINUSE, reason: "bind(descriptor:ptr:bytes:)"))
                == "the address is already in use (another program listens there) (EADDRINUSE)")
        #expect(!SocketErrorText.describe(IOError(errnoCode: EIO, reason: "read(descriptor:pointer:size:)")).contains("descriptor"))
    }

    @Test func aHandshakeThatDoesNotDecryptNamesTheLikelyCause() {
        let e = ErrorText.sessionEnded(reason: USPError(.handshakeDecryptFailed, "message 2: AEAD tag did not verify"), serverError: nil,
                                       server: ServerURI(host: "h", port: 1), handshakeDone: false)
        #expect(e.message.contains("does not decrypt under the key we expected") && !e.message.contains("AEAD"), "\(e.message)")
    }

    /// A server whose database is down says so, and the person is told it is the server's
    /// trouble and passing, not their password or token.
    @Test func anUnreachableStoreIsNamedAsTheServersAndPassing() {
        let server = ServerURI(host: "h", port: 1)
        let login = ErrorText.login(WireError(.storeUnavailable, "store: connection refused"), user: "alice", server: server)
        #expect(login.message.contains("cannot reach its database") && !login.message.contains("wrong user"), "\(login.message)")
        #expect(login.wireCode == .storeUnavailable)
        let open = ErrorText.streamRefused(code: .storeUnavailable, message: "store unavailable", server: server)
        #expect(open.message.contains("try again later") && !open.message.contains("token"), "\(open.message)")
        let request = ErrorText.applicationRequest(WireError(.storeUnavailable), name: "ssh", offer: nil, server: server, byName: true)
        #expect(request.message.contains("cannot reach its database") && !request.message.contains("log in"), "\(request.message)")
    }

    @Test func forwardOnABusyPortSaysSo() async throws {
        let busy = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: "127.0.0.1", port: 0).get()
        defer { busy.close(promise: nil) }
        let port = try #require(busy.localAddress?.port)
        do {
            _ = try await USPForwarder(listenHost: "127.0.0.1", listenPort: port, server: ServerURI(host: "127.0.0.1", port: 1),
                                       home: ClientHome(directory: "/nonexistent"), begin: .descriptor({ -1 }))
            Issue.record("listened on a port in use")
        } catch let e as USPClientError {
            #expect(e.message == "cannot listen on 127.0.0.1:\(port): the address is already in use (another program listens there) (EADDRINUSE)", "\(e.message)")
        }
    }
}
