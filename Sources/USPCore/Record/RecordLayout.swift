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
    /// The default (docs/PROTOCOL.md §4): round each record's plaintext up to the next of
    /// `bucketSizes` (the peer's maximum above the last one), so records come in eleven sizes; a
    /// record holding a session message is at least `messageFloor`, so every login, every login
    /// reply and every short reply has one size. DATA is split at bucket sizes rather than padded
    /// across one (see `dataChunk`), which keeps bulk transfers within a few percent.
    case buckets

    /// Powers of two plus 32: room for the frame header (7 bytes) and a REKEY frame (3) beside a
    /// payload of a power of two, so a 4 KiB or 16 KiB write, as programs make them, fills one
    /// record instead of spilling a few bytes into another.
    public static let bucketSizes = [96, 160, 288, 544, 1056, 2080, 4128, 8224, 16416, 32800]
    public static let messageFloor = 1056

    /// The smallest bucket that holds `length`, or `max`.
    static func bucket(holding length: Int, max: Int) -> Int {
        for b in bucketSizes where b >= length { return Swift.min(b, max) }
        return max
    }

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
        case .buckets:
            return Swift.max(Self.bucket(holding: length, max: max), Swift.min(length, max))
        }
    }

    /// How many of `available` data bytes to put in the open record, which holds `open` bytes of
    /// frames and has room for `room` more data bytes after a DATA header of `header` bytes. Under
    /// `.buckets` a record that would spill over a bucket is cut at that bucket when the spill's
    /// own record (its bucket, tag and header) costs fewer bytes than padding to the next bucket:
    /// the rest opens the next record. The other policies take all that fits.
    public func dataChunk(open: Int, header: Int, available: Int, room: Int, max: Int) -> Int {
        let n = Swift.min(available, room)
        guard case .buckets = self, n > 0 else { return n }
        let frames = open + header + n
        let padded = Self.bucket(holding: frames, max: max)
        // A cut costs at least one more record's overhead and DATA header: with no more padding
        // than that at stake it never pays (the common case of a power-of-two write ends here).
        guard padded - frames > header + RecordLayout.overhead else { return n }
        // The largest bucket below, if it still leaves this record a data byte.
        guard let lower = Self.bucketSizes.last(where: { $0 < frames && $0 > open + header }) else { return n }
        // Wire bytes either way: this record padded to the next bucket, or cut at the lower one
        // plus the best the spill can do in records of its own (cut again the same way).
        let cut = lower + RecordLayout.overhead + Self.wireCost(frames: frames - lower + header, header: header, max: max)
        return cut < padded + RecordLayout.overhead ? lower - open - header : n
    }

    /// The fewest wire bytes that `frames` bytes of one DATA frame (its header included) take in
    /// bucket records, cut at buckets where that is cheaper. At most eleven levels deep.
    static func wireCost(frames: Int, header: Int, max: Int) -> Int {
        let whole = bucket(holding: frames, max: max) + RecordLayout.overhead
        guard frames > header + 1, let lower = bucketSizes.last(where: { $0 < frames && $0 > header }) else { return whole }
        return Swift.min(whole, lower + RecordLayout.overhead + wireCost(frames: frames - lower + header, header: header, max: max))
    }

    /// The most frame bytes one record may hold under this policy.
    public func frameCapacity(max: Int) -> Int {
        switch self {
        case .none, .multiple, .buckets: return max
        case .fixed(let n): return Swift.min(n, max)
        }
    }
}
