import PropertyBased
import Testing
@testable import USPCore

/// A client of `pattern` that has written message 1 to `server`, and the honest message 2.
private func afterMessage1(_ pattern: HandshakeLayout.Pattern, server serverStatic: KeyPair) throws -> (client: InitiatorHandshake, server: ResponderHandshake, m2: [UInt8]) {
    let mode: InitiatorHandshake.Mode = switch pattern {
    case .xx: .firstContact(clientStatic: hsKeyPair(1))
    case .ik: .knownServer(serverKey: serverStatic.publicKey, clientStatic: hsKeyPair(1))
    case .nk: .anonymous(serverKey: serverStatic.publicKey)
    }
    var client = try InitiatorHandshake(mode: mode)
    var server = ResponderHandshake(staticKey: serverStatic)
    _ = try server.readMessage1(try client.writeMessage1(hello: hsHello(1)))
    let (m2, _) = try server.writeMessage2(hello: hsHello(2))
    return (client, server, m2)
}

@Suite("Handshake randomized inputs")
struct HandshakePropertyTests {
    @Test("property: 1024 random bytes into a stealth server always throw patternNotAllowed, never crash")
    func randomMessage1Stealth() async {
        let serverStatic = hsKeyPair(2)
        await propertyCheck(count: 200, input: Gen.uint8().array(of: 1024)) { bytes in
            var server = ResponderHandshake(staticKey: serverStatic, allowFirstContact: false)
            do throws(USPError) {
                let seen = try server.readMessage1(bytes)
                Issue.record("random bytes accepted as \(seen.pattern)")
            } catch {
                // A random ephemeral is a low-order point with probability about 2^-250.
                #expect(error.code == .patternNotAllowed || error.code == .lowOrderPoint, "\(error)")
            }
            #expect(server.pattern == nil)
        }
    }

    @Test("property: with first contact allowed, 1024 random bytes are an XX message 1")
    func randomMessage1Open() async {
        let serverStatic = hsKeyPair(2)
        await propertyCheck(count: 100, input: Gen.uint8().array(of: 1024)) { bytes in
            var server = ResponderHandshake(staticKey: serverStatic)
            do throws(USPError) {
                #expect(try server.readMessage1(bytes).pattern == .xx)
                #expect(try server.writeMessage2(hello: Hello()).message.count == 160)
            } catch {
                Issue.record("\(error)")
            }
        }
    }

    @Test("property: a message 1 of any other length throws handshakeFailed")
    func randomLengthMessage1() async {
        let serverStatic = hsKeyPair(2)
        await propertyCheck(count: 200, input: Gen.uint8().array(of: 0...2100), Gen.bool) { bytes, stealth in
            guard bytes.count != 1024 else { return }
            var server = ResponderHandshake(staticKey: serverStatic, allowFirstContact: !stealth)
            hsExpect(.handshakeFailed) { () throws(USPError) in _ = try server.readMessage1(bytes) }
        }
    }

    @Test("property: random bytes into readMessage2 throw and leave the client able to finish",
          arguments: HandshakeLayout.Pattern.allCases)
    func randomMessage2(pattern: HandshakeLayout.Pattern) async throws {
        let serverStatic = hsKeyPair(2)
        var (client, _, m2) = try afterMessage1(pattern, server: serverStatic)
        let base = client
        await propertyCheck(count: 200, input: Gen.uint8().array(of: 0...200)) { bytes in
            var c = base
            let error = hsExpectAnyError("\(bytes.count) random bytes") { () throws(USPError) in try c.readMessage2(bytes) }
            if let error {
                let expected: [USPError.Code] = bytes.count == 160
                    ? [.handshakeDecryptFailed, .lowOrderPoint]
                    : [.handshakeFailed]
                #expect(expected.contains(error.code), "\(error)")
            }
            #expect(c.handshakeHash == base.handshakeHash)
        }
        // The same instance the random messages were fed to above was a copy; feed some to the
        // real one too, then the honest message.
        for seed in 0..<20 as Range<UInt64> {
            hsExpectAnyError { () throws(USPError) in try client.readMessage2(HSSeededRandom(seed: seed).bytes(160)) }
        }
        _ = try client.readMessage2(m2)
    }

    @Test("property: corrupting message 2 at random positions always fails", arguments: HandshakeLayout.Pattern.allCases)
    func corruptedMessage2(pattern: HandshakeLayout.Pattern) async throws {
        let (base, _, m2) = try afterMessage1(pattern, server: hsKeyPair(2))
        let edit = zip(Gen.int(in: 0...159), Gen.uint8(in: 1...255))
        await propertyCheck(count: 200, input: edit.array(of: 1...6)) { edits in
            var bad = m2
            for (i, x) in edits { bad[i] ^= x }
            guard bad != m2 else { return }  // two edits cancelled out
            var c = base
            hsExpect(.handshakeDecryptFailed) { () throws(USPError) in _ = try c.readMessage2(bad) }
        }
    }

    @Test("property: random bytes into readMessage3 throw and leave the server able to finish")
    func randomMessage3() async throws {
        let serverStatic = hsKeyPair(2)
        var (client, server, m2) = try afterMessage1(.xx, server: serverStatic)
        _ = try client.readMessage2(m2)
        let (m3, clientResult) = try client.writeMessage3(hello: hsHello(1))
        let base = server
        await propertyCheck(count: 200, input: Gen.uint8().array(of: 128)) { bytes in
            var s = base
            hsExpect(.handshakeDecryptFailed) { () throws(USPError) in _ = try s.readMessage3(bytes) }
        }
        let serverResult = try server.readMessage3(m3)
        #expect(serverResult.handshakeHash == clientResult.handshakeHash)
    }
}
