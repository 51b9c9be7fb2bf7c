/// Seals records for one direction, in place, allocating nothing.
public struct RecordSealer: Sendable {
    /// Internal read access for a relay-free hand-off snapshot.
    private(set) var cipher: CipherState
    /// The peer's limit from its hello.
    public let maxPlaintext: Int
    /// After this many plaintext bytes under one key the sender should send REKEY.
    public let rekeyAfterBytes: UInt64
    public private(set) var bytesSinceRekey: UInt64 = 0
    public private(set) var recordsSealed: UInt64 = 0

    public init(cipher: CipherState, maxPlaintext: Int = RecordLayout.maxPlaintext, rekeyAfterBytes: UInt64 = 1 << 30) {
        precondition(cipher.hasKey, "a RecordSealer needs the transport key from Split()")
        precondition(maxPlaintext >= 1 && maxPlaintext <= RecordLayout.maxPlaintext, "maxPlaintext out of range")
        self.cipher = cipher
        self.maxPlaintext = maxPlaintext
        self.rekeyAfterBytes = rekeyAfterBytes
    }

    /// Resumes a sealer mid-session (a relay-free hand-off): the cipher with its nonce and the counters.
    init(resuming cipher: CipherState, maxPlaintext: Int, rekeyAfterBytes: UInt64, bytesSinceRekey: UInt64, recordsSealed: UInt64) {
        self.init(cipher: cipher, maxPlaintext: maxPlaintext, rekeyAfterBytes: rekeyAfterBytes)
        self.bytesSinceRekey = bytesSinceRekey
        self.recordsSealed = recordsSealed
    }

    /// True when the next record should carry a REKEY frame.
    public var shouldRekey: Bool { bytesSinceRekey >= rekeyAfterBytes }

    /// Seals the record whose plaintext is at `buffer[18 ..< 18+plaintextCount]`: writes the
    /// encrypted length at `buffer[0..<18]` and the body tag after the plaintext.
    /// Returns the record's total length (`plaintextCount + 34`).
    public mutating func seal(plaintextCount: Int, in buffer: UnsafeMutableRawBufferPointer) throws(USPError) -> Int {
        precondition(plaintextCount >= 1 && plaintextCount <= maxPlaintext, "record plaintext must be 1...maxPlaintext; the framer splits")
        precondition(buffer.count >= plaintextCount + RecordLayout.overhead, "seal: buffer too small")
        buffer[0] = UInt8(truncatingIfNeeded: plaintextCount >> 8)
        buffer[1] = UInt8(truncatingIfNeeded: plaintextCount)
        do throws(NoiseError) {
            try cipher.seal(ad: UnsafeRawBufferPointer(start: nil, count: 0),
                            buffer: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<RecordLayout.headerLength]), plaintextCount: 2)
            try cipher.seal(ad: UnsafeRawBufferPointer(start: nil, count: 0),
                            buffer: UnsafeMutableRawBufferPointer(rebasing: buffer[RecordLayout.headerLength...]),
                            plaintextCount: plaintextCount)
        } catch {
            throw USPError(error, during: "sealing record \(recordsSealed)")
        }
        bytesSinceRekey &+= UInt64(plaintextCount)
        recordsSealed &+= 1
        return plaintextCount + RecordLayout.overhead
    }

    /// Appends a sealed record holding `plaintext` to `out`. With `out`'s capacity retained between
    /// calls this allocates nothing.
    public mutating func seal(_ plaintext: UnsafeRawBufferPointer, appendingTo out: inout [UInt8]) throws(USPError) {
        let start = out.count
        out.append(contentsOf: repeatElement(0, count: RecordLayout.headerLength))
        out.append(contentsOf: plaintext)
        out.append(contentsOf: repeatElement(0, count: RecordLayout.tagLength))
        var failure: USPError?
        out.withUnsafeMutableBytes { all in
            do throws(USPError) {
                _ = try seal(plaintextCount: plaintext.count, in: UnsafeMutableRawBufferPointer(rebasing: all[start...]))
            } catch { failure = error }
        }
        if let failure {
            out.removeLast(out.count - start)
            throw failure
        }
    }

    /// Rotates the sending key (after a record that carried a REKEY frame).
    public mutating func rekey() throws(USPError) {
        do throws(NoiseError) { try cipher.rekey() } catch { throw USPError(error, during: "rekey") }
        bytesSinceRekey = 0
    }
}
