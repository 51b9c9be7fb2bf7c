import Foundation
import Testing
@testable import USPCore
@testable import USPServer
import USPStore
import USPTestSupport

/// `login_token_binding`: a login token is accepted from anywhere (none), only from the network
/// it was issued to (prefix: /24, /64), or only from its address.
@Suite struct LoginTokenBindingTests {
    static func context(_ address: String, binding: [UInt8]) -> SessionContext {
        SessionContext(peerAddress: address, pattern: .ik, clientStatic: nil, channelBinding: binding, isEarlyData: false,
                       serverSessionID: "s-\(address)", clientSessionID: nil, identity: nil, now: Timestamp(seconds: 1_800_000_000, nanoseconds: 0))
    }

    /// Logs bob in from 192.0.2.7 and presents his token from each of `from`; the codes (nil: accepted).
    static func outcomes(_ binding: ServerPolicy.LoginTokenBinding, from addresses: [String]) throws -> [String?] {
        let store = Fixtures.store()
        var settings = ServerPolicy.Settings()
        settings.loginTokenBinding = binding
        let policy = ServerPolicy(store: store, catalog: ApplicationCatalog(), audit: AuditLog(store: store, flushInterval: .zero),
                                  settings: settings, verifyPassword: testVerifyPassword)
        let h = [UInt8](repeating: 9, count: 32)
        let grant = try policy.authenticate(fields: ["auth_method": "password", "user": "bob", "password": "hunter2"],
                                            context: context("192.0.2.7", binding: h)).get()
        return try addresses.map { address in
            let presentation = try TokenProof.parse(try TokenProof.present(secret: grant.token, handshakeHash: h))
            switch policy.validateAuthorizationToken(presentation, context: context(address, binding: h)) {
            case .success((let identity, _)):
                #expect(identity.name == "bob")
                return nil
            case .failure(let error):
                return error.code.name
            }
        }
    }

    @Test func unboundByDefault() throws {
        #expect(ServerPolicy.Settings().loginTokenBinding == .none)
        #expect(try Self.outcomes(.none, from: ["192.0.2.7", "198.51.100.1", "2001:db8::1"]) == [nil, nil, nil])
    }

    @Test func boundToTheAddress() throws {
        #expect(try Self.outcomes(.address, from: ["192.0.2.7", "192.0.2.8", "198.51.100.1"]) == [nil, "token_wrong_address", "token_wrong_address"])
    }

    @Test func boundToThePrefix() throws {
        #expect(try Self.outcomes(.prefix, from: ["192.0.2.7", "192.0.2.200", "::ffff:192.0.2.9", "192.0.3.7", "2001:db8::1"])
                == [nil, nil, nil, "token_wrong_address", "token_wrong_address"])
    }

    @Test func prefixesOfAddresses() {
        #expect(SourcePrefix.of("192.0.2.77") == "192.0.2.0/24")
        #expect(SourcePrefix.of("::ffff:192.0.2.77") == "192.0.2.0/24")
        #expect(SourcePrefix.of("2001:db8:1:2:3:4:5:6") == "2001:db8:1:2::/64")
        #expect(SourcePrefix.of("10.1.2.3", v4Bits: 8) == "10.0.0.0/8")
        #expect(SourcePrefix.of("2001:db8:abcd:1234::1", v6Bits: 48) == "2001:db8:abcd::/48")
        #expect(SourcePrefix.of("not an address") == "not an address")
    }
}
