/// The transport half of a session once the handshake is done: the record reader and composer and
/// the stream table. Client and server sessions both drive one; it knows nothing of USP policy.
struct SessionLink: Sendable {
    /// Optional so a session can take it out while frames are dispatched (no copy of its buffer).
    var reader: RecordReader?
    var composer: RecordComposer
    var streams: StreamTable
    let result: HandshakeResult
    /// The peer's limit on DATA payload per frame, from its record size.
    var maxDataPerFrame: Int { composer.recordCapacity - Frame.dataHeaderLength }

    init(result: HandshakeResult, configuration: SessionConfiguration, role: StreamTable.Role) throws(USPError) {
        self.result = result
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
        try send(.message(kind: message.kind.rawValue, json: json))
    }

    /// Sends up to the stream's credit from `data` as DATA frames under `localID`; returns bytes taken.
    mutating func sendData(localID: UInt32, _ data: UnsafeRawBufferPointer) throws(USPError) -> Int {
        let credit = streams.sendCredit(localID)
        let total = min(credit, data.count)
        var offset = 0
        while offset < total {
            if composer.roomInOpenRecord < Frame.dataHeaderLength + 1 { try composer.flush() }
            try composer.reserve(Frame.dataHeaderLength + 1)
            let n = min(total - offset, composer.roomInOpenRecord - Frame.dataHeaderLength)
            let chunk = UnsafeRawBufferPointer(rebasing: data[offset..<offset + n])
            composer.withWriter { w in
                FrameWriter.writeDataHeader(stream: localID, count: n, into: &w)
                w.writeBytes(chunk)
            }
            streams.consumeSendCredit(localID, n)
            offset += n
        }
        return total
    }

    mutating func flush() throws(USPError) { try composer.flush() }

    /// Drops buffer storage while idle, so an idle session holds only its keys and tables.
    mutating func releaseIdleStorage() {
        reader?.releaseStorage()
        composer.releaseStorage()
    }
}
