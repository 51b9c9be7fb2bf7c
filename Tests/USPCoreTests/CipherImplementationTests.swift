import Crypto
import Foundation
import Glibc
import Testing
@testable import USPCore

/// `CipherState` seals short records with BoringSSL (built in) and long ones with the system's
/// OpenSSL (loaded on the first long record), falling back to BoringSSL. Whatever it picks, the
/// result must be RFC 8439 ChaCha20-Poly1305 with Noise's nonce: checked here against swift-crypto's
/// `ChaChaPoly`, at lengths on both sides of the switch, both ways, with a wrong tag refused.
@Suite struct CipherImplementationTests {
    static let lengths = [0, 1, 15, 64, 1000, 2047, 2048, 2049, 4096, 16384, 65535, 1 << 20]

    static func noiseNonce(_ n: UInt64) throws -> ChaChaPoly.Nonce {
        var bytes = [UInt8](repeating: 0, count: 4)
        for i in 0..<8 { bytes.append(UInt8(truncatingIfNeeded: n >> (8 * UInt64(i)))) }
        return try ChaChaPoly.Nonce(data: bytes)
    }

    @Test(arguments: lengths) func sealMatchesTheReference(_ length: Int) throws {
        let key = (0..<32).map { UInt8($0 &* 7 &+ 1) }
        let ad = Array("header".utf8)
        var cipher = try CipherState(key: key)
        var decipher = try CipherState(key: key)
        var generator = SystemRandomNumberGenerator()
        for n in 0..<3 {
            let plaintext = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let sealed = try cipher.encryptWithAd(ad, plaintext)
            let reference = try ChaChaPoly.seal(plaintext, using: SymmetricKey(data: key), nonce: Self.noiseNonce(UInt64(n)), authenticating: ad)
            #expect(sealed == Array(reference.ciphertext) + Array(reference.tag), "length \(length), nonce \(n)")
            // The reference's ciphertext opens here too, and a flipped tag bit does not.
            var tampered = sealed
            tampered[tampered.count - 1] ^= 1
            var probe = decipher
            #expect(throws: NoiseError.self) { try probe.decryptWithAd(ad, tampered) }
            #expect(try decipher.decryptWithAd(ad, Array(reference.ciphertext) + Array(reference.tag)) == plaintext)
        }
    }

    @Test func aLongRecordLoadsTheSystemLibcryptoWhenThereIsOne() throws {
        var cipher = try CipherState(key: [UInt8](repeating: 9, count: 32))
        _ = try cipher.encryptWithAd([], [UInt8](repeating: 1, count: 16))
        // RTLD_NOLOAD: a handle only if the library is loaded already.
        let loaded = { dlopen("libcrypto.so.3", RTLD_NOLOAD | RTLD_LAZY).map { dlclose($0); return true } ?? false }
        let present = ["/usr/lib/x86_64-linux-gnu/libcrypto.so.3", "/lib/x86_64-linux-gnu/libcrypto.so.3", "/usr/lib/aarch64-linux-gnu/libcrypto.so.3"]
            .contains { FileManager.default.fileExists(atPath: $0) }
        _ = try cipher.encryptWithAd([], [UInt8](repeating: 1, count: 16384))
        if present {
            #expect(loaded(), "a 16 KiB record did not load the system libcrypto")
        } else {
            print("SKIP: no libcrypto.so.3 on this system; BoringSSL seals every record")
        }
    }
}
