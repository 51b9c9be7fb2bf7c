import Foundation
import Testing
@testable import USPStore

@Suite("PasswordHash")
struct PasswordHashTests {
    /// Cheap parameters so the suite stays fast; the default ones are exercised in `defaultFormatAndCost`.
    static let cheap = PasswordHash.Parameters(n: 1 << 10, r: 8, p: 1)

    @Test func hashThenVerify() throws {
        let h = try PasswordHash.hash(password: "correct horse", parameters: Self.cheap)
        #expect(try PasswordHash.verify(password: "correct horse", hash: h))
        #expect(try !PasswordHash.verify(password: "correct hors", hash: h))
        #expect(try !PasswordHash.verify(password: "Correct horse", hash: h))
        #expect(try !PasswordHash.verify(password: "", hash: h))
    }

    @Test func defaultFormatAndCost() throws {
        var times: [Double] = []
        var hashes: [String] = []
        for _ in 0..<5 {
            let start = ContinuousClock.now
            hashes.append(try PasswordHash.hash(password: "pw"))
            let d = ContinuousClock.now - start
            times.append(Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18)
        }
        let h = hashes[0]
        let parts = h.split(separator: "$", omittingEmptySubsequences: false)
        #expect(parts.count == 6)
        #expect(Array(parts[0...3]) == ["scrypt", "16384", "8", "1"])
        #expect(Data(base64Encoded: String(parts[4]))?.count == 16)
        #expect(Data(base64Encoded: String(parts[5]))?.count == 32)
        #expect(Set(hashes).count == hashes.count)  // a fresh salt each time
        #expect(try PasswordHash.verify(password: "pw", hash: h))
        #expect(!PasswordHash.needsRehash(h))
        #expect(PasswordHash.needsRehash(try PasswordHash.hash(password: "pw", parameters: Self.cheap)))
        #expect(PasswordHash.needsRehash("garbage"))
        let median = times.sorted()[times.count / 2]
        print("scrypt N=2^14 r=8 p=1: median \(Int(median * 1000)) ms over \(times.count) hashes (\(times.map { Int($0 * 1000) }) ms)")
        #expect(median > 0.005, "N=2^14 r=8 should cost milliseconds, not microseconds: were the parameters applied?")
        #expect(median < 2)
    }

    /// RFC 7914 §12, third vector: scrypt("pleaseletmein", "SodiumChloride", N=16384, r=8, p=1, dkLen=64).
    @Test func rfc7914KnownAnswer() throws {
        let expected = "7023bdcb3afd7348461c06cd81fd38ebfda8fbba904f8e3ea9b543f6545da1f2d5432955613f0fcf62d49705242a9af9e61e85dc0d651e40dfcf017b45575887"
        var dk = Data()
        var hex = Substring(expected)
        while !hex.isEmpty { dk.append(UInt8(hex.prefix(2), radix: 16)!); hex = hex.dropFirst(2) }
        let stored = "scrypt$16384$8$1$\(Data("SodiumChloride".utf8).base64EncodedString())$\(dk.base64EncodedString())"
        #expect(try PasswordHash.verify(password: "pleaseletmein", hash: stored))
        #expect(try !PasswordHash.verify(password: "pleaseletmeim", hash: stored))
        // Our writer produces the same bytes for the same salt (first 32 bytes of the vector).
        let ours = try PasswordHash.hash(password: "pleaseletmein", salt: Array("SodiumChloride".utf8))
        #expect(ours == "scrypt$16384$8$1$\(Data("SodiumChloride".utf8).base64EncodedString())$\(dk.prefix(32).base64EncodedString())")
    }

    @Test func unicodeIsNormalisedToNFC() throws {
        let composed = "caf\u{E9}"       // é as one scalar
        let decomposed = "cafe\u{301}"   // e + combining acute
        #expect(Array(composed.unicodeScalars) != Array(decomposed.unicodeScalars))
        let h = try PasswordHash.hash(password: composed, parameters: Self.cheap)
        #expect(try PasswordHash.verify(password: decomposed, hash: h))
    }

    @Test func emptyPasswordCannotBeHashed() {
        #expect(throws: StoreError(.passwordHash, path: "", "the empty password cannot be hashed")) {
            try PasswordHash.hash(password: "", parameters: Self.cheap)
        }
    }

    @Test func badParametersAreRefusedWhenHashing() {
        #expect(throws: StoreError.self) { try PasswordHash.hash(password: "x", parameters: .init(n: 1000, r: 8, p: 1)) }
        #expect(throws: StoreError.self) { try PasswordHash.hash(password: "x", parameters: .init(n: 1 << 21, r: 8, p: 1)) }
        #expect(throws: StoreError.self) { try PasswordHash.hash(password: "x", salt: [1, 2, 3], parameters: Self.cheap) }
    }

    @Test(arguments: [
        ("", "expected 6 fields scrypt$N$r$p$salt$hash separated by \"$\", got 1"),
        ("scrypt$16384$8$1$c2FsdHNhbHQ=", "expected 6 fields scrypt$N$r$p$salt$hash separated by \"$\", got 5"),
        ("bcrypt$16384$8$1$c2FsdHNhbHQ=$AAAAAAAAAAAAAAAAAAAAAA==", "unknown scheme \"bcrypt\", expected \"scrypt\""),
        ("scrypt$16383$8$1$c2FsdHNhbHQ=$AAAAAAAAAAAAAAAAAAAAAA==", "N must be a power of two from 2 to 2^20, got 16383"),
        ("scrypt$4194304$8$1$c2FsdHNhbHQ=$AAAAAAAAAAAAAAAAAAAAAA==", "N must be a power of two from 2 to 2^20, got 4194304"),
        ("scrypt$1048576$16$1$c2FsdHNhbHQ=$AAAAAAAAAAAAAAAAAAAAAA==", "parameters need 2048 MiB, more than 256 MiB"),
        ("scrypt$16384$0$1$c2FsdHNhbHQ=$AAAAAAAAAAAAAAAAAAAAAA==", "r must be 1…16, got 0"),
        ("scrypt$16384$8$9$c2FsdHNhbHQ=$AAAAAAAAAAAAAAAAAAAAAA==", "p must be 1…4, got 9"),
        ("scrypt$016384$8$1$c2FsdHNhbHQ=$AAAAAAAAAAAAAAAAAAAAAA==", "N is not a decimal number: \"016384\""),
        ("scrypt$-16$8$1$c2FsdHNhbHQ=$AAAAAAAAAAAAAAAAAAAAAA==", "N is not a decimal number: \"-16\""),
        ("scrypt$16384$8$1$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAA==", "salt is not canonical base64"),
        ("scrypt$16384$8$1$c2FsdA==$AAAAAAAAAAAAAAAAAAAAAA==", "salt must be 8…64 bytes, got 4"),
        ("scrypt$16384$8$1$c2FsdHNhbHQ=$AAAA", "hash must be 16…64 bytes, got 3"),
        ("scrypt$16384$8$1$c2FsdHNhbHQ=$!!!!", "hash is not canonical base64"),
    ])
    func malformedHashesAreReported(hash: String, why: String) {
        #expect(throws: StoreError(.passwordHash, path: "", "malformed password hash: \(why)")) {
            try PasswordHash.verify(password: "pw", hash: hash)
        }
    }

    @Test func constantTimeEqual() {
        #expect(PasswordHash.constantTimeEqual([1, 2, 3], [1, 2, 3]))
        #expect(!PasswordHash.constantTimeEqual([1, 2, 3], [1, 2, 4]))
        #expect(!PasswordHash.constantTimeEqual([0, 2, 3], [1, 2, 3]))
        #expect(!PasswordHash.constantTimeEqual([1, 2], [1, 2, 3]))
        #expect(PasswordHash.constantTimeEqual([], []))
    }

    @Test func dummyVerifyIsFalseAndCostsAHash() {
        let start = ContinuousClock.now
        #expect(!PasswordHash.verifyAgainstDummy(password: "anything"))
        #expect(!PasswordHash.verifyAgainstDummy(password: ""))
        #expect(ContinuousClock.now - start > .milliseconds(5))
    }
}
