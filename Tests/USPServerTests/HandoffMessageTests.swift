import Foundation
import Testing
import USPConfig
import USPCore
import USPUnix
@testable import USPServer

@Suite struct HandoffMessageTests {
    let app = ApplicationDefinition(name: "notes", visibility: .authenticated, launch: .unix(path: "/run/notes.sock"))

    @Test func metadataHasTheSameFactsAsTheExecVariables() throws {
        let request = Launcher.Request(application: app, identity: "alice", peerAddress: "192.0.2.7", serverSessionID: "s-1",
                                       tokenID: "tok", requestJSON: #"{"topic":"work"}"#, authorizationTokenID: "auth")
        let frame = try #require(HandoffMessage.frame(HandoffMessage.metadata(for: request)))
        let length = frame.prefix(4).reduce(0) { $0 << 8 | Int($1) }
        #expect(length == frame.count - 4)
        let json = try JSONValue.parse(Array(frame.dropFirst(4)))
        #expect(json == .object(["v": .integer(1), "application": .string("notes"), "identity": .string("alice"),
                                 "peer_address": .string("192.0.2.7"), "session": .string("s-1"), "token_id": .string("tok"),
                                 "authorization_token_id": .string("auth"), "brokered_for": .null,
                                 "request": .object(["topic": .string("work")])]))
        let env = Launcher.environment(for: request)
        #expect(env["USP_AUTHORIZATION_TOKEN_ID"] == "auth")
        #expect(env["USP_IDENTITY"] == "alice")
        #expect(env["USP_FIELD_TOPIC"] == "work")
    }

    @Test func anonymousSessionsHaveNulls() throws {
        let request = Launcher.Request(application: app, identity: nil, peerAddress: "::1", serverSessionID: "s", tokenID: "t", requestJSON: "{}")
        guard case .object(let o) = HandoffMessage.metadata(for: request) else { Issue.record("not an object"); return }
        #expect(o["identity"] == .null)
        #expect(o["authorization_token_id"] == .null)
        #expect(Launcher.environment(for: request)["USP_AUTHORIZATION_TOKEN_ID"] == "")
    }

    @Test func oversizedMetadataIsNotFramedAndAnswersArePrintable() {
        let huge = JSONValue.object(["x": .string(String(repeating: "a", count: HandoffMessage.maximumLength))])
        #expect(HandoffMessage.frame(huge) == nil)
        #expect(HandoffMessage.printable("error\u{1b}[31m bad") == "error?[31m bad")
        #expect(HandoffMessage.printable(String(repeating: "x", count: 500)).count == 200)
    }

    @Test func launchErrorsMapToStreamCodes() {
        #expect(UnixError.call("x", errno: EMFILE).streamCode == .resourcesExhausted)
        #expect(UnixError.call("x", errno: ENFILE).streamCode == .resourcesExhausted)
        #expect(UnixError.call("x", errno: ENOENT).streamCode == .applicationUnavailable)
        #expect(UnixError.call("x", errno: ECONNREFUSED).streamCode == .applicationUnavailable)
    }
}
