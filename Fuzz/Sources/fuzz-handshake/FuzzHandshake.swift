import FuzzSupport
import USPCore

// The server side of the handshake: `ServerSession` (and in it `ResponderHandshake`, `Hello.decode`,
// the early-data replay rule, message 2, XX's message 3, and the early frames and first records
// that follow) fed bytes a client sent. Fixed server static key, deterministic randomness.
//
// Input: a mode byte, then
//   mode % 4 == 0  raw: the bytes go to the server as they are (message 1, message 3, records;
//                  only XX gets past message 1 this way, since IK and NK need the server key);
//   mode % 4 == 1  IK, 2  NK: the harness plays the client: the next 928 (IK) / 976 (NK) bytes are
//                  message 1's plaintext payload (hello, early frames, padding), encrypted under the
//                  server's key, so mutations reach the hello and early-frame decoders;
//   mode % 4 == 3  XX: the next 992 bytes are message 1's payload, then 64 bytes message 3's hello.
// For 1…3 the rest is records: u16 length + that many plaintext bytes, each sealed with the
// transport key of the finished handshake and sent after it (at most 8).
//
// Properties checked: the server never answers a message 1 it did not accept (darkness), message 2
// is exactly 160 bytes, and a finished handshake's pattern is the one the client used.

let serverKey = FuzzKeys.server

/// The client's DH results are the same every run (fixed keys): computed once.
let clientPrecomputed: [HandshakeState.PrecomputedDH] = {
    let rs = serverKey.publicKey
    return [
        .init(localPublicKey: FuzzKeys.clientEphemeral.publicKey, remotePublicKey: rs,
              sharedSecret: try! X25519.dh(FuzzKeys.clientEphemeral, rs)),
        .init(localPublicKey: FuzzKeys.client.publicKey, remotePublicKey: rs,
              sharedSecret: try! X25519.dh(FuzzKeys.client, rs)),
    ]
}()

func clientState(_ pattern: HandshakeLayout.Pattern, random: FixedRandom) -> HandshakeState {
    try! HandshakeState(protocol: pattern.noiseProtocol, role: .initiator, prologue: HandshakeLayout.prologue,
                        localStatic: pattern == .nk ? nil : FuzzKeys.client, localEphemeral: FuzzKeys.clientEphemeral,
                        remoteStatic: pattern == .xx ? nil : serverKey.publicKey, random: random,
                        precomputedDH: clientPrecomputed, ephemeralEncoding: .elligator2)
}

func run(_ input: [UInt8]) {
    var cursor = ByteCursor(input)
    let mode = cursor.u8() % 4
    let random = FixedRandom()
    let policy = FuzzPolicy(random: FixedRandom(seed: 7))
    var server = ServerSession(staticKey: serverKey, peerAddress: "192.0.2.10", random: random, ephemeral: FuzzKeys.serverEphemeral)
    var actions = ServerActions()
    let now = FuzzKeys.now

    if mode == 0 {
        // Raw bytes, in two pieces, as TCP may deliver them.
        let split = Int(cursor.u16())
        let first = cursor.take(split)
        server.receive(first, now: now, delegate: policy, into: &actions)
        server.receive(cursor.rest(), now: now, delegate: policy, into: &actions)
        checkDarkness(&server)
        return
    }

    let pattern: HandshakeLayout.Pattern = mode == 1 ? .ik : mode == 2 ? .nk : .xx
    var client = clientState(pattern, random: FixedRandom(seed: 3))
    let payload = cursor.takePadded(HandshakeLayout.message1PayloadLength(pattern))
    let message1 = try! client.writeMessage(payload: payload).message
    check(message1.count == HandshakeLayout.message1Length, "message 1 is \(message1.count) bytes")
    server.receive(message1, now: now, delegate: policy, into: &actions)
    let out = server.drainOutbound { Array($0) }
    check(server.state != .awaitingMessage1, "a whole message 1 left the server waiting")
    if server.handshake == nil, server.state == .closed {
        // Refused: nothing at all, or message 2 when the hello asked for what the server cannot do.
        check(out.isEmpty || out.count == HandshakeLayout.message2Length, "the server sent \(out.count) bytes after refusing message 1")
        return
    }
    check(out.count >= HandshakeLayout.message2Length, "message 2 is \(out.count) bytes")
    guard let read = try? client.readMessage(out.prefix(HandshakeLayout.message2Length)) else { return }
    if let transport = read.transport {
        finish(&server, transport: transport, pattern: pattern, cursor: &cursor, policy: policy)
        return
    }
    // XX: message 3 with the fuzzed hello.
    check(pattern == .xx && server.state == .awaitingMessage3, "\(pattern): no transport after message 2")
    guard let three = try? client.writeMessage(payload: cursor.takePadded(Hello.length)), let transport = three.transport else { return }
    actions.removeAll()
    server.receive(three.message, now: now, delegate: policy, into: &actions)
    _ = server.drainOutbound { $0.count }
    finish(&server, transport: transport, pattern: pattern, cursor: &cursor, policy: policy)
}

/// After the handshake: the pattern agrees, and the fuzzed records go in under the transport key.
func finish(_ server: inout ServerSession, transport: HandshakeState.Transport, pattern: HandshakeLayout.Pattern,
            cursor: inout ByteCursor, policy: FuzzPolicy) {
    if let done = server.handshake { check(done.pattern == pattern, "server finished \(done.pattern), client used \(pattern)") }
    guard server.state != .closed else { return }
    var send = transport.send
    var wire: [UInt8] = []
    var records = 0
    while !cursor.isAtEnd, records < 8 {
        let length = Int(cursor.u16() % 4096)
        let plaintext = cursor.take(length)
        guard !plaintext.isEmpty else { break }
        guard let header = try? send.encryptWithAd([], [UInt8(plaintext.count >> 8), UInt8(plaintext.count & 0xFF)]),
              let body = try? send.encryptWithAd([], plaintext) else { break }
        wire += header + body
        records += 1
    }
    var actions = ServerActions()
    server.receive(wire, now: FuzzKeys.now, delegate: policy, into: &actions)
    _ = server.drainOutbound { $0.count }
}

/// Before a handshake finishes the server sends nothing but XX's message 2.
func checkDarkness(_ server: inout ServerSession) {
    let out = server.drainOutbound { Array($0) }
    if server.state == .awaitingMessage1 { check(out.isEmpty, "\(out.count) bytes sent before message 1 was read") }
    if server.handshake == nil {
        check(out.isEmpty || out.count == HandshakeLayout.message2Length, "\(out.count) bytes sent without a finished handshake")
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHandshake(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt { Harness.run(data, size, run) }

@_cdecl("LLVMFuzzerInitialize")
public func fuzzHandshakeInitialize(_ argc: FuzzArgc, _ argv: FuzzArgv) -> CInt { Harness.initialize(seeds: HandshakeSeeds.all) }
