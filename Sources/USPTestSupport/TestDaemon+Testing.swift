import Testing
import USPCore

/// Starts `daemon`, runs `body` with it, then asks the daemon to stop without waiting for it: a
/// client the test leaves open would hold the drain up to its timeout.
public func withDaemon(_ daemon: TestDaemon, _ body: (TestDaemon) async throws -> Void) async throws {
    try await daemon.start()
    defer { Task { try await daemon.stop() } }
    try await body(daemon)
}

extension TestDaemon {
    /// A client on the IPv4 listener, in IK with `clientKey`, that has sent `request` as its first
    /// message; expects the menu to arrive (an issue at the caller's line if it does not).
    public func menuClient(_ request: ClientStart = ClientStart(), clientKey: KeyPair = Fixtures.clientKey, source: String? = nil,
                           sourceLocation: SourceLocation = #_sourceLocation) throws -> SocketClient {
        let client = try SocketClient(port: port4, source: source, mode: .knownServer(serverKey: Fixtures.serverKey.publicKey, clientStatic: clientKey))
        try client.start(request)
        #expect(try client.pumpMenu(), sourceLocation: sourceLocation)
        return client
    }
}
