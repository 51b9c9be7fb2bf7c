/// The transport half of a session once the handshake is done: the record reader and composer and
/// the stream table. Client and server sessions both drive one; it knows nothing of USP policy.
struct SessionLink: Sendable {
    /// Optional so a session can take it out while frames are dispatched (no copy of its buffer).
    var reader: RecordReader?
    var composer: RecordComposer
    var streams: StreamTable
    /// The last handshake message, until the shell drains it: it goes out before any record.
    var unsentHandshake: [UInt8] = []
    /// Traffic shaping, while a profile is on (SessionLink+Shaping.swift).
    var shaping: LinkShaping?
    /// The peer's limit on DATA payload per frame, from its record size.
    var maxDataPerFrame: Int { composer.recordCapacity - Frame.dataHeaderLength }

    init(reader: RecordReader, composer: RecordComposer, streams: StreamTable) {
        self.reader = reader
        self.composer = composer
        self.streams = streams
    }

    init(result: HandshakeResult, configuration: SessionConfiguration, role: StreamTable.Role,
         unsentHandshake: [UInt8] = []) throws(USPError) {
        self.unsentHandshake = unsentHandshake
        let peer = result.peerHello
        let sealer = RecordSealer(cipher: result.transport.send, maxPlaintext: Int(peer.maxRecordPlaintext),
                                  rekeyAfterBytes: min(configuration.rekeyAfterBytes, peer.rekeyLimit / 2))
        let opener = RecordOpener(cipher: result.transport.receive, maxPlaintext: Int(result.localHello.maxRecordPlaintext),
                                  rekeyLimit: result.localHello.rekeyLimit)
        reader = RecordReader(opener: opener)
        var padding = configuration.padding
        if padding == .none, peer.flags.contains(.paddingRequested) { padding = .multiple(of: 256) }
        composer = RecordComposer(sealer: sealer, padding: padding)
        // Each side limits what it holds by its own max_streams. The server's figure is announced so
        // a client can stay below it; a client that does not gets REJECT stream_limit (§7.1).
        let limits = StreamLimits(maxStreams: Int(result.localHello.maxStreams),
                                  initialWindow: Int(result.localHello.streamWindow),
                                  maxControlFrames: configuration.maxControlFrames)
        streams = try StreamTable(role: role, limits: limits, peerInitialWindow: Int(peer.streamWindow))
    }

    /// Appends one control or message frame, starting a new record if it does not fit.
    mutating func send(_ frame: Frame) throws(USPError) {
        let length = frame.encodedLength
        guard length <= composer.maxFrameLength else {
            throw USPError(.messageTooLarge, "\(frame.type.name) frame of \(length) bytes exceeds the peer's record size \(composer.maxFrameLength)")
        }
        try composer.reserve(length)
        composer.withWriter { frame.encode(into: &$0) }
    }

    /// Sends a session message in a MESSAGE frame.
    mutating func send(_ message: SessionMessage) throws(USPError) {
        var w = WireWriter()
        try message.encode(into: &w)
        let json = Array(w.bytes.dropFirst())
        try send(Frame.message(kind: message.kind.rawValue, json: json))
        // One size for every short message: a login, a refusal and a grant look alike.
        composer.padAtLeast(PaddingPolicy.messageFloor)
    }

    /// Sends up to the stream's credit from `data` as DATA frames under `localID`; returns bytes taken.
    mutating func sendData(localID: UInt32, _ data: UnsafeRawBufferPointer) throws(USPError) -> Int {
        var offset = 0
        return try sendData(localID: localID, upTo: data.count) { buffer in
            // Each call offers exactly the next chunk, never more than what is left of `data`.
            buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: data[offset..<offset + buffer.count]))
            offset += buffer.count
            return buffer.count
        }
    }

    /// Sends up to the stream's credit and `limit` bytes that `fill` writes in place, one DATA frame
    /// at a time (see `write(stream:upTo:fill:)`): `fill` is offered exactly the frame's payload
    /// room. A short fill ends the call. Returns the bytes taken.
    mutating func sendData(localID: UInt32, upTo limit: Int, fill: (UnsafeMutableRawBufferPointer) -> Int) throws(USPError) -> Int {
        let total = min(streams.sendCredit(localID), limit)
        var offset = 0
        while offset < total {
            if composer.roomInOpenRecord < Frame.dataHeaderLength + 1 { try composer.flush() }
            try composer.reserve(Frame.dataHeaderLength + 1)
            let room = composer.roomInOpenRecord - Frame.dataHeaderLength
            let n = composer.padding.dataChunk(open: composer.openPlaintextCount, header: Frame.dataHeaderLength,
                                               available: total - offset, room: room, max: composer.sealer.maxPlaintext)
            let got = composer.withWriter { w in
                let header = w.count
                FrameWriter.writeDataHeader(stream: localID, count: n, into: &w)
                let got = w.writeFilled(upTo: n, fill)
                if got == 0 {
                    w.bytes.removeLast(Frame.dataHeaderLength)
                } else if got < n {
                    w.setUInt16(UInt16(4 + got), at: header + 1)
                }
                return got
            }
            guard got > 0 else {
                composer.dropOpenRecordIfEmpty()
                break
            }
            streams.consumeSendCredit(localID, got)
            offset += got
            if got < n { break }
            // Cut at a bucket: this record ends here, full, and the rest opens the next one.
            if n < min(total - offset + n, room) { try composer.flush() }
        }
        return offset
    }

    /// Seals the open record, except while shaping: then the next tick does.
    mutating func flush() throws(USPError) {
        guard shaping == nil else { return }
        try composer.flush()
    }

    /// Applies a frame from the client that is neither MESSAGE nor OPEN (the server roles decide
    /// those by policy) to the stream table, answering PING, and says what the session must report.
    /// The same rules, in `ServerSession` and in `DedicatedStreamSession` after a relay-free hand-off.
    mutating func applyClientFrame(_ frame: FrameView) throws(USPError) -> ClientFrameOutcome {
        switch frame {
        case .padding, .rekey, .pong:
            return .none
        case .message, .open:
            preconditionFailure("MESSAGE and OPEN are decided by the session, not the link")
        case .accept, .reject:
            throw USPError(.unexpectedMessage, "\(frame.type.name) from a client: only the server accepts or rejects streams")
        case .shape:
            throw USPError(.unexpectedMessage, "SHAPE from a client: only the server turns shaping on or off")
        case .data(let peerID, let data):
            if case .data(let localID, _) = try streams.peerData(peerID: peerID, count: data.count) { return .data(stream: localID, data) }
            return .none
        case .window(let peerID, let increment):
            if case .credit(let localID, let available) = try streams.peerWindow(peerID: peerID, increment: increment), available > 0 {
                return .writable(stream: localID)
            }
            return .none
        case .fin(let peerID):
            if case .peerFinished(let localID, let closed) = try streams.peerFinished(peerID: peerID) {
                return .finished(stream: localID, closed: closed)
            }
            return .none
        case .reset(let peerID, let code):
            if case .reset(let localID, let code) = try streams.peerReset(peerID: peerID, code: code) {
                return .reset(stream: localID, code: .fromWire(code))
            }
            return .none
        case .ping(let value):
            try streams.noteControlFrame()
            try send(.pong(value))
            return .none
        case .close(let code, _):
            return .close(.fromWire(code))
        }
    }

    /// Bytes waiting to be sent: the handshake message, then sealed records.
    var outboundByteCount: Int { unsentHandshake.count + releasedByteCount }

    /// Drops buffer storage while idle, so an idle session holds only its keys and tables.
    mutating func releaseIdleStorage() {
        guard outboundByteCount == 0, shaping == nil else { return }
        unsentHandshake = []
        reader?.releaseStorage()
        composer.releaseStorage()
    }
}

/// What a client frame did (`SessionLink.applyClientFrame`). Byte views are valid only while the
/// record is being handled.
enum ClientFrameOutcome {
    /// Nothing to report (PADDING, REKEY, PONG, PING answered, a frame for a stream gone here).
    case none
    /// Application bytes on `stream`.
    case data(stream: UInt32, UnsafeRawBufferPointer)
    /// The client granted credit on `stream`.
    case writable(stream: UInt32)
    /// The client half-closed `stream`; `closed`: this side had finished too, the stream is gone.
    case finished(stream: UInt32, closed: Bool)
    /// The client reset `stream`.
    case reset(stream: UInt32, code: USPError.Code)
    /// The client's CLOSE.
    case close(USPError.Code)
}
