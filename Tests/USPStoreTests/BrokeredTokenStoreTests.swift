import Foundation
import Testing
import USPTestSupport
@testable import USPStore

/// Brokered application tokens in both backends: the address they were issued for is kept, and
/// a broker's recent brokered tokens are counted (its tokens-per-minute limit), over every
/// process sharing the store.
@Suite struct BrokeredTokenStoreTests {
    func token(_ id: String, identity: String, issued: Double, brokeredFor: String?) -> TokenRecord {
        TokenRecord(id: id, kind: .application, publicKey: "pk-\(id)", identity: identity, application: "echo",
                    peerAddress: brokeredFor ?? "192.0.2.10", requestJSON: "{}", authorizationTokenID: "login-\(identity)",
                    issuedAt: Date(timeIntervalSince1970: issued), expiresAt: Date(timeIntervalSince1970: issued + 60), brokeredFor: brokeredFor)
    }

    @Test(arguments: StoreBackend.all) func theBeneficiaryIsKeptAndBrokeredTokensAreCounted(_ backend: StoreBackend) throws {
        guard let opened = try backend.open() else { return }
        let store = opened.store
        let other = try opened.another()
        try store.insertToken(token("a", identity: "relay", issued: 1000, brokeredFor: "10.20.1.2"))
        try other.insertToken(token("b", identity: "relay", issued: 1030, brokeredFor: "2001:db8::5"))
        try store.insertToken(token("c", identity: "relay", issued: 1040, brokeredFor: nil))
        try store.insertToken(token("d", identity: "ann", issued: 1040, brokeredFor: "10.20.1.3"))
        #expect(try store.token(id: "a")?.brokeredFor == "10.20.1.2")
        #expect(try store.token(id: "a")?.peerAddress == "10.20.1.2")
        #expect(try store.token(id: "c")?.brokeredFor == nil)
        #expect(try store.brokeredTokenCount(identity: "relay", since: Date(timeIntervalSince1970: 1000)) == 2)
        #expect(try store.brokeredTokenCount(identity: "relay", since: Date(timeIntervalSince1970: 1000.001)) == 1)
        #expect(try other.brokeredTokenCount(identity: "relay", since: Date(timeIntervalSince1970: 1031)) == 0)
        #expect(try store.brokeredTokenCount(identity: "ann", since: Date(timeIntervalSince1970: 0)) == 1)
        // Revoked ones still count: revoking does not buy a broker more tokens.
        _ = try store.revokeTokens(ids: ["a"], at: Date(timeIntervalSince1970: 1050))
        #expect(try store.brokeredTokenCount(identity: "relay", since: Date(timeIntervalSince1970: 1000)) == 2)
    }
}
