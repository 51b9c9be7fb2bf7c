import USPCore

/// The scripted demo: a server on 127.0.0.1, then client connections that each show one part
/// of the protocol. Each part lives in its own file as an extension.
final class DemoRun {
    static let host = "127.0.0.1"
    /// A second loopback address, to present a token from somewhere it was not issued to.
    static let otherHost = "127.0.0.2"
    static let user = "demo"

    let narrator: Narrator
    let tap = WireTap()
    let random = SystemRandomSource()
    let serverKey: KeyPair
    let clientKey: KeyPair
    let password: String
    let server: DemoServer

    init(narrator: Narrator) throws {
        self.narrator = narrator
        serverKey = KeyPair.generate(using: random)
        clientKey = KeyPair.generate(using: random)
        password = Base64URL.encode(random.bytes(12))
        server = try DemoServer(host: Self.host, staticKey: serverKey, policy: DemoPolicy(users: [Self.user: password]))
    }

    /// Runs every part; returns the summary line.
    func run() throws -> String {
        let started = monotonicSeconds()
        server.start()
        narrator.line("usp-demo: the USP protocol core over real TCP")
        narrator.section("Server")
        narrator.step("listening on \(server.uri)")
        narrator.step("key fingerprint \(Fingerprint.of(serverKey.publicKey))")
        narrator.step("user \(Self.user), password \(password) (printed once)")

        let first = try firstContact()
        let roundTrips = try dedicatedEcho(serverKey: first.serverKey, echoToken: first.tokens["echo"]!)
        let refusals = try refusedTokens(serverKey: first.serverKey, echoToken: first.tokens["echo"]!)
        try checkNoCleartext(secrets: Array(first.tokens.values) + [first.authorizationToken])

        let elapsed = monotonicSeconds() - started
        let trips = roundTrips == 1 ? "1 round trip" : "\(roundTrips) round trips"
        return "usp-demo: ok - XX first contact and login, IK echo in \(trips), \(refusals.count) bad tokens refused "
            + "(\(refusals.map(\.name).joined(separator: ", "))), \(tap.totalBytes) B over \(tap.connections) connections "
            + "without cleartext (\(String(format: "%.2f", elapsed)) s)"
    }

    /// A new TCP connection to the demo server.
    func connect(from source: String? = nil) throws -> TCPSocket {
        try TCPSocket.connect(host: Self.host, port: server.port, from: source)
    }
}
