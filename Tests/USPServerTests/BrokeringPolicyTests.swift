import Foundation
import Testing
import USPConfig
import USPCore
import USPTestSupport
@testable import USPServer
import USPStore

/// uspd's policy for connection brokering: who may broker (`[[broker]]`), for which addresses,
/// how often and for how long; what the token is bound to; what is audited and what the
/// application is told.
@Suite struct BrokeringPolicyTests {
    static func settings(tokensPerMinute: Int = 3, tokenLifetime: Int = 120) throws -> ServerPolicy.Settings {
        var s = ServerPolicy.Settings()
        s.brokers = [BrokerRule(groups: ["admins"], clients: [try IPNetwork.parse("10.20.0.0/16").get(), try IPNetwork.parse("2001:db8::/32").get()],
                                tokensPerMinute: tokensPerMinute, tokenLifetime: tokenLifetime)]
        return s
    }

    /// alice (group admins) logged in from 192.0.2.10.
    static func broker(_ policy: ServerPolicy) throws -> MemoryPair {
        var pair = MemoryPair(policy: policy)
        try pair.establish()
        try pair.login("alice", "correct horse")
        return pair
    }

    static func reply(_ pair: MemoryPair, _ index: ServiceIndex) -> ServiceResult? {
        pair.log.replies.last?.results[index]
    }

    @Test func aBrokeredTokenIsBoundToTheBeneficiaryAndTracesToTheBroker() throws {
        let store = Fixtures.store()
        let policy = Fixtures.policy(store: store, settings: try Self.settings())
        var broker = try Self.broker(policy)
        let env = try #require(broker.log.index(of: "env"))
        try broker.request([env: ["greeting": "hi"]], clientIP: "10.20.1.2")
        let token = try #require(broker.log.token(at: env))
        let login = try #require(store.allTokens.first { $0.kind == .authorization })
        let record = try #require(store.allTokens.first { $0.kind == .application })
        #expect(record.peerAddress == "10.20.1.2")
        #expect(record.brokeredFor == "10.20.1.2")
        #expect(record.identity == "alice")
        #expect(record.authorizationTokenID == login.id)
        #expect(record.expiresAt.timeIntervalSince(record.issuedAt) == 120, "the rule's token_lifetime, not the application's 60 s")
        let issued = try #require(store.allAudit.first { $0.kind == .tokenIssued && $0.tokenID == record.id })
        #expect(issued.peerAddress == "192.0.2.10", "issued to the broker's connection")
        #expect(issued.identity == "alice")
        #expect(issued.authorizationTokenID == login.id)
        #expect(issued.detail == "brokered for 10.20.1.2, valid 120 s")

        // The beneficiary begins with it, no login of its own; it runs as the broker's identity.
        var beneficiary = MemoryPair(policy: policy, peerAddress: "10.20.1.2")
        try beneficiary.establish(ClientStart(application: .init(token: token)))
        #expect(beneficiary.log.notes.contains(.accepted(1)))
        #expect(beneficiary.opened[1]?.identity?.name == "alice")
        let used = try #require(store.allAudit.last { $0.kind == .tokenUsed && $0.tokenID == record.id })
        #expect(used.detail == "brokered by alice for 10.20.1.2")
        #expect(used.peerAddress == "10.20.1.2")

        // The broker's own address and any other are refused.
        for address in ["192.0.2.10", "10.20.1.3"] {
            var elsewhere = MemoryPair(policy: policy, peerAddress: address)
            try elsewhere.establish(ClientStart(application: .init(token: token)))
            #expect(elsewhere.log.notes.contains(.rejected(1, "token_wrong_address")), "\(address)")
        }

        // The broker may revoke the one token by its ID; nobody else may.
        var bob = MemoryPair(policy: policy, peerAddress: "192.0.2.11")
        try bob.establish()
        try bob.login("bob", "hunter2")
        try bob.request([:], authentication: .invalidateTokens([record.id]))
        #expect(Self.reply(bob, .authentication) == .error(WireError(.tokenInvalid)))
        try broker.request([:], authentication: .invalidateTokens([record.id]))
        #expect(Self.reply(broker, .authentication) == .invalidated(1))
        var after = MemoryPair(policy: policy, peerAddress: "10.20.1.2")
        try after.establish(ClientStart(application: .init(token: token)))
        #expect(after.log.notes.contains(.rejected(1, "token_revoked")))
    }

    @Test func addressesAreCanonicalAsUspdReportsPeers() throws {
        let store = Fixtures.store()
        var broker = try Self.broker(Fixtures.policy(store: store, settings: try Self.settings(tokensPerMinute: 10)))
        let echo = try #require(broker.log.index(of: "echo"))
        for (asked, bound) in [("::ffff:10.20.9.9", "10.20.9.9"), ("2001:DB8:0::5", "2001:db8::5")] {
            try broker.request([echo: [:]], clientIP: asked)
            let id = try TokenProof.tokenID(secret: try #require(broker.log.token(at: echo))).description
            #expect(store.allTokens.first { $0.id == id }?.peerAddress == bound)
        }
    }

    @Test func whoMayBrokerForWhichAddresses() throws {
        let store = Fixtures.store()
        let policy = Fixtures.policy(store: store, settings: try Self.settings())
        var bob = MemoryPair(policy: policy, peerAddress: "192.0.2.11")
        try bob.establish()
        try bob.login("bob", "hunter2")
        let echo = try #require(bob.log.index(of: "echo"))
        try bob.request([echo: [:]], clientIP: "10.20.1.2")
        #expect(Self.reply(bob, echo) == .error(WireError(.brokerNotAllowed, "bob may not broker connections on this server")))

        var alice = try Self.broker(policy)
        try alice.request([echo: [:]], clientIP: "10.21.0.1")
        #expect(Self.reply(alice, echo) == .error(WireError(.brokerAddressNotAllowed, "10.21.0.1 is outside the networks alice may broker for")))
        // Passes the wire's character rule, is no address.
        try alice.request([echo: [:]], clientIP: "10.20.1")
        #expect(Self.reply(alice, echo) == .error(WireError(.brokerAddressNotAllowed, "client_ip 10.20.1 is not an IPv4 or IPv6 address")))
        // Inside the networks (0.0.0.0/0 and ::/0) but no one client's address.
        var wide = try Self.settings()
        wide.brokers[0].clients = [try IPNetwork.parse("0.0.0.0/0").get(), try IPNetwork.parse("::/0").get()]
        var everywhere = try Self.broker(Fixtures.policy(store: store, settings: wide))
        for (address, kind) in [("0.0.0.0", "the unspecified address"), ("::", "the unspecified address"), ("255.255.255.255", "the broadcast address"),
                                ("224.0.0.1", "a multicast address"), ("ff02::1", "a multicast address"), ("fe80::1", "an IPv6 link-local address")] {
            try everywhere.request([echo: [:]], clientIP: address)
            #expect(Self.reply(everywhere, echo) == .error(WireError(.brokerAddressNotAllowed, "\(address) is \(kind), not one client's address")))
        }
        #expect(store.allTokens.allSatisfy { $0.kind == .authorization }, "nothing was issued")
        let refused = store.allAudit.filter { $0.kind == .tokenRefused }.prefix(3)
        #expect(refused.map { $0.result ?? "" } == ["broker_not_allowed", "broker_address_not_allowed", "broker_address_not_allowed"])
        #expect(refused.map { $0.identity ?? "" } == ["bob", "alice", "alice"])
        #expect(refused.allSatisfy { $0.application == "echo" && ($0.detail ?? "").hasPrefix("brokering for ") })
    }

    @Test func tokensPerMinuteAreCountedOverTheLastMinute() throws {
        let store = Fixtures.store()
        var broker = try Self.broker(Fixtures.policy(store: store, settings: try Self.settings(tokensPerMinute: 2)))
        let echo = try #require(broker.log.index(of: "echo"))
        for _ in 0..<2 {
            try broker.request([echo: [:]], clientIP: "10.20.1.2")
            #expect(broker.log.token(at: echo) != nil)
        }
        broker.now = Timestamp(seconds: broker.now.seconds + 30)
        try broker.request([echo: [:]], clientIP: "10.20.1.2")
        #expect(Self.reply(broker, echo) == .error(WireError(.rateLimited, "alice had 2 brokered tokens in the last minute (tokens_per_minute = 2)")))
        // Tokens issued to alice herself do not count.
        try broker.request([echo: [:]])
        #expect(broker.log.token(at: echo) != nil)
        broker.now = Timestamp(seconds: broker.now.seconds + 31)
        try broker.request([echo: [:]], clientIP: "10.20.1.2")
        #expect(broker.log.token(at: echo) != nil)
        #expect(store.allTokens.filter { $0.brokeredFor != nil }.count == 3)
    }

    @Test func aBrokeredTokenNeverOutlivesTheBrokersLogin() throws {
        let store = Fixtures.store()
        var settings = try Self.settings(tokenLifetime: 3600)
        settings.authorizationTokenLifetime = 90
        var broker = try Self.broker(Fixtures.policy(store: store, settings: settings))
        broker.now = Timestamp(seconds: broker.now.seconds + 30)
        let echo = try #require(broker.log.index(of: "echo"))
        try broker.request([echo: [:]], clientIP: "10.20.1.2")
        let record = try #require(store.allTokens.first { $0.brokeredFor != nil })
        #expect(abs(record.expiresAt.timeIntervalSince(record.issuedAt) - 60) < 0.01)
    }

    @Test func invalidatingTheBrokersLoginRevokesWhatItBrokered() throws {
        let store = Fixtures.store()
        let policy = Fixtures.policy(store: store, settings: try Self.settings())
        var broker = try Self.broker(policy)
        let login = try #require(broker.log.replies.first.flatMap { r -> String? in
            if case .token(let t)? = r.results[.authentication] { return t }
            return nil
        })
        let echo = try #require(broker.log.index(of: "echo"))
        try broker.request([echo: [:]], clientIP: "10.20.1.2")
        let token = try #require(broker.log.token(at: echo))
        try broker.request([:], authentication: .invalidateTokens([login]))
        #expect(Self.reply(broker, .authentication) == .invalidated(2))
        var beneficiary = MemoryPair(policy: policy, peerAddress: "10.20.1.2")
        try beneficiary.establish(ClientStart(application: .init(token: token)))
        #expect(beneficiary.log.notes.contains(.rejected(1, "token_revoked")))
        // And the broker, its login gone, brokers nothing more under it.
        try broker.request([echo: [:]], clientIP: "10.20.1.2")
        #expect(Self.reply(broker, echo) == .error(WireError(.tokenRevoked)))
    }

    @Test func theRightFollowsTheUsersGroupsAsTheyAreNow() throws {
        let store = Fixtures.store()
        var broker = try Self.broker(Fixtures.policy(store: store, settings: try Self.settings()))
        // alice leaves group admins after logging in: her session still says admins, the store does not.
        try store.upsertUser(UserRecord(name: "alice", groups: [], passwordHash: "plain:correct horse"))
        let echo = try #require(broker.log.index(of: "echo"))
        try broker.request([echo: [:]], clientIP: "10.20.1.2")
        #expect(Self.reply(broker, echo) == .error(WireError(.brokerNotAllowed, "alice may not broker connections on this server")))
    }

    @Test func anInvalidatedLoginLearnsNothingOfTheRules() throws {
        let store = Fixtures.store()
        var broker = try Self.broker(Fixtures.policy(store: store, settings: try Self.settings()))
        let login = try #require(store.allTokens.first { $0.kind == .authorization })
        _ = try store.revokeTokens(ids: [login.id], at: Date())
        let echo = try #require(broker.log.index(of: "echo"))
        try broker.request([echo: [:]], clientIP: "10.99.0.1")
        #expect(Self.reply(broker, echo) == .error(WireError(.tokenRevoked)))
        #expect(!store.allAudit.contains { $0.kind == .tokenRefused })
    }

    @Test func aWithdrawnRightEndsWhatWasBrokered() throws {
        let store = Fixtures.store()
        var broker = try Self.broker(Fixtures.policy(store: store, settings: try Self.settings()))
        let echo = try #require(broker.log.index(of: "echo"))
        try broker.request([echo: [:]], clientIP: "10.20.1.2")
        let token = try #require(broker.log.token(at: echo))
        // uspd restarted with the rule narrowed to another network, then with no rule at all.
        var narrowed = try Self.settings()
        narrowed.brokers[0].clients = [try IPNetwork.parse("10.30.0.0/16").get()]
        for settings in [narrowed, ServerPolicy.Settings()] {
            var beneficiary = MemoryPair(policy: Fixtures.policy(store: store, settings: settings), peerAddress: "10.20.1.2")
            try beneficiary.establish(ClientStart(application: .init(token: token)))
            #expect(beneficiary.log.notes.contains(.rejected(1, "token_revoked")))
        }
        #expect(store.allAudit.filter { $0.kind == .tokenRefused }.map { $0.detail ?? "" }
            == ["alice may no longer broker for 10.20.1.2", "alice may no longer broker for 10.20.1.2"])
    }

    @Test func theApplicationIsToldWhoBrokeredForWhom() throws {
        let def = Fixtures.applications()[0]
        let request = Launcher.Request(application: def, identity: "alice", peerAddress: "10.20.1.2", serverSessionID: "s-1", tokenID: "t",
                                       requestJSON: "{}", authorizationTokenID: "a", brokeredFor: "10.20.1.2")
        let env = Launcher.environment(for: request)
        #expect(env["USP_IDENTITY"] == "alice")
        #expect(env["USP_BROKERED_FOR"] == "10.20.1.2")
        guard case .object(let metadata) = HandoffMessage.metadata(for: request) else { Issue.record("not an object"); return }
        #expect(metadata["brokered_for"] == .string("10.20.1.2"))
        var own = request
        own.brokeredFor = nil
        #expect(Launcher.environment(for: own)["USP_BROKERED_FOR"] == "")
        guard case .object(let plain) = HandoffMessage.metadata(for: own) else { Issue.record("not an object"); return }
        #expect(plain["brokered_for"] == .null)
    }
}
