import PropertyBased
import Testing
import USPCore

/// Randomized checks: valid messages round-trip, and arbitrary or mutated bytes give a
/// `USPError` (or, when a mutation happens to stay valid, a message that is stable under
/// re-encoding) — never a crash.
@Suite struct MessagePropertyTests {
    /// Whatever decodes must re-encode, and the re-encoding must decode to the same message
    /// and encode to the same bytes.
    static func expectStable(_ bytes: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) -> Bool {
        let decoded: SessionMessage
        do {
            decoded = try SessionMessage.decode(bytes)
        } catch {
            #expect(!error.detail.isEmpty, sourceLocation: sourceLocation)
            #expect(!error.detail.contains("\n"), "\(error.detail)", sourceLocation: sourceLocation)
            #expect([.malformedMessage, .unsupportedVersion, .messageTooLarge].contains(error.code),
                    sourceLocation: sourceLocation)
            return false
        }
        do {
            let encoded = try decoded.encode()
            let again = try SessionMessage.decode(encoded)
            #expect(again == decoded, sourceLocation: sourceLocation)
            #expect(try again.encode() == encoded, sourceLocation: sourceLocation)
        } catch {
            Issue.record("decoded \(decoded) but re-encoding failed: \(error)", sourceLocation: sourceLocation)
        }
        return true
    }

    @Test func randomValidMessagesRoundTrip() async {
        await propertyCheck(count: 3000, input: generator { rng in MessageGen.message(&rng) }) { message in
            do {
                let bytes = try message.encode()
                #expect(bytes.first == message.kind.rawValue)
                #expect(bytes.count <= SessionMessage.Limits.maxEncodedSize)
                let decoded = try SessionMessage.decode(bytes)
                #expect(decoded == message)
                #expect(try decoded.encode() == bytes)
            } catch {
                Issue.record("\(error) for \(message)")
            }
        }
    }

    @Test func randomJSONValuesRoundTrip() async {
        await propertyCheck(count: 3000, input: generator { rng in MessageGen.json(depth: 5, &rng) }) { value in
            do {
                let text = try value.encoded()
                #expect(try JSONValue.parse(text) == value)
                #expect(try JSONValue.parse(text).encoded() == text)
            } catch {
                Issue.record("\(error) for \(value)")
            }
        }
    }

    @Test func randomBytesGiveErrors() async {
        await propertyCheck(count: 5000, input: Gen.uint8().array(of: 0...300)) { bytes in
            #expect(throws: USPError.self) { try SessionMessage.decode(bytes) }
        }
    }

    /// Random bytes behind a valid kind byte and an opening brace, to get past the first checks.
    @Test func randomBodiesGiveErrorsOrStableMessages() async {
        let input = zip(Gen.uint8(in: 1...6), Gen.uint8().array(of: 0...200))
        await propertyCheck(count: 5000, input: input) { kind, tail in
            _ = Self.expectStable([kind, UInt8(ascii: "{")] + tail)
        }
    }

    /// Random sequences of JSON fragments: syntactically plausible soup.
    @Test func jsonSoupGivesErrorsOrStableMessages() async {
        let input = generator { rng -> [UInt8] in
            var b: [UInt8] = [UInt8.random(in: 0...7, using: &rng), UInt8(ascii: "{")]
            for _ in 0..<Int.random(in: 0...40, using: &rng) {
                b += Array(MessageGen.fragments.randomElement(using: &rng)!.utf8)
            }
            return b
        }
        await propertyCheck(count: 5000, input: input) { bytes in
            _ = Self.expectStable(bytes)
        }
    }

    @Test func byteMutationsOfValidMessagesGiveErrorsOrStableMessages() async {
        let input = generator { rng -> [UInt8] in
            let valid = try! MessageGen.message(&rng).encode()
            return MessageGen.mutateBytes(valid, &rng)
        }
        await propertyCheck(count: 6000, input: input) { bytes in
            _ = Self.expectStable(bytes)
        }
    }

    @Test func structuralMutationsOfValidMessagesGiveErrorsOrStableMessages() async {
        let input = generator { rng -> [UInt8] in
            let message = MessageGen.message(&rng)
            let mutated = MessageGen.mutateJSON(try! message.jsonValue(), &rng)
            return [message.kind.rawValue] + ((try? mutated.encoded()) ?? [])
        }
        await propertyCheck(count: 6000, input: input) { bytes in
            _ = Self.expectStable(bytes)
        }
    }

    @Test func serviceIndexKeysRoundTrip() async {
        await propertyCheck(count: 2000, input: Gen.uint32()) { n in
            let index = ServiceIndex(n)
            #expect(ServiceIndex(key: index.key) == index)
            #expect(ServiceIndex(key: "0" + index.key) == nil)
            #expect(ServiceIndex(key: index.key + "0") == (n <= UInt32.max / 10 ? ServiceIndex(n * 10) : nil))
        }
    }

    @Test func randomSpecsAndBodiesNeverTrap() async {
        let input = generator { rng -> ([String: String], [String: JSONValue]) in
            (MessageGen.spec(&rng), MessageGen.jsonObject(depth: 2, &rng))
        }
        await propertyCheck(count: 2000, input: input) { spec, body in
            if let e = RequestBodyValidator.validate(body, against: spec) {
                #expect(e.code == .invalidRequestBody)
                #expect(!e.detail.contains("\n"))
            }
        }
    }
}
