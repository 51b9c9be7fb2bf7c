import USPCore

/// Part 1: a client that knows only the address. XX teaches it the server key; it reads the
/// anonymous menu, fails a login, logs in, sees the longer menu, gets application tokens and
/// opens streams to `time` and `secret-notes` on the same connection.
extension DemoRun {
    struct FirstContactResult {
        let serverKey: [UInt8]
        let authorizationToken: String
        /// Application token secrets by application name.
        let tokens: [String: String]
    }

    func firstContact() throws -> FirstContactResult {
        narrator.section("1. First contact (XX): the client knows the address, not the key")
        let trust = LearnServerKey()
        let c = try ClientConnection(mode: .firstContact(clientStatic: clientKey), socket: try connect(), trust: trust, tap: tap)
        narrator.step("TCP connected to \(Self.host):\(server.port)")

        try c.start()
        let (pattern, learned) = try c.next("the handshake") {
            if case .handshake(let p, let key, _) = $0 { (p, key) } else { nil }
        }
        try expect(pattern == .xx, "expected XX, got \(pattern)")
        try expect(learned == serverKey.publicKey, "the server key learned in XX is not the one in the URI")
        narrator.step("handshake \(pattern.rawValue), server key \(Fingerprint.of(learned).abbreviated(20)) = URI key", c.takeDelta())

        let anonymous = try c.next("the anonymous menu") { if case .menu(let m) = $0 { m } else { nil } }
        try expect(anonymous.applicationNames == ["echo", "time"], "anonymous menu lists \(anonymous.applicationNames)")
        narrator.step("anonymous menu: \(anonymous.applicationNames.joined(separator: ", ")) (no secret-notes), login: \(methods(anonymous))",
                      c.takeDelta())

        // A wrong password: index 0 answers with an error code, the session goes on.
        try c.perform { try $0.requestServices([:], authentication: .credentials(["user": .string(Self.user), "password": "not-the-password"])) }
        let refused = try serviceReply(c)
        guard case .error(let loginError)? = refused.results[.authentication] else { throw DemoError("a wrong password was accepted") }
        try expect(loginError.code == .authenticationFailed, "wrong password answered \(loginError.code.name)")
        narrator.step("login \(Self.user) with a wrong password: \(loginError.code.name) (\(loginError.code.wireValue))", c.takeDelta())

        try c.perform { try $0.requestServices([:], authentication: .credentials(["user": .string(Self.user), "password": .string(password)])) }
        let accepted = try serviceReply(c)
        guard case .token(let authorizationToken)? = accepted.results[.authentication] else {
            throw DemoError("login failed: \(String(describing: accepted.results[.authentication]))")
        }
        narrator.step("login \(Self.user): authorization token \(authorizationToken.abbreviated(12))", c.takeDelta())

        let menu = try c.next("the authenticated menu") { if case .menu(let m) = $0 { m } else { nil } }
        try expect(menu.applicationNames == ["echo", "time", "secret-notes"], "authenticated menu lists \(menu.applicationNames)")
        narrator.step("authenticated menu: \(menu.applicationNames.joined(separator: ", ")), index 0: token invalidation", c.takeDelta())

        // One request for all three application tokens (indices from the menu just received).
        var wanted: [ServiceIndex: [String: JSONValue]] = [:]
        for name in menu.applicationNames { wanted[menu.index(of: name)!] = [:] }
        try c.perform { try $0.requestServices(wanted) }
        let reply = try serviceReply(c)
        var tokens: [String: String] = [:]
        for name in menu.applicationNames {
            guard case .token(let t)? = reply.results[menu.index(of: name)!] else {
                throw DemoError("no token for \(name): \(String(describing: reply.results[menu.index(of: name)!]))")
            }
            tokens[name] = t
        }
        narrator.step("application tokens for \(menu.applicationNames.joined(separator: ", ")), bound to \(Self.host)", c.takeDelta())

        let timeStream = try c.perform { try $0.openStream(applicationToken: tokens["time"]!) }
        let time = String(decoding: try c.readStream(timeStream, name: "time"), as: UTF8.self)
        narrator.step("stream \(timeStream) to time: \(time.trimmingWhitespace)", c.takeDelta())

        let notesStream = try c.perform { try $0.openStream(applicationToken: tokens["secret-notes"]!) }
        let notes = String(decoding: try c.readStream(notesStream, name: "secret-notes"), as: UTF8.self)
        try expect(notes == SecretNotesApplication.text, "secret-notes sent \(notes.debugDescription)")
        narrator.step("stream \(notesStream) to secret-notes: \"\(notes.trimmingWhitespace)\"", c.takeDelta())

        try c.close()
        narrator.step("CLOSE", c.takeDelta())
        return FirstContactResult(serverKey: learned, authorizationToken: authorizationToken, tokens: tokens)
    }

    private func serviceReply(_ c: ClientConnection) throws -> ServiceReply {
        try c.next("a service reply") { if case .serviceReply(let r) = $0 { r } else { nil } }
    }

    private func methods(_ menu: ApplicationMenu) -> String {
        guard case .methods(let list)? = menu.authentication else { return "none" }
        return list.map(\.method).joined(separator: ", ")
    }
}

extension String {
    var trimmingWhitespace: String {
        String(drop { $0.isWhitespace }.reversed().drop { $0.isWhitespace }.reversed())
    }
}
