import Testing
@testable import USPCore

/// A deterministic `RandomSource` (SplitMix64): the same seed yields the same byte stream, so a
/// handshake driven by it is reproducible byte for byte.
///
/// `@unchecked Sendable`: the state is a plain counter mutated without a lock. Each instance is
/// created inside one test and used only from that test's task, never shared between tests.
final class HSSeededRandom: RandomSource, @unchecked Sendable {
    private var state: UInt64
    /// How many bytes have been handed out (lets a test see that randomness was drawn).
    private(set) var bytesDrawn = 0

    init(seed: UInt64) { state = seed }

    private func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    func fill(_ buffer: UnsafeMutableRawBufferPointer) {
        var offset = 0
        while offset < buffer.count {
            var word = next()
            let n = min(8, buffer.count - offset)
            withUnsafeBytes(of: &word) { w in
                for i in 0..<n { buffer[offset + i] = w[i] }
            }
            offset += n
        }
        bytesDrawn += buffer.count
    }
}

/// A key pair derived from a seed.
func hsKeyPair(_ seed: UInt64) -> KeyPair {
    KeyPair.generate(using: HSSeededRandom(seed: seed))
}

/// Asserts that `body` throws a `USPError` with `code`.
func hsExpect<R>(
    _ code: USPError.Code,
    _ comment: Comment? = nil,
    sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () throws(USPError) -> R
) {
    do {
        _ = try body()
        Issue.record("expected \(code.name), but the call succeeded. \(comment.map { "\($0)" } ?? "")", sourceLocation: sourceLocation)
    } catch {
        #expect(error.code == code, "expected \(code.name), got \(error). \(comment.map { "\($0)" } ?? "")", sourceLocation: sourceLocation)
    }
}

/// Returns the error `body` throws, or nil (and records an issue) if it succeeded.
@discardableResult
func hsExpectAnyError<R>(
    _ comment: Comment? = nil,
    sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () throws(USPError) -> R
) -> USPError? {
    do {
        _ = try body()
        Issue.record("expected an error, but the call succeeded. \(comment.map { "\($0)" } ?? "")", sourceLocation: sourceLocation)
        return nil
    } catch {
        return error
    }
}

/// A hello with every field set to something other than its default, so "the peer got what was
/// sent" cannot pass by accident.
func hsHello(_ salt: UInt32, versionMin: UInt8 = 1, versionMax: UInt8 = 1) -> Hello {
    var h = Hello()
    h.versionMin = versionMin
    h.versionMax = versionMax
    h.flags = salt % 2 == 0 ? [.paddingRequested] : [.earlyDataAccepted]
    h.maxRecordPlaintext = 2048 + salt
    h.streamWindow = 65536 + salt
    h.maxStreams = UInt16(10 + salt % 1000)
    h.rekeyLimit = (1 << 24) + UInt64(salt)
    h.timestamp = Timestamp(seconds: 1_700_000_000 + UInt64(salt), nanoseconds: 123_456_789 + salt)
    return h
}

/// Both sides of a finished USP handshake, plus the messages that crossed the wire.
struct HSCompletedHandshake {
    var client: HandshakeResult
    var server: HandshakeResult
    var message1: [UInt8]
    var message2: [UInt8]
    var message3: [UInt8]?
    var serverSawMessage1: ResponderHandshake.Message1
}

/// Runs a complete handshake of `pattern` between a fresh client and server.
func hsRunHandshake(
    _ pattern: HandshakeLayout.Pattern,
    clientStatic: KeyPair = hsKeyPair(1),
    serverStatic: KeyPair = hsKeyPair(2),
    clientHello: Hello = hsHello(11),
    serverHello: Hello = hsHello(22),
    earlyFrames: [UInt8] = [],
    allowFirstContact: Bool = true,
    clientRandom: any RandomSource = SystemRandomSource(),
    serverRandom: any RandomSource = SystemRandomSource()
) throws(USPError) -> HSCompletedHandshake {
    let mode: InitiatorHandshake.Mode
    switch pattern {
    case .xx: mode = .firstContact(clientStatic: clientStatic)
    case .ik: mode = .knownServer(serverKey: serverStatic.publicKey, clientStatic: clientStatic)
    case .nk: mode = .anonymous(serverKey: serverStatic.publicKey)
    }
    var client = try InitiatorHandshake(mode: mode, random: clientRandom)
    var server = ResponderHandshake(staticKey: serverStatic, allowFirstContact: allowFirstContact, random: serverRandom)
    let m1 = try client.writeMessage1(hello: clientHello, earlyFrames: earlyFrames)
    let seen = try server.readMessage1(m1)
    let (m2, serverResultIKNK) = try server.writeMessage2(hello: serverHello)
    switch try client.readMessage2(m2) {
    case .finished(let clientResult):
        guard let serverResult = serverResultIKNK else {
            throw USPError(.internalError, "test: server did not finish after message 2")
        }
        return HSCompletedHandshake(client: clientResult, server: serverResult, message1: m1, message2: m2,
                                  message3: nil, serverSawMessage1: seen)
    case .needMessage3:
        let (m3, clientResult) = try client.writeMessage3(hello: clientHello)
        let serverResult = try server.readMessage3(m3)
        return HSCompletedHandshake(client: clientResult, server: serverResult, message1: m1, message2: m2,
                                  message3: m3, serverSawMessage1: seen)
    }
}

/// Returns `bytes` with the byte at `index` XORed with `mask`.
func hsFlipped(_ bytes: [UInt8], at index: Int, mask: UInt8 = 0x01) -> [UInt8] {
    var copy = bytes
    copy[index] ^= mask
    return copy
}

/// Number of positions at which two equal-length byte strings agree.
func hsAgreeingPositions(_ a: [UInt8], _ b: [UInt8]) -> Int {
    precondition(a.count == b.count)
    return zip(a, b).reduce(0) { $0 + ($1.0 == $1.1 ? 1 : 0) }
}
