/// Limits and policies of one session, both what this side enforces on what it receives (announced
/// in its hello) and how it sends.
public struct SessionConfiguration: Sendable {
    /// The largest record plaintext accepted (announced as `max_record_plaintext`).
    public var maxRecordPlaintext: Int = RecordLayout.maxPlaintext
    /// Receive window per stream (announced as `stream_window`). 1 MiB, like OpenSSH's 2 MiB
    /// channel window in spirit: credit comes back every 512 KiB, so a fast stream is not paced by
    /// WINDOW round trips. Nothing is allocated for it: it bounds what a peer may have in flight.
    public var streamWindow: UInt32 = 1024 * 1024
    /// Concurrent streams accepted (announced as `max_streams`).
    public var maxStreams: UInt16 = 100
    /// Bytes the peer may send under one key (announced as `rekey_limit`).
    public var rekeyLimit: UInt64 = 1 << 32
    /// Bytes this side sends under one key before it sends REKEY. Must be below the peer's limit.
    public var rekeyAfterBytes: UInt64 = 1 << 30
    /// How this side pads the records it sends: size buckets by default (docs/PROTOCOL.md §4).
    public var padding: PaddingPolicy = .buckets
    /// Ask the peer to pad what it sends.
    public var requestPadding = false
    /// Offer AES-256-GCM for records (`record_ciphers`, docs/PROTOCOL.md §4.2); records use it when
    /// the peer offers it too. By default offered when this CPU runs AES-GCM in hardware, where it
    /// is three to four times as fast as ChaCha20-Poly1305; without the hardware it is slower.
    public var offerAESGCM = CipherFunction.aesGCMHasHardware
    /// Control frames (PING, refused OPEN, RESET) tolerated without progress before `control_flood`.
    public var maxControlFrames = 200

    public init() {}

    func hello(now: Timestamp, flags: Hello.Flags = []) -> Hello {
        var h = Hello()
        h.maxRecordPlaintext = UInt32(maxRecordPlaintext)
        h.streamWindow = streamWindow
        h.maxStreams = maxStreams
        h.rekeyLimit = rekeyLimit
        h.timestamp = now
        h.flags = flags
        if requestPadding { h.flags.insert(.paddingRequested) }
        if offerAESGCM { h.recordCiphers.insert(.aesGCM) }
        return h
    }
}
