import Crypto
import USPCore

/// Per-call costs of the pieces a handshake is made of besides X25519, to see what the time above
/// the raw X25519 floor goes to. Medians over runs, in µs per call.
struct Breakdown {
    struct Item {
        let key: String
        let label: String
        let body: (Int) throws -> UInt64
    }

    static func items() -> [Item] {
        let pair = KeyPair.generate(using: SystemRandomSource())
        let peer = KeyPair.generate(using: SystemRandomSource()).publicKey
        let ck = randomBytes(32), ikm = randomBytes(32)
        let key = randomBytes(32)
        let small = randomBytes(32), big = randomBytes(1024)
        let rng = SystemRandomSource()
        return [
            Item(key: "dh_wrapper", label: "X25519.dh (USPCore wrapper: key objects, copies, zero check)") { n in
                try time(n) { UInt64(try X25519.dh(pair, peer)[0]) }
            },
            Item(key: "keypair_generate", label: "KeyPair.generate(using: SystemRandomSource())") { n in
                time(n) { UInt64(KeyPair.generate(using: rng).publicKey[0]) }
            },
            Item(key: "keypair_hidden", label: "KeyPair.generateHidden (Elligator 2 key: ~2 tries, §3.2.2)") { n in
                time(n) { UInt64(KeyPair.generateHidden(using: rng).publicKey[0]) }
            },
            Item(key: "elligator_hide", label: "Elligator2.hide (torsion shift + inverse map, one try)") { n in
                time(n) { UInt64(Elligator2.hide(publicKey: pair.publicKey, torsion: 3, tweak: 0)?[0] ?? 1) }
            },
            Item(key: "elligator_map", label: "Elligator2.point(from:) (decoding a received e)") { n in
                time(n) { UInt64(Elligator2.point(from: small)[0]) }
            },
            Item(key: "random32", label: "SystemRandomSource().bytes(32)") { n in
                time(n) { UInt64(rng.bytes(32)[0]) }
            },
            Item(key: "random992", label: "SystemRandomSource().bytes(992) (XX message 1 filler)") { n in
                time(n) { UInt64(rng.bytes(992)[0]) }
            },
            Item(key: "hmac", label: "HMAC<SHA256> of 33 bytes, swift-crypto generic API") { n in
                time(n) {
                    UInt64(Array(HMAC<SHA256>.authenticationCode(for: ikm + [1], using: SymmetricKey(data: ck)))[0])
                }
            },
            Item(key: "hkdf2", label: "SymmetricState.hkdf, 2 outputs (MixKey, Split)") { n in
                time(n) { UInt64(SymmetricState.hkdf(chainingKey: ck, input: ikm, outputs: 2)[1][0]) }
            },
            Item(key: "mixhash32", label: "SymmetricState.mixHash, 32 bytes") { n in
                var s = SymmetricState(protocolName: "Noise_XX_25519_ChaChaPoly_SHA256")
                return time(n) { s.mixHash(small); return UInt64(s.handshakeHash[0]) }
            },
            Item(key: "mixhash1024", label: "SymmetricState.mixHash, 1024 bytes") { n in
                var s = SymmetricState(protocolName: "Noise_XX_25519_ChaChaPoly_SHA256")
                return time(n) { s.mixHash(big); return UInt64(s.handshakeHash[0]) }
            },
            Item(key: "cipherkey", label: "CipherState(key:) (a BoringSSL EVP_AEAD context per key)") { n in
                try time(n) { UInt64(try CipherState(key: key).nonce) }
            },
            Item(key: "encrypt1k", label: "CipherState.encryptWithAd, 32 B ad, 976 B (message 1 payload)") { n in
                var c = try CipherState(key: key)
                let pt = Array(big[0..<976])
                return try time(n) { UInt64(try c.encryptWithAd(small, pt)[0]) }
            },
        ]
    }

    static func time(_ n: Int, _ op: () throws -> UInt64) rethrows -> UInt64 {
        var acc: UInt64 = 0
        let t0 = nowNanoseconds()
        for _ in 0..<n { acc &+= try op() }
        let t1 = nowNanoseconds()
        consume(acc)
        return t1 - t0
    }
}
