import CUSPCrypto

/// Everything the server side of a dedicated connection needs to go on in another process after a
/// relay-free hand-off (docs/PROTOCOL.md §14): both directions' transport keys and nonces, rekey
/// counters and limits, record sizes, padding, the one stream's ids, credit and half-close flags,
/// and the bytes in flight: ciphertext read from the socket but not yet opened, application bytes
/// opened but not yet delivered, and sealed records not yet written.
///
/// `ServerSession.beginHandoff` makes one; `DedicatedStreamSession(resuming:)` continues from it.
/// `encoded()` / `init(encoded:)` are the versioned binary form that travels to the application;
/// the layout is in docs/PROTOCOL.md §14.3. It holds live keys: zero the encoding once sent
/// (`DedicatedStreamSnapshot.zeroize`).
public struct DedicatedStreamSnapshot: Sendable, Equatable {
    /// "USPS": a relay-free snapshot.
    public static let magic: [UInt8] = [0x55, 0x53, 0x50, 0x53]
    /// Version 2 adds the records' cipher function; version 1 (ChaChaPoly) is still read.
    public static let version: UInt8 = 2

    /// One direction of the transport: a Noise CipherState (key and nonce) and the record layer's
    /// counters. For the sending direction `rekeyBytes` is "send REKEY after this many bytes"; for
    /// the receiving direction it is the limit the peer must rekey before.
    public struct Direction: Sendable, Equatable {
        public var key: [UInt8]
        public var nonce: UInt64
        public var maxPlaintext: Int
        public var rekeyBytes: UInt64
        public var bytesSinceRekey: UInt64
        public var records: UInt64
    }

    public var serverSessionID: String
    /// The records' cipher function, both directions (docs/PROTOCOL.md §4.2).
    public var cipher: CipherFunction
    public var send: Direction
    public var receive: Direction
    public var padding: PaddingPolicy
    /// Set when the header of the next inbound record was already opened: `unreadInput` starts
    /// with that record's body (plaintext length this many bytes, then its tag).
    public var pendingBodyLength: Int?
    /// This side's stream limits (its receive window is `limits.initialWindow`).
    public var limits: StreamLimits
    public var peerInitialWindow: Int
    public var controlFramesSinceProgress: Int
    /// The last stream id this side allocated and the highest the client used (frames for ids at or
    /// below them but not live are ignored, above them are `unknown_stream`).
    public var lastLocalID: UInt32
    public var highestPeerID: UInt32
    /// The dedicated stream.
    public var stream: StreamState
    /// Bytes read from the socket but not yet opened as records.
    public var unreadInput: [UInt8]
    /// Application bytes from the client, opened but not yet given to the application (exactly
    /// `stream.buffered` bytes: the application takes them first and returns their credit).
    public var undeliveredData: [UInt8]
    /// Sealed records not yet written to the socket; they go out before anything else.
    public var unwrittenOutput: [UInt8]

    init(serverSessionID: String, cipher: CipherFunction, send: Direction, receive: Direction, padding: PaddingPolicy, pendingBodyLength: Int?,
         limits: StreamLimits, peerInitialWindow: Int, controlFramesSinceProgress: Int, lastLocalID: UInt32, highestPeerID: UInt32,
         stream: StreamState, unreadInput: [UInt8], undeliveredData: [UInt8], unwrittenOutput: [UInt8]) {
        self.serverSessionID = serverSessionID
        self.cipher = cipher
        self.send = send
        self.receive = receive
        self.padding = padding
        self.pendingBodyLength = pendingBodyLength
        self.limits = limits
        self.peerInitialWindow = peerInitialWindow
        self.controlFramesSinceProgress = controlFramesSinceProgress
        self.lastLocalID = lastLocalID
        self.highestPeerID = highestPeerID
        self.stream = stream
        self.unreadInput = unreadInput
        self.undeliveredData = undeliveredData
        self.unwrittenOutput = unwrittenOutput
    }

    /// Overwrites the keys in this value (its copies elsewhere are the caller's to drop).
    public mutating func zeroize() {
        Self.zeroize(&send.key)
        Self.zeroize(&receive.key)
    }

    /// Overwrites `bytes` (an encoded snapshot once sent) in a way the compiler keeps.
    public static func zeroize(_ bytes: inout [UInt8]) {
        bytes.withUnsafeMutableBytes { usp_secure_zero($0.baseAddress, $0.count) }
    }

    // MARK: - Binary form

    /// The binary form (docs/PROTOCOL.md §14.3).
    public func encoded() -> [UInt8] {
        var w = WireWriter()
        w.writeBytes(Self.magic)
        w.writeUInt8(Self.version)
        w.writeUInt8(cipher.rawValue)
        let id = Array(serverSessionID.utf8.prefix(255))
        w.writeUInt8(UInt8(id.count))
        w.writeBytes(id)
        Self.write(send, into: &w)
        switch padding {
        case .none: w.writeUInt8(0); w.writeUInt32(0)
        case .multiple(let n): w.writeUInt8(1); w.writeUInt32(UInt32(clamping: n))
        case .fixed(let n): w.writeUInt8(2); w.writeUInt32(UInt32(clamping: n))
        case .buckets: w.writeUInt8(3); w.writeUInt32(0)
        }
        Self.write(receive, into: &w)
        w.writeUInt32(UInt32(pendingBodyLength ?? 0))
        for value in [limits.maxStreams, limits.initialWindow, peerInitialWindow, limits.maxControlFrames, controlFramesSinceProgress] {
            w.writeUInt32(UInt32(clamping: value))
        }
        w.writeUInt32(lastLocalID)
        w.writeUInt32(highestPeerID)
        w.writeUInt32(stream.localID)
        w.writeUInt32(stream.peerID ?? 0)
        w.writeUInt8((stream.localFinished ? 1 : 0) | (stream.peerFinished ? 2 : 0))
        for value in [stream.sendCredit, stream.receiveCredit, stream.buffered, stream.unannounced] {
            w.writeUInt32(UInt32(clamping: value))
        }
        for section in [unreadInput, undeliveredData, unwrittenOutput] {
            w.writeUInt32(UInt32(section.count))
            w.writeBytes(section)
        }
        return w.bytes
    }

    private static func write(_ d: Direction, into w: inout WireWriter) {
        w.writeBytes(d.key)
        w.writeUInt64(d.nonce)
        w.writeUInt32(UInt32(d.maxPlaintext))
        w.writeUInt64(d.rekeyBytes)
        w.writeUInt64(d.bytesSinceRekey)
        w.writeUInt64(d.records)
    }

    /// Parses and checks the binary form. Every problem is `malformed_message` with a detail naming
    /// the field ("relay-free snapshot: …").
    public init(encoded bytes: [UInt8]) throws(USPError) {
        self = try withBytes(bytes) { (b) throws(USPError) in try Self.decode(b) }
    }

    private static func fail(_ detail: String) -> USPError {
        USPError(.malformedMessage, "relay-free snapshot: \(detail)")
    }

    private static func decode(_ buffer: UnsafeRawBufferPointer) throws(USPError) -> DedicatedStreamSnapshot {
        var r = WireReader(buffer, shortCode: .malformedMessage, context: "relay-free snapshot")
        guard Array(try r.readSlice(4, "magic")) == magic else { throw fail("does not start with \"USPS\"") }
        let version = try r.readUInt8("version")
        guard version == 1 || version == Self.version else { throw fail("version \(version), this side reads 1 and \(Self.version)") }
        var cipher = CipherFunction.chaChaPoly
        if version >= 2 {
            let raw = try r.readUInt8("cipher")
            guard let c = CipherFunction(rawValue: raw) else { throw fail("cipher \(raw) is not 0 (ChaChaPoly) or 1 (AESGCM)") }
            cipher = c
        }
        let idLength = Int(try r.readUInt8("server_session_id length"))
        let id = String(decoding: try r.readSlice(idLength, "server_session_id"), as: UTF8.self)
        let send = try readDirection(&r, "send")
        let paddingKind = try r.readUInt8("padding kind")
        let paddingValue = Int(try r.readUInt32("padding size"))
        let padding: PaddingPolicy
        switch paddingKind {
        case 0: padding = .none
        case 1: padding = .multiple(of: paddingValue)
        case 2:
            // A fixed size below the smallest record a peer must accept leaves DATA no room (the
            // composer's arithmetic assumes room for a frame header and a byte).
            guard (Hello.minRecordPlaintext...RecordLayout.maxPlaintext).contains(paddingValue) else {
                throw fail("fixed padding \(paddingValue) outside \(Hello.minRecordPlaintext)…\(RecordLayout.maxPlaintext)")
            }
            padding = .fixed(paddingValue)
        case 3: padding = .buckets
        default: throw fail("padding kind \(paddingKind) is not 0, 1, 2 or 3")
        }
        let receive = try readDirection(&r, "receive")
        // The opener never lets the peer past its limit (and adds to the count without wrapping).
        guard receive.bytesSinceRekey <= receive.rekeyBytes else {
            throw fail("receive bytes_since_rekey \(receive.bytesSinceRekey) above its rekey limit \(receive.rekeyBytes)")
        }
        let pending = Int(try r.readUInt32("pending_body_length"))
        guard pending <= receive.maxPlaintext else { throw fail("pending_body_length \(pending) above max_plaintext \(receive.maxPlaintext)") }
        // Record i uses nonces 2i and 2i+1: odd only between a record's opened header and its body.
        guard send.nonce % 2 == 0, receive.nonce % 2 == (pending == 0 ? 0 : 1) else {
            throw fail("nonces \(send.nonce)/\(receive.nonce) do not match record boundaries (pending_body_length \(pending))")
        }
        let maxStreams = Int(try r.readUInt32("max_streams"))
        let localWindow = Int(try r.readUInt32("local_window"))
        let peerWindow = Int(try r.readUInt32("peer_window"))
        let maxControl = Int(try r.readUInt32("max_control_frames"))
        let controlSince = Int(try r.readUInt32("control_frames_since_progress"))
        let limits = StreamLimits(maxStreams: maxStreams, initialWindow: localWindow, maxControlFrames: maxControl)
        guard limits.isValid else { throw fail("stream limits out of range: \(limits)") }
        guard StreamLimits.initialWindowRange.contains(peerWindow) else { throw fail("peer_window \(peerWindow) out of range") }
        let lastLocal = try r.readUInt32("last_local_id")
        let highestPeer = try r.readUInt32("highest_peer_id")
        let localID = try r.readUInt32("stream local_id")
        let peerID = try r.readUInt32("stream peer_id")
        guard localID >= 1, localID <= lastLocal, peerID >= 1, peerID <= highestPeer else {
            throw fail("stream ids \(localID)/\(peerID) outside 1…\(lastLocal)/1…\(highestPeer)")
        }
        let flags = try r.readUInt8("stream flags")
        guard flags & ~3 == 0 else { throw fail("stream flags \(flags) has unknown bits") }
        var stream = StreamState(localID: localID, peerID: peerID, phase: .open,
                                 sendCredit: Int(try r.readUInt32("send_credit")), receiveCredit: Int(try r.readUInt32("receive_credit")))
        stream.buffered = Int(try r.readUInt32("buffered"))
        stream.unannounced = Int(try r.readUInt32("unannounced"))
        stream.localFinished = flags & 1 != 0
        stream.peerFinished = flags & 2 != 0
        guard stream.sendCredit <= StreamLimits.maxWindow else { throw fail("send_credit \(stream.sendCredit) above 2^31-1") }
        guard stream.receiveCredit + stream.buffered + stream.unannounced == localWindow else {
            throw fail("receive_credit + buffered + unannounced is not local_window \(localWindow)")
        }
        var sections: [[UInt8]] = []
        for name in ["unread_input", "undelivered_data", "unwritten_output"] {
            let n = Int(try r.readUInt32("\(name) length"))
            sections.append(Array(try r.readSlice(n, name)))
        }
        guard r.isAtEnd else { throw fail("\(r.remaining) bytes after unwritten_output") }
        guard sections[1].count == stream.buffered else {
            throw fail("undelivered_data has \(sections[1].count) bytes, buffered says \(stream.buffered)")
        }
        return DedicatedStreamSnapshot(
            serverSessionID: id, cipher: cipher, send: send, receive: receive, padding: padding, pendingBodyLength: pending == 0 ? nil : pending,
            limits: limits, peerInitialWindow: peerWindow, controlFramesSinceProgress: controlSince,
            lastLocalID: lastLocal, highestPeerID: highestPeer, stream: stream,
            unreadInput: sections[0], undeliveredData: sections[1], unwrittenOutput: sections[2])
    }

    private static func readDirection(_ r: inout WireReader, _ name: String) throws(USPError) -> Direction {
        let key = Array(try r.readSlice(32, "\(name) key"))
        let nonce = try r.readUInt64("\(name) nonce")
        let maxPlaintext = Int(try r.readUInt32("\(name) max_plaintext"))
        // The bounds a hello allows (Hello.validate): below them a record cannot hold a DATA frame.
        guard (Hello.minRecordPlaintext...RecordLayout.maxPlaintext).contains(maxPlaintext) else {
            throw fail("\(name) max_plaintext \(maxPlaintext) outside \(Hello.minRecordPlaintext)…\(RecordLayout.maxPlaintext)")
        }
        guard nonce < UInt64.max - 1 else { throw fail("\(name) nonce \(nonce) is exhausted") }
        return Direction(key: key, nonce: nonce, maxPlaintext: maxPlaintext, rekeyBytes: try r.readUInt64("\(name) rekey bytes"),
                         bytesSinceRekey: try r.readUInt64("\(name) bytes_since_rekey"), records: try r.readUInt64("\(name) records"))
    }
}
