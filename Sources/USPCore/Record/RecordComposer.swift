/// Builds outgoing records directly in the outbound buffer, then seals each in place: frame bytes
/// are written once, right where they will be encrypted. The buffer's storage is reused after the
/// I/O shell drains it, so steady-state sending allocates nothing.
public struct RecordComposer: Sendable {
    public private(set) var sealer: RecordSealer
    public private(set) var padding: PaddingPolicy
    /// Sealed records ready for the socket (plus, between calls, the record being built).
    public private(set) var out: WireWriter
    private var openRecordStart: Int?
    private var openRecordHasRekey = false
    /// The least plaintext the open record is padded to (a session message's floor).
    private var openRecordFloor = 0
    /// Frame bytes one record may hold.
    public private(set) var recordCapacity: Int

    public init(sealer: RecordSealer, padding: PaddingPolicy = .none) {
        self.sealer = sealer
        self.padding = padding
        recordCapacity = padding.frameCapacity(max: sealer.maxPlaintext)
        // No up-front reservation: an idle session holds no buffer. The storage grows on first use
        // and is then kept, so steady-state sending allocates nothing.
        out = WireWriter()
    }

    /// Resumes with `pending`, records sealed elsewhere and not yet written (a relay-free hand-off);
    /// they go out before anything sealed here.
    init(sealer: RecordSealer, padding: PaddingPolicy, pending: [UInt8]) {
        self.init(sealer: sealer, padding: padding)
        out.writeBytes(pending)
    }

    /// Bytes of the record being built so far.
    public var openPlaintextCount: Int {
        guard let start = openRecordStart else { return 0 }
        return out.count - start - RecordLayout.headerLength
    }

    /// Room left in the record being built (a whole record's room if none is open).
    public var roomInOpenRecord: Int { recordCapacity - openPlaintextCount }

    /// The largest single frame a record can take (a REKEY frame may need 3 bytes beside it).
    public var maxFrameLength: Int { sealer.maxPlaintext - 3 }

    /// Makes sure a record is open with at least `bytes` of room, sealing the current one if needed.
    /// A frame larger than `recordCapacity` (possible under `.fixed` padding) gets a record of its
    /// own, padded to a multiple of the fixed size. `bytes` must not exceed `maxFrameLength`.
    public mutating func reserve(_ bytes: Int) throws(USPError) {
        precondition(bytes <= maxFrameLength, "a single frame must fit in one record; callers split DATA")
        if openRecordStart != nil, roomInOpenRecord < bytes { try sealOpenRecord() }
        if openRecordStart == nil {
            openRecordStart = out.count
            out.writeZeros(RecordLayout.headerLength)
            if sealer.shouldRekey {
                // REKEY: type 0x09, empty body. The key rotates right after this record is sealed.
                out.writeUInt8(0x09)
                out.writeUInt16(0)
                openRecordHasRekey = true
            }
        }
    }

    /// Forgets the open record if nothing was put in it yet (not even a REKEY frame): a write that
    /// found no bytes to send leaves no empty record behind.
    public mutating func dropOpenRecordIfEmpty() {
        guard let start = openRecordStart, openPlaintextCount == 0, !openRecordHasRekey else { return }
        out.bytes.removeLast(out.count - start)
        openRecordStart = nil
        openRecordFloor = 0
    }

    /// Appends frame bytes produced by `write` into the open record (after `reserve`).
    public mutating func withWriter<R>(_ write: (inout WireWriter) -> R) -> R {
        precondition(openRecordStart != nil, "reserve before writing")
        return write(&out)
    }

    /// Changes the padding policy for the records sealed from now on (the open one included).
    public mutating func setPadding(_ policy: PaddingPolicy) {
        padding = policy
        recordCapacity = policy.frameCapacity(max: sealer.maxPlaintext)
    }

    /// Pads the open record to at least `length` bytes when it is sealed (under `.buckets`).
    public mutating func padAtLeast(_ length: Int) {
        guard padding == .buckets, openRecordStart != nil else { return }
        openRecordFloor = Swift.max(openRecordFloor, Swift.min(length, sealer.maxPlaintext))
    }

    /// Seals the record being built, if any, padding it by policy.
    public mutating func flush() throws(USPError) {
        if openRecordStart != nil { try sealOpenRecord() }
    }

    private mutating func sealOpenRecord() throws(USPError) {
        guard let start = openRecordStart else { return }
        let frames = out.count - start - RecordLayout.headerLength
        let padded = padding.paddedLength(Swift.max(frames, openRecordFloor), max: sealer.maxPlaintext)
        openRecordFloor = 0
        out.writeZeros(padded - frames)
        out.writeZeros(RecordLayout.tagLength)
        var failure: USPError?
        out.bytes.withUnsafeMutableBytes { all in
            do throws(USPError) {
                _ = try sealer.seal(plaintextCount: padded, in: UnsafeMutableRawBufferPointer(rebasing: all[start...]))
            } catch { failure = error }
        }
        openRecordStart = nil
        if let failure { throw failure }
        if openRecordHasRekey {
            openRecordHasRekey = false
            try sealer.rekey()
        }
    }

    /// Whether a record is being built.
    public var hasOpenRecord: Bool { openRecordStart != nil }

    /// Bytes of sealed records in the buffer (the open record, if any, follows them).
    public var sealedByteCount: Int { openRecordStart ?? out.count }

    /// Seals one record of padding only (a cover record: nothing to say this tick). No record may
    /// be open.
    public mutating func sealCover() throws(USPError) {
        precondition(openRecordStart == nil, "seal the open record first")
        try reserve(0)
        try sealOpenRecord()
    }

    /// Hands the first `count` sealed bytes to `body` and drops them; an open record stays open.
    public mutating func drainSealedPrefix<R>(_ count: Int, _ body: (UnsafeRawBufferPointer) -> R) -> R {
        precondition(count <= sealedByteCount, "only sealed bytes can leave")
        let r = out.bytes.withUnsafeBytes { body(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
        out.removeFirst(count)
        if let start = openRecordStart { openRecordStart = start - count }
        return r
    }

    /// Hands the sealed bytes to `body` (e.g. to copy into a socket buffer) and empties the buffer,
    /// keeping its storage. Call only between session calls, when no record is open.
    public mutating func drain<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        precondition(openRecordStart == nil, "drain only between calls: every session call ends with flush()")
        let r = out.bytes.withUnsafeBytes(body)
        out.clear()
        return r
    }

    /// Frees the buffer's storage (for idle sessions). The next record allocates it again.
    public mutating func releaseStorage() {
        precondition(openRecordStart == nil, "release only between calls")
        if out.count == 0 { out = WireWriter() }
    }

    public var pendingByteCount: Int { out.count }

    /// Puts drained bytes back, to go out first (a relay-free hand-off that failed). Only when
    /// nothing is pending and no record is open.
    mutating func requeue(_ sealed: [UInt8]) {
        precondition(openRecordStart == nil && out.count == 0, "requeue only right after a drain")
        out.writeBytes(sealed)
    }
}
