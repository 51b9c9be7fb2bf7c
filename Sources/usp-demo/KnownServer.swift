import USPCore

/// Parts 2 and 3: clients that know the server key (learned in part 1) use IK, and a connection
/// dedicated to one application carries its token and first bytes in message 1.
extension DemoRun {
    static let echoText = "hello over USP"

    /// Part 2: returns the round trips until the echo came back.
    func dedicatedEcho(serverKey: [UInt8], echoToken: String) throws -> Int {
        narrator.section("2. Known server key (IK): a connection dedicated to echo")
        let c = try ClientConnection(mode: .knownServer(serverKey: serverKey, clientStatic: clientKey), socket: try connect(), tap: tap)
        let payload = Array(Self.echoText.utf8)
        try c.start(ClientStart(application: .init(token: echoToken), initialData: payload))

        let early = try c.next("the handshake") {
            if case .handshake(.ik, _, let early) = $0 { early } else { nil }
        }
        let stream = c.applicationStream ?? 1
        var echoed: [UInt8] = []
        while echoed.count < payload.count {
            echoed += try c.next("the echo") { if case .data(stream, let d) = $0 { d } else { nil } }
        }
        try expect(echoed == payload, "echo sent back \(String(decoding: echoed, as: UTF8.self).debugDescription)")
        let flights = c.meter.flights
        let roundTrips = (flights + 1) / 2
        narrator.step("message 1: handshake + echo token + \(payload.count) B of data; early data "
                      + (early ? "accepted" : "refused, sent again"))
        narrator.step("echo back after \(flights) flights = \(roundTrips) round trip\(roundTrips == 1 ? "" : "s"): "
                      + "\"\(String(decoding: echoed, as: UTF8.self))\"", c.takeDelta())

        try c.perform { var ignored = ClientActions(); try $0.finish(stream: stream, into: &ignored) }
        _ = try c.next("the echo stream to close") { if case .streamClosed(stream, _) = $0 { true } else { nil } }
        try c.close()
        narrator.step("FIN both ways, CLOSE", c.takeDelta())
        return roundTrips
    }

    /// Part 3: tokens that must not open anything. Returns the codes they were refused with.
    func refusedTokens(serverKey: [UInt8], echoToken: String) throws -> [USPError.Code] {
        narrator.section("3. Tokens that must not work (IK, token in message 1)")
        var codes: [USPError.Code] = []

        // The echo token, issued to 127.0.0.1, presented from another address.
        if let socket = try? connect(from: Self.otherHost) {
            let code = try refusal("echo token (issued to \(Self.host))", serverKey: serverKey, token: echoToken, socket: socket)
            try expect(code == .tokenWrongAddress, "a token from the wrong address was answered \(code.name)")
            codes.append(code)
        } else {
            narrator.step("(cannot connect from \(Self.otherHost): wrong-address check skipped)")
        }

        // A well-formed token this server never issued.
        let forged = TokenProof.issue(random: random).secret
        let code = try refusal("a token never issued", serverKey: serverKey, token: forged, socket: try connect())
        try expect(code == .tokenInvalid, "a forged token was answered \(code.name)")
        codes.append(code)
        return codes
    }

    private func refusal(_ label: String, serverKey: [UInt8], token: String, socket: TCPSocket) throws -> USPError.Code {
        let from = socket.localAddress
        let c = try ClientConnection(mode: .knownServer(serverKey: serverKey, clientStatic: clientKey), socket: socket, tap: tap)
        try c.start(ClientStart(application: .init(token: token), initialData: Array(Self.echoText.utf8)))
        let replyCode: USPError.Code = try c.next("the application_session reply") {
            guard case .applicationReply(let r) = $0 else { return nil }
            if case .error(let e) = r.outcome { return e.code }
            return .ok
        }
        try expect(replyCode != .ok, "the server accepted the token from \(from)")
        let closeCode = try c.next("CLOSE") { if case .closed(let e) = $0 { e?.code ?? .ok } else { nil } }
        try expect(closeCode == replyCode, "refused with \(replyCode.name) but closed with \(closeCode.name)")
        try c.close()
        narrator.step("\(label) from \(from): refused, \(replyCode.name) (\(replyCode.wireValue))", c.takeDelta())
        return replyCode
    }
}
