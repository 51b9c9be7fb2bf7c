import Crypto
import USPCore

/// Checks, before anything is timed, that the pieces the handshake is built on still give the
/// reference results: `SymmetricState.hkdf` against HKDF written out with swift-crypto's `HMAC<SHA256>`
/// (Noise §4.3), over key and input lengths on both sides of the 64-byte block, and that
/// `SystemRandomSource` returns fresh, non-constant bytes of every length asked for.
enum SelfCheck {
    static func referenceHKDF(_ ck: [UInt8], _ ikm: [UInt8], _ outputs: Int) -> [[UInt8]] {
        func mac(_ key: [UInt8], _ data: [UInt8]) -> [UInt8] {
            Array(HMAC<SHA256>.authenticationCode(for: data, using: SymmetricKey(data: key)))
        }
        let temp = mac(ck, ikm)
        let o1 = mac(temp, [1])
        let o2 = mac(temp, o1 + [2])
        return outputs == 2 ? [o1, o2] : [o1, o2, mac(temp, o2 + [3])]
    }

    static func run() {
        var cases = 0
        for keyLength in [0, 1, 31, 32, 33, 63, 64, 65, 100, 128, 200] {
            for inputLength in [0, 1, 32, 55, 56, 63, 64, 65, 119, 120, 200, 1000] {
                for outputs in [2, 3] {
                    let ck = randomBytes(keyLength), ikm = randomBytes(inputLength)
                    let got = SymmetricState.hkdf(chainingKey: ck, input: ikm, outputs: outputs)
                    precondition(got == referenceHKDF(ck, ikm, outputs),
                                 "SymmetricState.hkdf differs from HKDF over HMAC<SHA256> (key \(keyLength), input \(inputLength))")
                    cases += 1
                }
            }
        }
        let rng = SystemRandomSource()
        for length in [1, 7, 8, 9, 32, 255, 256, 257, 992, 4096] {
            let a = rng.bytes(length), b = rng.bytes(length)
            precondition(a.count == length && b.count == length)
            if length >= 8 { precondition(a != b, "SystemRandomSource returned the same \(length) bytes twice") }
        }
        var histogram = [Int](repeating: 0, count: 256)
        for byte in rng.bytes(1 << 16) { histogram[Int(byte)] += 1 }
        // 65536 uniform bytes: 256 expected per value; outside 150...370 is beyond 6 sigma.
        precondition(histogram.allSatisfy { (150...370).contains($0) }, "SystemRandomSource output is not uniform")
        note("self-check: hkdf matches HMAC<SHA256> reference in \(cases) cases; SystemRandomSource ok")
    }
}
