import Foundation
import Testing
import USPCore

/// The hand-written base64url against Foundation's base64 (the reference), and its strictness.
@Suite struct Base64URLTests {
    static func reference(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    @Test func matchesFoundationForEveryLengthUpTo100() {
        var generator = SystemRandomNumberGenerator()
        for length in 0...100 {
            for _ in 0..<8 {
                let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
                let text = Base64URL.encode(bytes)
                #expect(text == Self.reference(bytes))
                #expect(Base64URL.decode(text) == bytes)
                #expect(Base64URL.standardUnpadded(bytes) == Data(bytes).base64EncodedString().replacingOccurrences(of: "=", with: ""))
            }
        }
    }

    @Test func knownVectorsFromRFC4648() {
        let vectors: [(String, String)] = [("", ""), ("f", "Zg"), ("fo", "Zm8"), ("foo", "Zm9v"), ("foob", "Zm9vYg"),
                                           ("fooba", "Zm9vYmE"), ("foobar", "Zm9vYmFy")]
        for (plain, encoded) in vectors {
            #expect(Base64URL.encode(Array(plain.utf8)) == encoded)
            #expect(Base64URL.decode(encoded) == Array(plain.utf8))
        }
        #expect(Base64URL.encode([0xFB, 0xFF]) == "-_8")
    }

    @Test(arguments: ["Zg=", "Zm9v=", "Z", "Zm9vY", "Zm+v", "Zm/v", "Zm v", "Zé", "Zh", "Zm9"])
    func refusesNonCanonicalOrForeignText(_ text: String) {
        // Padding, a length of 4n+1, standard-alphabet characters, spaces, non-ASCII, and
        // nonzero unused low bits ("Zh" would be "f" with a stray bit) are all refused.
        #expect(Base64URL.decode(text) == nil)
    }
}
