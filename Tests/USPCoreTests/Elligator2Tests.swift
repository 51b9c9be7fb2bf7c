import CUSPCrypto
import Crypto
import Foundation
import Testing
import USPTestSupport
@testable import USPCore

/// One record of a `.vec` file: its lines without the trailing `:`.
private func vectorRecords(_ relativePath: String) throws -> [[String]] {
    let text = String(decoding: try SharedData.data(relativePath), as: UTF8.self)
    var records: [[String]] = []
    var current: [String] = []
    for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
        if line.isEmpty {
            if !current.isEmpty { records.append(current) }
            current = []
        } else {
            guard line.hasSuffix(":") else { throw SharedData.Missing(description: "\(relativePath): a line without ':': \(line)") }
            current.append(String(line.dropLast()))
        }
    }
    if !current.isEmpty { records.append(current) }
    return records
}

private func observerOnCurve(_ u: [UInt8]) -> Bool { u.withUnsafeBufferPointer { usp_curve25519_is_on_curve($0.baseAddress) == 1 } }
private func observerInPrimeSubgroup(_ u: [UInt8]) -> Bool { u.withUnsafeBufferPointer { usp_curve25519_in_prime_subgroup($0.baseAddress) == 1 } }

@Suite("Elligator 2 (docs/PROTOCOL.md §3.2.2)")
struct Elligator2Tests {
    @Test("the direct map matches the published vectors (representative -> u)")
    func directVectors() throws {
        let records = try vectorRecords("vectors/elligator2/curve25519_direct.vec")
        #expect(records.count >= 256, "the direct-map file has \(records.count) records")
        var passed = 0
        for (i, record) in records.enumerated() {
            try #require(record.count == 3, "record \(i) has \(record.count) lines")
            let representative = SharedData.bytes(hex: record[0])
            let expected = SharedData.bytes(hex: record[1])
            let u = Elligator2.point(from: representative)
            #expect(u == expected, "record \(i): \(record[0])")
            if u == expected { passed += 1 }
        }
        print("Elligator 2 direct map: \(passed)/\(records.count) vectors passed")
    }

    @Test("the inverse map matches the published vectors (u, sign -> representative or none)")
    func inverseVectors() throws {
        let records = try vectorRecords("vectors/elligator2/curve25519_inverse.vec")
        #expect(records.count >= 544, "the inverse-map file has \(records.count) records")
        var passed = 0
        var withRepresentative = 0
        for (i, record) in records.enumerated() {
            try #require(record.count == 4, "record \(i) has \(record.count) lines")
            let u = SharedData.bytes(hex: record[0])
            let sign = SharedData.bytes(hex: record[1])[0]
            let exists = record[2] == "00"
            let got = Elligator2.representative(of: u, tweak: sign)
            if exists {
                withRepresentative += 1
                let expected = SharedData.bytes(hex: record[3])
                #expect(got == expected, "record \(i): u \(record[0]) sign \(record[1])")
                if got == expected { passed += 1 }
            } else {
                #expect(got == nil, "record \(i): u \(record[0]) has no representative")
                if got == nil { passed += 1 }
            }
        }
        print("Elligator 2 inverse map: \(passed)/\(records.count) vectors passed (\(withRepresentative) with a representative)")
    }

    @Test("a representative's two top bits are ignored by the direct map and filled from the tweak")
    func topBits() throws {
        let random = SeededRandom(seed: 11)
        var checked = 0
        while checked < 50 {
            let pair = KeyPair.generate(using: random)
            guard let r = Elligator2.representative(of: pair.publicKey, tweak: 0) else { continue }
            #expect(r[31] & 0xc0 == 0, "a representative fits in 254 bits")
            for top in [UInt8(0x40), 0x80, 0xc0] {
                let tweaked = Elligator2.representative(of: pair.publicKey, tweak: top)
                #expect(tweaked.map { $0[31] & 0xc0 } == top)
                #expect(tweaked.map { Elligator2.point(from: $0) } == pair.publicKey)
            }
            #expect(Elligator2.point(from: r) == pair.publicKey, "map(rev(u)) == u")
            let other = try #require(Elligator2.representative(of: pair.publicKey, tweak: 1))
            #expect(other != r, "the two representatives differ")
            #expect(Elligator2.point(from: other) == pair.publicKey)
            checked += 1
        }
    }

    @Test("the torsion table is the curve's 8-torsion: T1, T3, T5, T7 have order 8, T2, T6 order 4, T4 order 2")
    func torsionTable() throws {
        let clean = KeyPair.generate(using: SeededRandom(seed: 5)).publicKey
        var us: [[UInt8]] = []
        for i in 0..<8 {
            var shifted = [UInt8](repeating: 0, count: 32)
            clean.withUnsafeBufferPointer { p in shifted.withUnsafeMutableBufferPointer { usp_curve25519_add_torsion($0.baseAddress, p.baseAddress, UInt8(i)) } }
            us.append(shifted)
            #expect(observerOnCurve(shifted), "P + T\(i) is on the curve")
            #expect(observerInPrimeSubgroup(shifted) == (i == 0), "P + T\(i) is in the prime-order subgroup only for T0")
        }
        #expect(Set(us.map { SharedData.hex($0) }).count == 8, "the eight shifts are eight different points")
        // The torsion points themselves: u of T_i via P = identity is not expressible, so check orders
        // on the table's u-coordinates by doubling.
        let u8 = SharedData.bytes(hex: "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800")
        u8.withUnsafeBufferPointer { p in
            #expect(usp_curve25519_doubles_to_infinity(p.baseAddress, 3) == 1, "8 T1 = O")
            #expect(usp_curve25519_doubles_to_infinity(p.baseAddress, 2) == 0, "4 T1 != O")
        }
    }

    @Test("a hidden key's shift is invisible to X25519: every DH with it equals the DH with the clean key")
    func hiddenKeysAgree() throws {
        let random = SeededRandom(seed: 99)
        for _ in 0..<40 {
            let mine = KeyPair.generateHidden(using: random)
            let peer = KeyPair.generate(using: random)
            let representative = try #require(mine.representative)
            let decoded = Elligator2.point(from: representative)
            #expect(decoded != mine.publicKey || observerInPrimeSubgroup(decoded), "the decoded point is the shifted one")
            #expect(try X25519.dh(peer, decoded) == X25519.dh(peer, mine.publicKey))
            #expect(try X25519.dh(mine, peer.publicKey) == X25519.dh(peer, decoded))
        }
    }

    @Test("what an observer tests: decoded ephemerals are on the curve only as often as random bytes, and in the prime-order subgroup one time in eight")
    func observerTests() throws {
        let random = SeededRandom(seed: 2026)
        let n = 2000
        var onCurveRaw = 0, onCurveWire = 0, inSubgroup = 0, onCurveRandom = 0
        for _ in 0..<n {
            let pair = KeyPair.generateHidden(using: random)
            let wire = try #require(pair.representative)
            if observerOnCurve(pair.publicKey) { onCurveRaw += 1 }
            // Read the wire bytes as an X25519 key, as an observer who suspects raw keys would.
            if observerOnCurve(wire.prefix(31) + [wire[31] & 0x7f]) { onCurveWire += 1 }
            if observerInPrimeSubgroup(Elligator2.point(from: wire)) { inSubgroup += 1 }
            var bytes = random.bytes(32)
            bytes[31] &= 0x7f
            if observerOnCurve(bytes) { onCurveRandom += 1 }
        }
        print("observer over \(n) hidden ephemerals: raw keys on curve \(onCurveRaw), wire bytes on curve \(onCurveWire), decoded in subgroup \(inSubgroup), random bytes on curve \(onCurveRandom)")
        #expect(onCurveRaw == n, "the test has teeth: raw X25519 keys are always on the curve")
        // Binomial(2000, 1/2): sd ≈ 22; Binomial(2000, 1/8): mean 250, sd ≈ 15. Bounds at ≥ 5 sd.
        #expect((890...1110).contains(onCurveWire), "wire bytes read as u are on the curve \(onCurveWire)/\(n) times")
        #expect((890...1110).contains(onCurveRandom))
        #expect((175...325).contains(inSubgroup), "decoded points are in the prime-order subgroup \(inSubgroup)/\(n) times; clean keys would be \(n)")
    }

    @Test("key generation needs two tries on average, and every accepted key is fresh")
    func triesPerKey() throws {
        let counting = CountingRandom(inner: SeededRandom(seed: 8))
        let keys = 500
        var seen = Set<String>()
        for _ in 0..<keys { seen.insert(SharedData.hex(KeyPair.generateHidden(using: counting).representative!)) }
        let tries = Double(counting.calls) / 2  // each try draws a private key and 2 tweak bytes
        #expect(seen.count == keys)
        #expect((1.7...2.3).contains(tries / Double(keys)), "\(tries / Double(keys)) tries per key")
    }
}

/// Counts `fill` calls of the wrapped source.
private final class CountingRandom: RandomSource, @unchecked Sendable {
    let inner: any RandomSource
    private(set) var calls = 0
    init(inner: any RandomSource) { self.inner = inner }
    func fill(_ buffer: UnsafeMutableRawBufferPointer) {
        calls += 1
        inner.fill(buffer)
    }
}
