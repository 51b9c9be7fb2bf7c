/// The record layout after the handshake (docs/PROTOCOL.md §4):
///
///     header = ENCRYPT(k, n,   "", uint16_be(L))   2 + 16 bytes
///     body   = ENCRYPT(k, n+1, "", plaintext[L])   L + 16 bytes
///
/// Both are ordinary Noise transport messages under the direction's CipherState, so the length is
/// encrypted and authenticated before the receiver waits for the body, and every byte on the wire
/// is ciphertext. Record i uses nonces 2i and 2i+1.
public enum RecordLayout {
    public static let tagLength = CipherState.tagLength
    public static let headerLength = 2 + tagLength  // 18
    public static let overhead = headerLength + tagLength  // 34
    /// The largest plaintext a record can carry: its body is one Noise message (≤ 65535 bytes).
    public static let maxPlaintext = Hello.maxRecordPlaintext  // 65519
}

/// How a sender pads records to hide their sizes. Padding is zero bytes after the last frame,
/// which the receiver parses as a PADDING frame.
public enum PaddingPolicy: Hashable, Sendable {
    /// No padding.
    case none
    /// Round each record's plaintext up to a multiple of `n` bytes (capped at the peer's maximum).
    case multiple(of: Int)
    /// Make every record's plaintext exactly `n` bytes. DATA is split so no record needs more; a
    /// single larger frame (a big menu) gets a record padded to a multiple of `n`.
    case fixed(Int)

    /// The padded plaintext length for `length` bytes of frames, never above `max`.
    public func paddedLength(_ length: Int, max: Int) -> Int {
        switch self {
        case .none:
            return length
        case .multiple(let n):
            guard n > 1 else { return length }
            if n >= max { return Swift.max(length, max) }
            let rounded = (length + n - 1) / n * n
            return Swift.min(Swift.max(rounded, length), max)
        case .fixed(let n):
            guard n > 0 else { return length }
            if n >= max { return Swift.max(length, max) }
            let rounded = length <= n ? n : (length + n - 1) / n * n
            return Swift.min(Swift.max(rounded, length), max)
        }
    }

    /// The most frame bytes one record may hold under this policy.
    public func frameCapacity(max: Int) -> Int {
        switch self {
        case .none, .multiple: return max
        case .fixed(let n): return Swift.min(n, max)
        }
    }
}
