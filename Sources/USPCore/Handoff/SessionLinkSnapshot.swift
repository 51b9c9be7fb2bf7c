/// Taking a `SessionLink` apart into a `DedicatedStreamSnapshot`, and putting one together from it.
extension SessionLink {
    /// The snapshot of this link with its one live stream `localID`. Self-caused misuse traps: the
    /// caller checked the stream is live and no record is open.
    func snapshot(stream localID: UInt32, serverSessionID: String, undeliveredData: [UInt8],
                  unreadInput: [UInt8], unwrittenOutput: [UInt8]) throws(USPError) -> DedicatedStreamSnapshot {
        guard let reader, let stream = streams.state(of: localID) else {
            preconditionFailure("a snapshot needs the reader and the live stream")
        }
        let sealer = composer.sealer
        guard let sendKey = sealer.cipher.exportKey(), let receiveKey = reader.opener.cipher.exportKey() else {
            throw USPError(.internalError, "the transport has no keys")
        }
        let (unread, pending) = reader.resumeState
        return DedicatedStreamSnapshot(
            serverSessionID: serverSessionID, cipher: sealer.cipher.function,
            send: .init(key: sendKey, nonce: sealer.cipher.nonce, maxPlaintext: sealer.maxPlaintext, rekeyBytes: sealer.rekeyAfterBytes,
                        bytesSinceRekey: sealer.bytesSinceRekey, records: sealer.recordsSealed),
            receive: .init(key: receiveKey, nonce: reader.opener.cipher.nonce, maxPlaintext: reader.opener.maxPlaintext,
                           rekeyBytes: reader.opener.rekeyLimit, bytesSinceRekey: reader.opener.bytesSinceRekey,
                           records: reader.opener.recordsOpened),
            padding: composer.padding, pendingBodyLength: pending,
            limits: streams.limits, peerInitialWindow: streams.peerInitialWindow,
            controlFramesSinceProgress: streams.controlFramesSinceProgress,
            lastLocalID: streams.lastLocalID, highestPeerID: streams.highestPeerID, stream: stream,
            unreadInput: unread + unreadInput, undeliveredData: undeliveredData, unwrittenOutput: unwrittenOutput)
    }

    /// A link that goes on where `snapshot` left off (the unwritten records are queued first; the
    /// unread input and undelivered data are the caller's to process).
    init(resuming snapshot: DedicatedStreamSnapshot) throws(USPError) {
        func cipher(_ d: DedicatedStreamSnapshot.Direction) throws(USPError) -> CipherState {
            var c: CipherState
            do throws(NoiseError) { c = try CipherState(key: d.key, function: snapshot.cipher) } catch { throw USPError(error, during: "resuming a relay-free snapshot") }
            c.setNonce(d.nonce)
            return c
        }
        let s = snapshot
        let opener = RecordOpener(resuming: try cipher(s.receive), maxPlaintext: s.receive.maxPlaintext, rekeyLimit: s.receive.rekeyBytes,
                                  bytesSinceRekey: s.receive.bytesSinceRekey, recordsOpened: s.receive.records)
        let sealer = RecordSealer(resuming: try cipher(s.send), maxPlaintext: s.send.maxPlaintext, rekeyAfterBytes: s.send.rekeyBytes,
                                  bytesSinceRekey: s.send.bytesSinceRekey, recordsSealed: s.send.records)
        let streams = try StreamTable(role: .server, limits: s.limits, peerInitialWindow: s.peerInitialWindow, adopting: s.stream,
                                      lastLocalID: s.lastLocalID, highestPeerID: s.highestPeerID,
                                      controlFramesSinceProgress: s.controlFramesSinceProgress)
        self.init(reader: RecordReader(opener: opener, unread: [], pendingBodyLength: s.pendingBodyLength),
                  composer: RecordComposer(sealer: sealer, padding: s.padding, pending: s.unwrittenOutput),
                  streams: streams)
    }
}
