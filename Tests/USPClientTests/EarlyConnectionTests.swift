import Foundation
import Glibc
import NIOCore
import Testing
import USPCore
@testable import USPClient

/// `EarlyConnection`: the SYN sent before the client is ready, taken over by the first USP
/// connection to the same address and port.
@Suite(.serialized) struct EarlyConnectionTests {
    @Test func aHostNameIsLeftToTheResolver() {
        #expect(EarlyConnection.begin(host: "localhost", port: 7300) == nil)
        #expect(EarlyConnection.begin(host: "example.org", port: 7300) == nil)
    }

    @Test func theDescriptorIsTakenOnceAndOnlyForItsAddressAndPort() throws {
        let early = try #require(EarlyConnection.begin(host: "127.0.0.1", port: 9))
        #expect(early.take(host: "127.0.0.1", port: 10) == nil)
        #expect(early.take(host: "127.0.0.2", port: 9) == nil)
        let fd = try #require(early.take(host: "127.0.0.1", port: 9))
        #expect(early.take(host: "127.0.0.1", port: 9) == nil)
        close(fd)
    }

    @Test func theConnectionUsesTheEarlySocket() async throws {
        let t = TempHome()
        try await withServer { server in
            let uri = try ServerURI(parsing: server.pinnedURI)
            var options = USPConnectionOptions()
            let early = try #require(EarlyConnection.begin(host: server.host, port: server.port))
            options.earlyConnection = early
            let c = try await USPConnection.connect(to: uri, home: t.home, options: options)
            let menu = try await c.menu()
            #expect(menu.applications.values.contains { $0.name == "echo" })
            // Taken: nothing is left for a second connection, which connects as usual.
            #expect(early.take(host: server.host, port: server.port) == nil)
            let second = try await USPConnection.connect(to: uri, home: t.home, options: options)
            await second.close()
            await c.close()
        }
    }

    @Test func aRefusedEarlyConnectIsReportedAsTheUsualPathReportsIt() async throws {
        let port = closedLoopbackPort()
        var options = USPConnectionOptions()
        options.earlyConnection = try #require(EarlyConnection.begin(host: "127.0.0.1", port: port))
        let t = TempHome()
        let e = await expectClientError {
            _ = try await USPConnection.connect(to: try ServerURI(parsing: "usp://127.0.0.1:\(port)"), home: t.home, options: options)
        }
        #expect(e?.code == .unreachable)
        #expect(e?.message == "cannot reach 127.0.0.1:\(port): connection refused; is uspd running and listening on that port?")
    }
}
