/// Unpadded base64url (RFC 4648 §5), the text form of keys, tokens and proofs on the wire.
///
/// Written out rather than through Foundation's base64 plus character replacement: tokens are
/// encoded and decoded several times per session and this is about 20 times cheaper. Decoding is
/// strict: only the 64 URL-safe characters, no padding, and the unused low bits of the last
/// character must be zero (so every byte string has exactly one text form).
public enum Base64URL {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
    private static let standardAlphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    /// ASCII → 6-bit value, 0xFF for characters outside the URL-safe alphabet.
    private static let values: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (i, c) in alphabet.enumerated() { table[Int(c)] = UInt8(i) }
        return table
    }()

    public static func encode(_ bytes: some Collection<UInt8>) -> String {
        encode(bytes, with: alphabet)
    }

    public static func decode(_ text: some StringProtocol) -> [UInt8]? {
        var utf8 = Array(text.utf8)
        return utf8.withUnsafeMutableBufferPointer { decode($0) }
    }

    private static func decode(_ chars: UnsafeMutableBufferPointer<UInt8>) -> [UInt8]? {
        let rem = chars.count % 4
        if rem == 1 { return nil }
        for i in chars.indices {
            let v = values[Int(chars[i])]
            if v == 0xFF { return nil }
            chars[i] = v
        }
        var out: [UInt8] = []
        out.reserveCapacity(chars.count * 3 / 4)
        var i = 0
        while i + 4 <= chars.count {
            let n = UInt32(chars[i]) << 18 | UInt32(chars[i + 1]) << 12 | UInt32(chars[i + 2]) << 6 | UInt32(chars[i + 3])
            out.append(UInt8(truncatingIfNeeded: n >> 16))
            out.append(UInt8(truncatingIfNeeded: n >> 8))
            out.append(UInt8(truncatingIfNeeded: n))
            i += 4
        }
        if rem == 2 {
            guard chars[i + 1] & 0x0F == 0 else { return nil }
            out.append(chars[i] << 2 | chars[i + 1] >> 4)
        } else if rem == 3 {
            guard chars[i + 2] & 0x03 == 0 else { return nil }
            out.append(chars[i] << 2 | chars[i + 1] >> 4)
            out.append(chars[i + 1] << 4 | chars[i + 2] >> 2)
        }
        return out
    }

    private static func encode(_ bytes: some Collection<UInt8>, with table: [UInt8]) -> String {
        let input = Array(bytes)
        let length = (input.count * 4 + 2) / 3
        return String(unsafeUninitializedCapacity: length) { out in
            var o = 0
            var i = 0
            while i + 3 <= input.count {
                let n = UInt32(input[i]) << 16 | UInt32(input[i + 1]) << 8 | UInt32(input[i + 2])
                out[o] = table[Int(n >> 18 & 63)]
                out[o + 1] = table[Int(n >> 12 & 63)]
                out[o + 2] = table[Int(n >> 6 & 63)]
                out[o + 3] = table[Int(n & 63)]
                o += 4
                i += 3
            }
            let left = input.count - i
            if left == 1 {
                let n = UInt32(input[i]) << 16
                out[o] = table[Int(n >> 18 & 63)]
                out[o + 1] = table[Int(n >> 12 & 63)]
                o += 2
            } else if left == 2 {
                let n = UInt32(input[i]) << 16 | UInt32(input[i + 1]) << 8
                out[o] = table[Int(n >> 18 & 63)]
                out[o + 1] = table[Int(n >> 12 & 63)]
                out[o + 2] = table[Int(n >> 6 & 63)]
                o += 3
            }
            return o
        }
    }
}

extension Base64URL {
    /// Standard base64 without padding (OpenSSH fingerprint form).
    public static func standardUnpadded(_ bytes: some Collection<UInt8>) -> String {
        encode(bytes, with: standardAlphabet)
    }
}
