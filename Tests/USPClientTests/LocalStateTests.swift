import Foundation
import Glibc
import Testing
import USPCore
@testable import USPClient

/// A fresh client home under /tmp, removed at the end.
final class TempHome {
    let path: String
    let home: ClientHome
    init() {
        var template = Array("/tmp/usp-client-test-XXXXXX".utf8CString)
        let p = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        path = String(cString: p!)
        home = ClientHome(directory: path)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }

    func write(_ name: String, _ text: String, mode: mode_t = 0o644) {
        let full = path + "/" + name
        _ = FileManager.default.createFile(atPath: full, contents: Data(text.utf8))
        chmod(full, mode)
    }
}

@Suite struct ServerURITests {
    static let key = [UInt8](0..<32)

    @Test func plainHostAndPort() throws {
        let u = try ServerURI(parsing: "usp://example.org:7400")
        #expect(u.host == "example.org")
        #expect(u.port == 7400)
        #expect(u.serverKey == nil)
        #expect(u.hostPort == "example.org:7400")
        #expect(u.description == "usp://example.org:7400")
    }

    @Test func defaultPortAndCase() throws {
        let u = try ServerURI(parsing: "USP://Example.ORG")
        #expect(u.port == ServerURI.defaultPort)
        #expect(u.host == "example.org")
    }

    @Test func ipv6InBrackets() throws {
        let u = try ServerURI(parsing: "usp://[::1]:7300")
        #expect(u.host == "::1")
        #expect(u.hostPort == "[::1]:7300")
        let v = try ServerURI(parsing: "usp://[2001:db8::7]")
        #expect(v.host == "2001:db8::7")
        #expect(v.port == 7300)
    }

    @Test func pinnedKey() throws {
        let text = "usp://\(Base64URL.encode(Self.key))@192.0.2.7:7300"
        let u = try ServerURI(parsing: text)
        #expect(u.serverKey == Self.key)
        #expect(u.host == "192.0.2.7")
        #expect(u.description == text)
        #expect(u.withoutKey.description == "usp://192.0.2.7:7300")
        let v = try ServerURI(parsing: "usp://\(Base64URL.encode(Self.key))@[::1]:9")
        #expect(v.serverKey == Self.key && v.host == "::1" && v.port == 9)
    }

    @Test(arguments: [
        ("example.org:7300", "missing usp://"),
        ("http://example.org:7300", "unknown scheme"),
        ("usp://", "missing host"),
        ("usp://host:0", "port \"0\""),
        ("usp://host:70000", "port \"70000\""),
        ("usp://host:ssh", "port \"ssh\""),
        ("usp://::1:7300", "must be in brackets"),
        ("usp://[::1:7300", "missing ]"),
        ("usp://[nothex]:7300", "is not an IPv6 address"),
        ("usp://abc@host:7300", "not unpadded base64url of 32 bytes"),
        ("usp://host:7300/path", "path, query or fragment"),
        ("usp://ho st:7300", "is not a host name"),
    ])
    func invalid(text: String, why: String) {
        do {
            _ = try ServerURI(parsing: text)
            Issue.record("\(text) parsed")
        } catch {
            #expect(error.code == .invalidURI)
            #expect(error.message.contains(why), "\(error.message)")
            #expect(error.message.contains("expected usp://[KEY@]host:port"))
            #expect(!error.message.contains("\n"))
        }
    }
}

@Suite struct KnownServersTests {
    static let a = [UInt8](repeating: 1, count: 32)
    static let b = [UInt8](repeating: 2, count: 32)

    @Test func trustOnFirstUseThenChanged() throws {
        let t = TempHome()
        var known = try t.home.loadKnownServers()
        #expect(known.verdict(for: "h:1", key: Self.a) == .unknown)
        try t.home.addKnownServer("h:1", key: Self.a, comment: "first")
        known = try t.home.loadKnownServers()
        #expect(known.verdict(for: "h:1", key: Self.a) == .trusted)
        #expect(known.verdict(for: "h:1", key: Self.b) == .changed(known: [Self.a]))
        #expect(known.verdict(for: "h:2", key: Self.a) == .unknown)
        #expect(known.entries.first?.comment == "first")
        let text = try String(contentsOfFile: t.home.knownServersPath, encoding: .utf8)
        #expect(text == "h:1 x25519 \(Base64URL.encode(Self.a)) first\n")
    }

    @Test func revokedLinesWin() throws {
        let t = TempHome()
        t.write("known_servers", """
        # comment
        h:1 x25519 \(Base64URL.encode(Self.a))
        @revoked * x25519 \(Base64URL.encode(Self.a)) leaked
        h:1 ssh-ed25519 AAAA ignored-other-type
        """)
        let known = try t.home.loadKnownServers()
        #expect(known.verdict(for: "h:1", key: Self.a) == .revoked)
        #expect(known.verdict(for: "other:9", key: Self.a) == .revoked)
        #expect(known.keys(for: "h:1").isEmpty)
        #expect(known.verdict(for: "h:1", key: Self.b) == .unknown)
    }

    @Test func patternsAndLists() throws {
        let known = try KnownServers(parsing: "[::1]:7300,10.0.0.?:7300 x25519 \(Base64URL.encode(Self.a))\n*.example.org:* x25519 \(Base64URL.encode(Self.b))\n", path: "k")
        #expect(known.verdict(for: "[::1]:7300", key: Self.a) == .trusted)
        #expect(known.verdict(for: "10.0.0.7:7300", key: Self.a) == .trusted)
        #expect(known.verdict(for: "10.0.0.17:7300", key: Self.a) == .unknown)
        #expect(known.verdict(for: "a.example.org:1", key: Self.b) == .trusted)
        #expect(known.verdict(for: "example.org:1", key: Self.b) == .unknown)
    }

    @Test func malformedLineNamesFileAndLine() {
        do {
            _ = try KnownServers(parsing: "h:1 x25519 \(Base64URL.encode(Self.a))\nh:2 x25519 not-a-key\n", path: "/x/known_servers")
            Issue.record("parsed")
        } catch {
            #expect(error.message.hasPrefix("/x/known_servers:2: "), "\(error.message)")
        }
    }

    @Test func removeKeepsOtherLines() throws {
        let t = TempHome()
        try t.home.addKnownServer("h:1", key: Self.a)
        try t.home.addKnownServer("h:2", key: Self.b)
        #expect(try t.home.removeKnownServer("h:1") == 1)
        let known = try t.home.loadKnownServers()
        #expect(known.verdict(for: "h:1", key: Self.a) == .unknown)
        #expect(known.verdict(for: "h:2", key: Self.b) == .trusted)
        #expect(try t.home.removeKnownServer("h:1") == 0)
    }

    @Test func modes() {
        #expect(KnownServers.Mode(text: "yes") == .strict)
        #expect(KnownServers.Mode(text: "strict") == .strict)
        #expect(KnownServers.Mode(text: "accept-new") == .acceptNew)
        #expect(KnownServers.Mode(text: "no") == .no)
        #expect(KnownServers.Mode(text: "maybe") == nil)
    }
}

@Suite struct KeyFileTests {
    @Test func identityRoundTripWithMode0600() throws {
        let t = TempHome()
        let key = KeyText.generate()
        try t.home.writeIdentity(key)
        var st = stat()
        #expect(stat(t.home.identityPath, &st) == 0)
        #expect(st.st_mode & 0o777 == 0o600)
        let loaded = try #require(try t.home.loadIdentity())
        #expect(loaded.publicKey == key.publicKey)
        // A second keygen must not silently replace the key.
        #expect(throws: USPClientError.self) { try t.home.writeIdentity(KeyText.generate()) }
    }

    @Test(arguments: [0o644 as mode_t, 0o640, 0o604, 0o660])
    func refusesReadableByOthers(mode: mode_t) throws {
        let t = TempHome()
        t.write("identity", Base64URL.encode(KeyText.generate().privateKey) + "\n", mode: mode)
        do {
            _ = try t.home.loadIdentity()
            Issue.record("loaded a key with mode \(String(mode, radix: 8))")
        } catch {
            #expect(error.code == .localFile)
            #expect(error.message.contains("are too open"))
            #expect(error.message.contains("chmod 600 \(t.home.identityPath)"))
        }
    }

    @Test func savedLoginIsPrivate() throws {
        let t = TempHome()
        let server = try ServerURI(parsing: "usp://[::1]:7300")
        let secret = TokenProof.issue(random: SystemRandomSource()).secret
        try t.home.saveLogin(SavedLogin(server: server.hostPort, user: "alice", method: "password", token: secret, savedAt: 1), for: server)
        let path = t.home.tokenPath(for: server)
        #expect(path.hasSuffix("/tokens/--1_7300.json"))
        var st = stat()
        #expect(stat(path, &st) == 0 && st.st_mode & 0o777 == 0o600)
        #expect(try t.home.loadLogin(for: server)?.token == secret)
        chmod(path, 0o644)
        #expect(throws: USPClientError.self) { _ = try t.home.loadLogin(for: server) }
        #expect(t.home.removeLogin(for: server))
        chmod(path, 0o600)
        #expect(try t.home.loadLogin(for: server) == nil)
    }

    /// The saved-login file is read without Foundation's decoder: what the encoder writes (with
    /// and without a user) reads back field for field; anything else is refused.
    @Test func savedLoginFilesReadAsTheyWereWritten() throws {
        let t = TempHome()
        let server = try ServerURI(parsing: "usp://127.0.0.1:7300")
        let secret = TokenProof.issue(random: SystemRandomSource()).secret
        for user in ["alice", nil] {
            let saved = SavedLogin(server: server.hostPort, user: user, method: user == nil ? "noise_static" : "password", token: secret, savedAt: 1_790_000_000)
            try t.home.saveLogin(saved, for: server)
            #expect(try t.home.loadLogin(for: server) == saved)
        }
        let good = #"{"method":"password","saved_at":5,"server":"h:1","token":"usp1.x","token_id":"id","user":null}"#
        #expect(SavedLogin(json: Array(good.utf8))?.user == nil)
        #expect(SavedLogin(json: Array(good.utf8))?.savedAt == 5)
        let bad = [
            #"{"method":"password","saved_at":5,"server":"h:1","token":"usp1.x"}"#,                       // no token_id
            #"{"method":"password","saved_at":-1,"server":"h:1","token":"usp1.x","token_id":"id"}"#,      // negative time
            #"{"method":"password","saved_at":5,"server":"h:1","token":"usp1.x","token_id":"id","user":7}"#,
            #"["usp1.x"]"#, "", "{",
        ]
        for text in bad { #expect(SavedLogin(json: Array(text.utf8)) == nil, "\(text)") }
        try FileIO.write(t.home.tokenPath(for: server), Array(bad[0].utf8), mode: 0o600, what: "test")
        #expect {
            _ = try t.home.loadLogin(for: server)
        } throws: { ($0 as? USPClientError)?.message.contains("is not a saved login; remove it and log in again") == true }
    }

    @Test func homeResolution() {
        #expect(ClientHome.resolve(explicit: "/a", environment: ["USP_HOME": "/b", "HOME": "/h"]).directory == "/a")
        #expect(ClientHome.resolve(explicit: nil, environment: ["USP_HOME": "/b", "HOME": "/h"]).directory == "/b")
        #expect(ClientHome.resolve(explicit: nil, environment: ["HOME": "/h"]).directory == "/h/.usp")
    }

    @Test func publicKeyParsingAcceptsWireGuardForm() throws {
        let key = [UInt8](repeating: 0xfb, count: 32)
        let std = Data(key).base64EncodedString()
        #expect(try KeyText.publicKey(std, source: "stdin") == key)
        #expect(try KeyText.publicKey(Base64URL.encode(key) + "\n", source: "stdin") == key)
        #expect(throws: USPClientError.self) { _ = try KeyText.publicKey("short", source: "stdin") }
    }
}

@Suite struct RequestFieldTests {
    @Test func coercesByMenuType() throws {
        let spec = ["start": "integer", "verbose": "boolean?", "name": "string", "extra": "object?", "any": "?"]
        let v = try RequestFields.coerce(["start": "42", "verbose": "true", "name": "42", "extra": "{\"a\":1}"], spec: spec, application: "x")
        #expect(v == ["start": .integer(42), "verbose": .bool(true), "name": .string("42"), "extra": .object(["a": .integer(1)])])
    }

    @Test func missingUnknownAndWrongType() throws {
        let spec = ["start": "integer"]
        #expect(throws: USPClientError.self) { _ = try RequestFields.coerce([:], spec: spec, application: "x") }
        #expect(throws: USPClientError.self) { _ = try RequestFields.coerce(["start": "1", "nope": "2"], spec: spec, application: "x") }
        do {
            _ = try RequestFields.coerce(["start": "one"], spec: spec, application: "x")
            Issue.record("coerced")
        } catch {
            #expect(error.message == "--field start=one: expected an integer")
        }
        #expect(throws: USPClientError.self) { _ = try RequestFields.parse(["novalue"]) }
        #expect(throws: USPClientError.self) { _ = try RequestFields.parse(["a=1", "a=2"]) }
        #expect(try RequestFields.parse(["a=b=c"]) == ["a": "b=c"])
    }
}

@Suite struct ErrorTextTests {
    let server = ServerURI(host: "example.org", port: 7300)

    @Test func serverCodesBecomeInstructions() {
        let wrong = ErrorText.streamRefused(code: .tokenWrongAddress, message: "", server: server)
        #expect(wrong.message.contains("issued to another address"))
        #expect(wrong.message.contains("request a new one"))
        let missing = ErrorText.applicationRequest(WireError(.authorizationMissing), name: "ssh", offer: nil, server: server)
        #expect(missing.code == .loginRequired)
        #expect(missing.message == "\"ssh\" on example.org:7300 needs a login; log in first: usp login usp://example.org:7300 --user NAME")
        let expired = ErrorText.sessionEnded(reason: USPError(.closedByPeer), serverError: WireError(.tokenExpired), server: server, handshakeDone: true)
        #expect(expired.code == .loginExpired)
        #expect(expired.message.contains("(it expired)"))
        let failed = ErrorText.login(WireError(.authenticationFailed), user: "ann", server: server)
        #expect(failed.message == "wrong user or password for ann on example.org:7300; check both and run usp login again")
        let reset = ErrorText.streamReset(code: .tokenRevoked, server: server)
        #expect(reset.message == "example.org:7300 ended the stream: its token was revoked")
        let eof = ErrorText.sessionEnded(reason: USPError(.unexpectedEOF, "server closed the connection during the handshake (x)"), serverError: nil, server: server, handshakeDone: false)
        #expect(eof.code == .handshakeRejected)
        let busy = ErrorText.sessionEnded(reason: USPError(.serverBusy, "server closed the session: server_busy"), serverError: nil, server: server, handshakeDone: true)
        #expect(busy.message.hasPrefix("example.org:7300 gave this session's slot to another client (server_busy"))
        #expect(busy.message.hasSuffix("connecting again is fine"))
    }

    @Test func earlyDataBudgetFitsMessage1() {
        // What the session will write: the request with a presentation, then a DATA frame header.
        let ik = USPConnection.earlyDataBudget(.ik)
        let nk = USPConnection.earlyDataBudget(.nk)
        #expect(ik > 400 && ik < HandshakeLayout.earlyFrameCapacity(.ik))
        #expect(nk == ik + 48)
        #expect(USPConnection.earlyDataBudget(.xx) == StreamLimits.minInitialWindow)
    }

    @Test func passwordFileErrorsNameTheFile() {
        do {
            _ = try ClientHome.readTextFile("/nonexistent/pw", what: "the password file")
            Issue.record("read")
        } catch {
            #expect(error.message == "cannot read the password file /nonexistent/pw: No such file or directory")
        }
    }
}
