/// Allocation-free UTF-8 validation (RFC 3629: no overlong forms, no surrogates, ≤ U+10FFFF).
enum UTF8Validation {
    /// The offset of the first byte that does not start a valid sequence, or nil if all is valid.
    static func firstInvalidOffset(_ bytes: UnsafeRawBufferPointer) -> Int? {
        let n = bytes.count
        var i = 0
        while i < n {
            let b0 = bytes[i]
            if b0 < 0x80 { i += 1; continue }
            let need: Int
            var lo: UInt8 = 0x80
            var hi: UInt8 = 0xBF
            switch b0 {
            case 0xC2...0xDF: need = 1
            case 0xE0: need = 2; lo = 0xA0
            case 0xE1...0xEC, 0xEE...0xEF: need = 2
            case 0xED: need = 2; hi = 0x9F
            case 0xF0: need = 3; lo = 0x90
            case 0xF1...0xF3: need = 3
            case 0xF4: need = 3; hi = 0x8F
            default: return i
            }
            guard n - i > need else { return i }
            let b1 = bytes[i + 1]
            guard b1 >= lo, b1 <= hi else { return i }
            var k = 2
            while k <= need {
                guard bytes[i + k] & 0xC0 == 0x80 else { return i }
                k += 1
            }
            i += need + 1
        }
        return nil
    }
}
