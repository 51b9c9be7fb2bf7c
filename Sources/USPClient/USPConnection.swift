import Crypto
import NIOCore
import NIOPosix
import USPCore
import USPNIO

/// How `USPConnection` connects.
public struct USPConnectionOptions: Sendable {
    /// Stay anonymous: NK instead of IK when the server key is known (the client's static key is
    /// not shown). First contact (XX) then uses a throwaway key.
    public var anonymous = false
    /// What to do with a server that is not in known_servers (ssh's StrictHostKeyChecking).
    public var serverKeyChecking: KnownServers.Mode = .acceptNew
    /// A saved login (authorization token secret) to present in the initial request, for the
    /// authenticated menu. The session sends a channel-bound presentation, never the secret.
    public var authorizationToken: String?
    public var connectTimeout: TimeAmount = .seconds(10)
    /// The local IP address to connect from (bound, port 0, before connect), e.g. one of several
    /// addresses of a multi-homed host, or a 127.x.y.z source on loopback (scripts/chaos.sh's
    /// attackers); nil: the kernel chooses. Also used by the key probe after a failed handshake.
    public var localAddress: String?
    /// From TCP connect to the first menu (or application reply).
    public var handshakeTimeout: TimeAmount = .seconds(15)
    /// Receive limits and send policy of the session.
    public var session = SessionConfiguration()
    /// Server keys from DNS when the URI pins none (docs/PROTOCOL.md §15).
    public var dns = DNSKeyOptions()
    /// Hears, once, that a server's key was learned and added to known_servers (first contact or
    /// DNS), with its fingerprint: as ssh says "Permanently added …".
    public var onNewServerKey: (@Sendable (String) -> Void)?
    /// Defaults to `MultiThreadedEventLoopGroup.singleton`.
    public var eventLoopGroup: (any EventLoopGroup)?
    /// TCP Fast Open (TCP_FASTOPEN_CONNECT): once the kernel holds a cookie from this server (from
    /// an earlier connection to its address), message 1 rides in the SYN and the handshake takes
    /// one round trip less. Off by default: the SYN's cookie option is visible on the path, and the
    /// server must enable it too (uspd's `tcp_fast_open`, and net.ipv4.tcp_fastopen with bit 2).
    public var fastOpen = false
    /// A connection already begun to the server's address (the first connection to that address
    /// and port takes it; not with `localAddress`).
    public var earlyConnection: EarlyConnection?

    public init() {}
}

/// A USP connection with its menu: log in, request application tokens, open streams.
///
/// ```swift
/// let home = ClientHome.resolve()
/// let c = try await USPConnection.connect(to: try ServerURI(parsing: "usp://host:7300"), home: home)
/// let token = try await c.requestApplication(name: "echo")
/// let stream = try await c.openStream(token: token)
/// try await stream.write(Array("hi".utf8))
/// for try await chunk in stream.inbound { … }
/// ```
///
/// The handshake is IK (or NK when anonymous) when the server key is pinned in the URI or
/// listed in known_servers, and XX otherwise; on first contact the key is recorded in
/// known_servers (trust on first use) and a changed key is refused, never silently accepted.
/// Every error thrown is a `USPClientError`.
public final class USPConnection: Sendable {
    public let server: ServerURI
    public let pattern: HandshakeLayout.Pattern
    /// The server's static key, as proven by the handshake.
    public let serverKey: [UInt8]
    /// True if this connection added the server's key to known_servers (first contact).
    public let recordedServerKey: Bool
    /// Whether the server acted on the early frames of message 1.
    public let earlyDataAccepted: Bool
    /// Whether the client's static key was proven in the handshake (IK or XX with the identity key).
    public let clientKeyProven: Bool
    let core: ConnectionCore

    init(core: ConnectionCore, server: ServerURI, facts: Facts, recorded: Bool, clientKeyProven: Bool) {
        self.core = core
        self.server = server
        pattern = facts.pattern
        serverKey = facts.serverStatic
        earlyDataAccepted = facts.earlyDataAccepted
        recordedServerKey = recorded
        self.clientKeyProven = clientKeyProven
    }

    public var serverFingerprint: String { Fingerprint.of(serverKey) }

    // MARK: - Connecting

    /// Connects, handshakes, and waits for the menu.
    public static func connect(to server: ServerURI, home: ClientHome, options: USPConnectionOptions = USPConnectionOptions()) async throws -> USPConnection {
        let plan = try await Plan.make(server: server, home: home, options: options)
        let start = ClientStart(authorizationToken: options.authorizationToken)
        let (core, facts) = try await plan.run(start: start, dedicated: false)
        let recorded = try plan.recordIfNew(facts)
        return USPConnection(core: core, server: plan.server, facts: facts, recorded: recorded, clientKeyProven: plan.clientKeyProven(facts))
    }

    /// Opens a connection dedicated to one application (the proposal's client step 5): the
    /// application token, and as much of `initialData` as fits, travel in message 1 when the
    /// server key is known, so the application's first answer comes one round trip after the TCP
    /// handshake. Returns once the server has accepted the session; the rest of `initialData`
    /// has then been written. Closing the stream closes the connection.
    public static func connectDedicated(to server: ServerURI, home: ClientHome, token: String, initialData: [UInt8] = [],
                                        options: USPConnectionOptions = USPConnectionOptions()) async throws -> USPStream {
        try await dedicated(to: server, home: home, application: .init(token: token), authorizationToken: nil,
                            initialData: initialData, options: options)
    }

    /// Opens a connection dedicated to the application `name`, begun **by name**: message 1
    /// carries the name, the request body, `options.authorizationToken` (a saved login, which
    /// selects the menu the name is looked up on) and the first bytes, and the server issues the
    /// application token itself (docs/PROTOCOL.md §6.1). With a known server key the application's
    /// first answer arrives one round trip after the TCP handshake, with no menu connection before.
    public static func connectDedicated(to server: ServerURI, home: ClientHome, application name: String,
                                        request: [String: JSONValue] = [:], initialData: [UInt8] = [],
                                        options: USPConnectionOptions = USPConnectionOptions()) async throws -> USPStream {
        do {
            return try await dedicated(to: server, home: home, application: .init(name: name, request: request),
                                       authorizationToken: options.authorizationToken, initialData: initialData, options: options)
        } catch let e as USPClientError {
            guard let code = e.wireCode, [.authorizationMissing, .unknownApplication, .invalidRequestBody].contains(code) else { throw e }
            throw ErrorText.applicationRequest(WireError(code, e.message), name: name, offer: nil, server: server, byName: true)
        }
    }

    private static func dedicated(to server: ServerURI, home: ClientHome, application: ClientStart.Application, authorizationToken: String?,
                                  initialData: [UInt8], options: USPConnectionOptions) async throws -> USPStream {
        let plan = try await Plan.make(server: server, home: home, options: options)
        let early = min(initialData.count, earlyDataBudget(plan.pattern, application: application, authorizationToken: authorizationToken != nil))
        let start = ClientStart(authorizationToken: authorizationToken, application: application, initialData: Array(initialData.prefix(early)))
        let (core, facts) = try await plan.run(start: start, dedicated: true)
        if (try? plan.recordIfNew(facts)) == true {
            options.onNewServerKey?(plan.addedNotice(facts))
        }
        guard let streamCore = core.dedicatedStream else {
            throw USPClientError(.connectionLost, "internal error: no dedicated stream")
        }
        // The reply has arrived (it completes `ready`): a begin by name names the token issued.
        let reply = try await core.eventLoop.submit { core.applicationReply }.get()
        var tokenID: String?
        if case .session(let result)? = reply?.outcome, let id = result.result?["token_id"]?.stringValue {
            tokenID = id
        } else if let token = application.token {
            tokenID = try? TokenProof.tokenID(secret: token).description
        }
        let stream = USPStream(core: core, stream: streamCore, ownsConnection: true, earlyDataAccepted: facts.earlyDataAccepted,
                               tokenID: tokenID)
        do {
            try await streamCore.acceptance.futureResult.get()
            if early < initialData.count { try await stream.write(Array(initialData[early...])) }
        } catch {
            await stream.close()
            throw ErrorText.local(error, server: server)
        }
        return stream
    }

    /// Bytes of first stream data that fit in message 1 beside the initial request and its
    /// token presentation (0 for XX, whose message 1 carries nothing encrypted; there the data
    /// follows the handshake, still before the server's reply, up to the smallest window).
    /// `application` nil stands for a begin with an application token; a begin by name also
    /// carries its name, request body and, with `authorizationToken`, a login presentation.
    public static func earlyDataBudget(_ pattern: HandshakeLayout.Pattern, application: ClientStart.Application? = nil,
                                       authorizationToken: Bool = false) -> Int {
        let capacity = HandshakeLayout.earlyFrameCapacity(pattern)
        guard capacity > 0 else { return StreamLimits.minInitialWindow }
        // The request as the session will write it, with presentations of the real length.
        let presentation = TokenProof.presentationPrefix + Base64URL.encode([UInt8](repeating: 0, count: 80))
        let session = application?.name.map { ApplicationSessionRequest(application: $0, request: application?.request ?? [:], clientTCPStream: 1) }
            ?? ApplicationSessionRequest(token: presentation, action: .begin, clientTCPStream: 1)
        let request = InitialRequest(clientSessionID: "c-" + Base64URL.encode([UInt8](repeating: 0, count: 12)),
                                     authorizationToken: authorizationToken && session.application != nil ? presentation : nil,
                                     applicationSession: session)
        guard let encoded = try? SessionMessage.initialRequest(request).encode() else { return 0 }
        let messageFrame = 3 + encoded.count
        let dataHeader = 7
        return max(0, capacity - messageFrame - dataHeader)
    }

    // MARK: - Menu and login

    /// The current menu (after a login, the authenticated one).
    public func menu() async throws -> ApplicationMenu {
        let core = self.core
        let menu = try await core.eventLoop.submit { core.menu }.get()
        guard let menu else { throw USPClientError(.connectionLost, "no menu from \(server.hostPort)") }
        return menu
    }

    /// True once the menu's index 0 offers token invalidation, i.e. the session is authenticated.
    public func isLoggedIn() async throws -> Bool {
        if case .tokenInvalidation? = try await menu().authentication { return true }
        return false
    }

    /// Password login (the menu's `password` method). Returns the authorization token secret,
    /// to save and present on later connections.
    public func login(user: String, password: String) async throws -> String {
        try await authenticate(method: "password", fields: ["user": .string(user), "password": .string(password)], user: user)
    }

    /// Login with the client's static key (method `noise_static`): the handshake already proved
    /// the key, so no field is sent. Needs IK or XX with the identity key.
    public func loginWithKey() async throws -> String {
        guard clientKeyProven else {
            throw USPClientError(.localFile, "no identity key was used on this connection: run usp keygen, give the server's administrator the public key, then log in with --key")
        }
        return try await authenticate(method: "noise_static", fields: [:], user: nil)
    }

    /// Login with an Ed25519 key (method `publickey`): the key signs this connection's handshake
    /// hash, so the proof is useless on any other connection. `user` picks the account when the
    /// key is registered to several.
    public func login(signingKey: Curve25519.Signing.PrivateKey, user: String? = nil) async throws -> String {
        let core = self.core
        let h = try await core.eventLoop.submit { () throws -> [UInt8] in
            guard let handler = core.handler else { throw USPClientError(.connectionLost, "the connection is closed") }
            return try handler.withSession { session, _ throws(USPError) -> [UInt8] in
                guard let h = session.handshake?.handshakeHash else { throw USPError(.unexpectedMessage, "no handshake yet") }
                return h
            }
        }.get()
        let signature = try AuthenticationProof.sign(handshakeHash: h, with: signingKey)
        var fields: [String: JSONValue] = ["public_key": .string(Base64URL.encode(signingKey.publicKey.rawRepresentation)),
                                           "signature": .string(Base64URL.encode(signature))]
        if let user { fields["user"] = .string(user) }
        return try await authenticate(method: "publickey", fields: fields, user: user)
    }

    private func authenticate(method: String, fields: [String: JSONValue], user: String?) async throws -> String {
        let menu = try await menu()
        switch menu.authentication {
        case .methods(let methods)?:
            guard methods.contains(where: { $0.method == method }) else {
                let offered = methods.map(\.method).joined(separator: ", ")
                throw USPClientError(.unsupported, "\(server.hostPort) does not offer \(method) login (it offers: \(offered.isEmpty ? "none" : offered))")
            }
        case .tokenInvalidation?:
            throw USPClientError(.invalidArgument, "this connection to \(server.hostPort) is already logged in")
        case nil:
            throw USPClientError(.unsupported, "\(server.hostPort) offers no login")
        }
        var body = fields
        body["auth_method"] = .string(method)
        let answer = try await request([:], authentication: .credentials(body), expectsMenu: true)
        switch answer.reply.results[.authentication] {
        case .token(let t)?:
            return t
        case .error(let e)?:
            throw ErrorText.login(e, user: user, server: server)
        case .invalidated?, nil:
            throw USPClientError(.connectionLost, "\(server.hostPort) sent no answer to the login")
        }
    }

    // MARK: - Applications

    /// Requests an application token for the application named `name` on the menu.
    public func requestApplication(name: String, fields: [String: JSONValue] = [:]) async throws -> String {
        let (index, offer) = try await find(name)
        let answer = try await request([index: fields], authentication: nil, expectsMenu: false)
        switch answer.reply.results[index] {
        case .token(let t)?:
            return t
        case .error(let e)?:
            throw ErrorText.applicationRequest(e, name: name, offer: offer, server: server)
        case .invalidated?, nil:
            throw USPClientError(.connectionLost, "\(server.hostPort) sent no answer for \"\(name)\"")
        }
    }

    /// Connection brokering: an application token for `name` that only the client at `clientIP`
    /// may use (docs/PROTOCOL.md §6.3.1). Needs a login whose identity the server lets broker for
    /// that address; the token traces back to this login.
    public func requestBrokeredApplication(name: String, fields: [String: JSONValue] = [:], for clientIP: String) async throws -> String {
        let (index, offer) = try await find(name)
        let answer = try await request([index: fields], authentication: nil, expectsMenu: false, clientIP: clientIP)
        switch answer.reply.results[index] {
        case .token(let t)?:
            return t
        case .error(let e)?:
            throw ErrorText.brokering(e, name: name, offer: offer, clientIP: clientIP, server: server)
        case .invalidated?, nil:
            throw USPClientError(.connectionLost, "\(server.hostPort) sent no answer for \"\(name)\"")
        }
    }

    /// `requestBrokeredApplication(name:fields:for:)` with text values (`--field k=v`).
    public func requestBrokeredApplication(name: String, textFields: [String: String], for clientIP: String) async throws -> String {
        let (_, offer) = try await find(name)
        let fields = try RequestFields.coerce(textFields, spec: offer.expectedRequestBody, application: name)
        return try await requestBrokeredApplication(name: name, fields: fields, for: clientIP)
    }

    /// Like `requestApplication(name:fields:)`, with text values (from `--field k=v`) converted
    /// to the types the menu's `expected_request_body` names.
    public func requestApplication(name: String, textFields: [String: String]) async throws -> String {
        let (_, offer) = try await find(name)
        let fields = try RequestFields.coerce(textFields, spec: offer.expectedRequestBody, application: name)
        return try await requestApplication(name: name, fields: fields)
    }

    /// The menu entry for `name`; an unknown name throws `.unknownApplication` with a message that
    /// lists what there is (and, before login, says some entries need one).
    public func offer(named name: String) async throws -> (ServiceIndex, ApplicationOffer) {
        try await find(name)
    }

    func find(_ name: String) async throws -> (ServiceIndex, ApplicationOffer) {
        let menu = try await menu()
        let apps = menu.applications.sorted { $0.key < $1.key }
        if let hit = apps.first(where: { $0.value.name == name }) ?? apps.first(where: { $0.value.name.lowercased() == name.lowercased() }) {
            return (hit.key, hit.value)
        }
        let names = apps.map(\.value.name).joined(separator: ", ")
        var message = "no application named \"\(name)\" on \(server.hostPort) (available: \(names.isEmpty ? "none" : names))"
        if case .methods? = menu.authentication {
            message += "; some appear only after you log in: \(ErrorText.loginHint(server))"
        }
        throw USPClientError(.unknownApplication, message)
    }

    /// Opens a stream on this connection with an application token; returns once accepted.
    public func openStream(token: String) async throws -> USPStream {
        let core = self.core
        let streamCore = try await core.eventLoop.flatSubmit { core.openStream(token: token) }.get()
        return USPStream(core: core, stream: streamCore, ownsConnection: false, earlyDataAccepted: false,
                         tokenID: try? TokenProof.tokenID(secret: token).description)
    }

    /// Invalidates tokens (secrets `usp1.…` or token IDs). Needs a logged-in session. Returns how
    /// many the server invalidated; it ends their streams.
    @discardableResult
    public func invalidate(tokens: [String]) async throws -> Int {
        guard !tokens.isEmpty else { return 0 }
        guard try await isLoggedIn() else {
            throw USPClientError(.loginRequired, "revoking tokens needs a login; log in first: \(ErrorText.loginHint(server))")
        }
        let answer = try await request([:], authentication: .invalidateTokens(tokens), expectsMenu: false)
        switch answer.reply.results[.authentication] {
        case .invalidated(let n)?:
            return Int(n)
        case .error(let e)?:
            throw USPClientError(.refused, "\(server.hostPort) refused to invalidate the tokens: \(e.code.name) (\(e.message))", wireCode: e.code)
        case .token?, nil:
            throw USPClientError(.connectionLost, "\(server.hostPort) sent no answer to the invalidation")
        }
    }

    /// Sends CLOSE and waits for the connection to end.
    public func close() async {
        let core = self.core
        let closed = try? await core.eventLoop.submit { () -> EventLoopFuture<Void>? in
            core.closeSession()
            return core.channel?.closeFuture
        }.get()
        if let closed { _ = try? await closed.get() }
    }

    private func request(_ services: [ServiceIndex: [String: JSONValue]], authentication: AuthenticationRequest?,
                         expectsMenu: Bool, clientIP: String? = nil) async throws -> ServiceReplyAndMenu {
        let core = self.core
        return try await core.eventLoop.flatSubmit {
            core.request(services, authentication: authentication, expectsMenu: expectsMenu, clientIP: clientIP)
        }.get()
    }
}

/// What the handshake established.
struct Facts: Sendable {
    let pattern: HandshakeLayout.Pattern
    let serverStatic: [UInt8]
    let earlyDataAccepted: Bool
}

/// Which handshake to use with which keys, and how to judge the server's key.
struct Plan: Sendable {
    let server: ServerURI
    let home: ClientHome
    let options: USPConnectionOptions
    let known: KnownServers
    let identity: KeyPair?
    /// The key we expect (pinned in the URI, from known_servers or from DNS), nil for first contact.
    let expectedKey: [UInt8]?
    let pinnedInURI: Bool
    /// The key came from DNS and known_servers does not have it yet.
    let keyFromDNS: Bool
    let mode: InitiatorHandshake.Mode

    /// Looks the server up in DNS first when the URI pins no key (docs/PROTOCOL.md §15): SRV for
    /// a port the URI left out, TXT for the key.
    static func make(server: ServerURI, home: ClientHome, options: USPConnectionOptions) async throws -> Plan {
        var server = server
        var published: ServerKeyPublication?
        if server.serverKey == nil, options.dns.enabled, !server.hostIsAddress {
            var p = try await ServerKeyLookup.lookup(host: server.host, options: options.dns)
            // Strict checking (the agent) trusts no new key a forged answer could plant.
            if options.serverKeyChecking == .strict, !p.authenticated { p.keys = [] }
            published = p
            if !server.portGiven, let port = p.port {
                server.port = port
                if let target = p.target, target != server.host { server.connectHost = target }
            }
        }
        return try Plan(server: server, home: home, options: options, published: published)
    }

    init(server: ServerURI, home: ClientHome, options: USPConnectionOptions, published: ServerKeyPublication? = nil) throws(USPClientError) {
        self.server = server
        self.home = home
        self.options = options
        known = try home.loadKnownServers()
        identity = options.anonymous ? nil : try home.loadIdentity()
        let hostPort = server.hostPort
        if let pinned = server.serverKey {
            guard !known.isRevoked(pinned, for: hostPort) else {
                throw USPClientError(.serverKeyRevoked, "the server key in the URI (\(Fingerprint.of(pinned))) is marked @revoked in \(known.path); do not use it")
            }
            expectedKey = pinned
            pinnedInURI = true
            keyFromDNS = false
        } else {
            (expectedKey, keyFromDNS) = try Self.keyFromDNSAndKnownServers(server: server, known: known, published: published, options: options.dns)
            pinnedInURI = false
        }
        if let key = expectedKey {
            mode = identity.map { .knownServer(serverKey: key, clientStatic: $0) } ?? .anonymous(serverKey: key)
        } else {
            mode = .firstContact(clientStatic: identity ?? KeyText.generate())
        }
    }

    /// The precedence when the URI pins no key: a key in known_servers must be among the keys DNS
    /// publishes (else the server's key changed, or the answer is forged: refused, as ssh refuses a
    /// changed host key); with none known, DNS's first key is used; without DNS keys, known_servers
    /// or first contact. `--dns-require-dnssec` refuses any DNS answer the resolver did not
    /// validate, and a server that publishes no key.
    static func keyFromDNSAndKnownServers(server: ServerURI, known: KnownServers, published: ServerKeyPublication?,
                                          options: DNSKeyOptions) throws(USPClientError) -> ([UInt8]?, Bool) {
        let s = server.hostPort
        let name = ServerKeyPublication.name(for: server.host)
        let knownKey = known.keys(for: s).first
        guard let published, !published.keys.isEmpty else {
            if options.requireDNSSEC {
                let why = server.hostIsAddress ? "\(server.host) is an address, not a name DNS can vouch for"
                    : "\(name) has no TXT record \"v=usp1 k=KEY\"" + (published?.unreadable.isEmpty == false ? " that can be read (\(published!.unreadable.joined(separator: "; ")))" : "")
                throw USPClientError(.serverKeyMismatch, "--dns-require-dnssec: no server key for \(s) from DNS: \(why); put the key in the URI instead (usp://KEY@\(s))")
            }
            return (knownKey, false)
        }
        if options.requireDNSSEC, !published.authenticated {
            throw USPClientError(.serverKeyMismatch, """
                --dns-require-dnssec: the DNS answer for \(name) was not validated (no AD bit): the zone is not signed, or the \
                resolver\(options.server.map { " \($0.host):\($0.port)" } ?? " in /etc/resolv.conf") does not validate DNSSEC
                """)
        }
        let listed = published.keys.map(Fingerprint.of).joined(separator: ", ")
        if let revoked = published.keys.first(where: { known.isRevoked($0, for: s) }) {
            throw USPClientError(.serverKeyRevoked, "DNS publishes a key for \(s) (\(Fingerprint.of(revoked))) that is marked @revoked in \(known.path); do not connect")
        }
        if let knownKey {
            guard published.keys.contains(knownKey) else {
                throw USPClientError(.serverKeyChanged, """
                    the server key for \(s) in \(known.path) (\(Fingerprint.of(knownKey))) is not among the keys \(name) publishes in \
                    DNS (\(listed)): the server's key changed, or the DNS answer is forged\(published.authenticated ? "" : " (it is not DNSSEC-validated)"). \
                    If the change is expected, remove the old key: usp known-servers remove \(s)
                    """)
            }
            return (knownKey, false)
        }
        return (published.keys[0], true)
    }

    var pattern: HandshakeLayout.Pattern {
        switch mode {
        case .firstContact: .xx
        case .knownServer: .ik
        case .anonymous: .nk
        }
    }

    func clientKeyProven(_ facts: Facts) -> Bool {
        identity != nil && (facts.pattern == .ik || facts.pattern == .xx)
    }

    /// Connects with this plan. A failed IK/NK handshake is followed by an XX probe that only
    /// learns which key the server presents (and refuses it), to say precisely what is wrong.
    func run(start: ClientStart, dedicated: Bool) async throws -> (ConnectionCore, Facts) {
        let trust = ServerKeyTrust(server: server, known: known, mode: options.serverKeyChecking)
        do {
            return try await Self.open(server: server, mode: mode, start: start, trust: trust, options: options, dedicated: dedicated)
        } catch let error as USPClientError {
            if let refusal = trust.refusal { throw refusal }
            guard needsProbe(error) else { throw error }
            throw await explainRejected(error)
        }
    }

    /// Whether a failed attempt is explained by probing which key the server presents.
    func needsProbe(_ error: USPClientError) -> Bool {
        error.code == .handshakeRejected && expectedKey != nil
    }

    /// A handshake refused with an expected key: an XX probe learns the key the server presents,
    /// to say whether the key changed, is revoked, or the server only refused for now.
    func explainRejected(_ error: USPClientError) async -> USPClientError {
        guard let expected = expectedKey else { return error }
        let seen = await Self.probe(server: server, options: options)
        let s = server.hostPort
        if let seen, seen != expected {
            if pinnedInURI {
                return USPClientError(.serverKeyMismatch, "server key for \(s) does not match the key in the URI: expected \(Fingerprint.of(expected)), the server has \(Fingerprint.of(seen)); check the URI")
            }
            if known.isRevoked(seen, for: s) {
                return USPClientError(.serverKeyRevoked, "server key for \(s) changed to \(Fingerprint.of(seen)), which is marked @revoked in \(known.path); do not connect")
            }
            return USPClientError(.serverKeyChanged, "server key for \(s) changed: known \(Fingerprint.of(expected)) now \(Fingerprint.of(seen)); if this is expected, remove the line from \(known.path) (usp known-servers remove \(s))")
        }
        if seen == nil, error.wireCode == .handshakeTimeout {
            return USPClientError(.handshakeRejected, """
                server at \(s) did not answer our handshake within \(options.handshakeTimeout.nanoseconds / 1_000_000_000) s. \
                Likely causes: the key in the URI or known_servers is wrong (a stealth server answers only its own key, and \
                holds any other connection without a word); it is refusing connections for now (its handshake rate limit \
                for this address, or its connection limits under load: try again in a moment); or it is not a USP server
                """, wireCode: error.wireCode)
        }
        if seen == nil {
            return USPClientError(.handshakeRejected, """
                server at \(s) did not accept our handshake: it closed the connection without answering. Likely causes: \
                it is refusing connections for now (its handshake rate limit for this address, or its connection limits \
                under load: try again in a moment); the key in the URI or known_servers is wrong (a stealth server answers \
                only its own key); or it is not a USP server
                """, wireCode: error.wireCode)
        }
        // The server answered a probe with the expected key: our own attempt was dropped.
        return USPClientError(.handshakeRejected, """
            server at \(s) closed the connection during our handshake, though its key is the expected one: it is \
            probably refusing connections for now (its handshake rate limit for this address, or its connection limits \
            under load); try again in a moment
            """, wireCode: error.wireCode)
    }

    /// Records a key learned on first contact (XX) in known_servers, per the checking mode.
    /// The line for a person when `recordIfNew` added the key.
    func addedNotice(_ facts: Facts) -> String {
        "added \(server.hostPort) (\(Fingerprint.of(facts.serverStatic))) to \(home.knownServersPath)\(keyFromDNS ? ", the key published in DNS" : ", trusted on first use")"
    }

    func recordIfNew(_ facts: Facts) throws -> Bool {
        guard facts.pattern == .xx || keyFromDNS, options.serverKeyChecking != .strict || keyFromDNS else { return false }
        guard case .unknown = known.verdict(for: server.hostPort, key: facts.serverStatic) else { return false }
        try home.addKnownServer(server.hostPort, key: facts.serverStatic)
        return true
    }

    static func open(server: ServerURI, mode: InitiatorHandshake.Mode, start: ClientStart, trust: any ClientSessionDelegate & Sendable,
                     options: USPConnectionOptions, dedicated: Bool) async throws -> (ConnectionCore, Facts) {
        let local = try localSocketAddress(options.localAddress, server: server)
        let group = options.eventLoopGroup ?? MultiThreadedEventLoopGroup.singleton
        let eventLoop = group.next()
        let core = ConnectionCore(eventLoop: eventLoop, server: server)
        if dedicated { _ = try await eventLoop.submit { core.registerDedicatedStream() }.get() }
        let configuration = options.session
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(options.connectTimeout)
            .channelOption(ChannelOptions.tcpOption(.tcp_nodelay), value: 1)
            .channelOption(ChannelOptions.recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 2048, maximum: 256 * 1024))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let session = try ClientSession(mode: mode, configuration: configuration)
                    let handler = ClientSessionHandler(session: session, start: start, delegate: trust) { action in core.handle(action) }
                    core.handler = handler
                    core.channel = channel
                    try channel.pipeline.syncOperations.addHandler(handler)
                }
            }
        if let local { _ = bootstrap.bind(to: local) }
        do {
            let host = server.connectHost ?? server.host
            if local == nil, let fd = options.earlyConnection?.take(host: host, port: Int(server.port)) {
                // Begun before this client was ready (its SYN already answered, most likely): the
                // wait blocks this task at most until the connect ends, as the event loop would.
                try EarlyConnection.waitConnected(fd, timeout: options.connectTimeout)
                _ = try await bootstrap.withConnectedSocket(fd).get()
            } else {
                // Fast Open is set before connect (the kernel refuses it on a connected socket):
                // with a cookie, the SYN waits for message 1 and carries it.
                let connecting = options.fastOpen
                    ? bootstrap.channelOption(ChannelOptions.tcpOption(NIOBSDSocket.Option(rawValue: EarlyConnection.fastOpenConnect)), value: 1)
                    : bootstrap
                if let address = try? SocketAddress(ipAddress: host, port: Int(server.port)) {
                    // An address literal is connected to at once: no resolver thread, no Happy Eyeballs.
                    _ = try await connecting.connect(to: address).get()
                } else {
                    _ = try await connecting.connect(host: host, port: Int(server.port)).get()
                }
            }
        } catch {
            let failure = ErrorText.connect(error, server: server)
            try? await eventLoop.submit { core.abandon(failure) }.get()
            throw failure
        }
        let deadline = eventLoop.scheduleTask(in: options.handshakeTimeout) { core.timeOut(after: options.handshakeTimeout) }
        do {
            try await core.ready.futureResult.get()
            deadline.cancel()
        } catch {
            deadline.cancel()
            // With Fast Open the SYN leaves with message 1, so a refused or unreachable server
            // shows as a socket error now, not at connect: it gets the connect's message.
            let socketError = try? await eventLoop.submit { core.handler?.socketError }.get()
            if let io = socketError as? IOError, [ECONNREFUSED, ETIMEDOUT, EHOSTUNREACH, ENETUNREACH].contains(io.errnoCode) {
                throw ErrorText.connect(io, server: server)
            }
            throw ErrorText.local(error, server: server)
        }
        let facts = try await eventLoop.submit { () throws -> Facts in
            guard let pattern = core.pattern else { throw USPClientError(.connectionLost, "no handshake with \(server.hostPort)") }
            return Facts(pattern: pattern, serverStatic: core.serverStatic, earlyDataAccepted: core.earlyDataAccepted)
        }.get()
        return (core, facts)
    }

    /// `USPConnectionOptions.localAddress` as a socket address with port 0, or nil (no bind).
    static func localSocketAddress(_ address: String?, server: ServerURI) throws -> SocketAddress? {
        guard let address else { return nil }
        do {
            return try SocketAddress(ipAddress: address, port: 0)
        } catch {
            throw USPClientError(.invalidArgument, "local address \"\(address)\" for \(server.hostPort) is not an IP address")
        }
    }

    /// First contact (XX) with a throwaway key and a delegate that refuses every key: learns the
    /// key the server presents, and sends nothing after message 1.
    static func probe(server: ServerURI, options: USPConnectionOptions) async -> [UInt8]? {
        let probe = KeyProbe()
        var o = options
        o.handshakeTimeout = .seconds(3)
        _ = try? await open(server: server, mode: .firstContact(clientStatic: KeyText.generate()), start: ClientStart(),
                            trust: probe, options: o, dedicated: false)
        return probe.seenKey
    }
}

/// Decides, during XX, whether to trust the server's key (known_servers and the checking mode).
/// Called once on the event loop; read after the connection attempt completes.
final class ServerKeyTrust: ClientSessionDelegate, @unchecked Sendable {
    let server: ServerURI
    let known: KnownServers
    let mode: KnownServers.Mode
    private(set) var refusal: USPClientError?

    init(server: ServerURI, known: KnownServers, mode: KnownServers.Mode) {
        self.server = server
        self.known = known
        self.mode = mode
    }

    func acceptServerKey(_ key: [UInt8]) -> Bool {
        let s = server.hostPort
        switch known.verdict(for: s, key: key) {
        case .trusted:
            return true
        case .revoked:
            refusal = USPClientError(.serverKeyRevoked, "server key for \(s) (\(Fingerprint.of(key))) is marked @revoked in \(known.path); do not connect")
            return false
        case .unknown:
            guard mode != .strict else {
                refusal = USPClientError(.unknownServer, "\(s) is not in \(known.path) and checking is strict; it presents \(Fingerprint.of(key)); if that is right, connect once with --server-key-checking accept-new or pin it: usp://\(Base64URL.encode(key))@\(s)")
                return false
            }
            return true
        case .changed(let keys):
            guard mode != .no else { return true }
            refusal = USPClientError(.serverKeyChanged, "server key for \(s) changed: known \(keys.map(Fingerprint.of).joined(separator: ", ")) now \(Fingerprint.of(key)); if this is expected, remove the line from \(known.path) (usp known-servers remove \(s))")
            return false
        }
    }
}

/// Records the key an XX server presents and refuses it.
final class KeyProbe: ClientSessionDelegate, @unchecked Sendable {
    private(set) var seenKey: [UInt8]?
    func acceptServerKey(_ key: [UInt8]) -> Bool {
        seenKey = key
        return false
    }
}
