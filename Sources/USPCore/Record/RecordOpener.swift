/// Opens records for one direction, in place. Any failure ends the session: nonces are strictly
/// sequential over TCP, so a tampered, replayed, reordered or truncated record cannot be skipped.
public struct RecordOpener: Sendable {
    /// Internal read access for a relay-free hand-off snapshot.
    private(set) var cipher: CipherState
    /// This side's limit, announced in its hello.
    public let maxPlaintext: Int
    /// The peer must rekey before sending more than this many bytes under one key.
    public let rekeyLimit: UInt64
    public private(set) var bytesSinceRekey: UInt64 = 0
    public private(set) var recordsOpened: UInt64 = 0
    /// How far back and forward a failed header is probed to name the failure (failure path only).
    static let diagnosisWindow: UInt64 = 32

    public init(cipher: CipherState, maxPlaintext: Int = RecordLayout.maxPlaintext, rekeyLimit: UInt64 = .max) {
        precondition(cipher.hasKey, "a RecordOpener needs the transport key from Split()")
        self.cipher = cipher
        self.maxPlaintext = maxPlaintext
        self.rekeyLimit = rekeyLimit
    }

    /// Resumes an opener mid-session (a relay-free hand-off): the cipher with its nonce and the counters.
    init(resuming cipher: CipherState, maxPlaintext: Int, rekeyLimit: UInt64, bytesSinceRekey: UInt64, recordsOpened: UInt64) {
        self.init(cipher: cipher, maxPlaintext: maxPlaintext, rekeyLimit: rekeyLimit)
        self.bytesSinceRekey = bytesSinceRekey
        self.recordsOpened = recordsOpened
    }

    /// Decrypts an 18-byte header in place and returns the body's plaintext length L; the caller then
    /// waits for L + 16 more bytes.
    public mutating func openHeader(_ header: UnsafeMutableRawBufferPointer) throws(USPError) -> Int {
        precondition(header.count == RecordLayout.headerLength, "a record header is 18 bytes")
        var saved = (UInt64(0), UInt64(0), UInt64(0))
        withUnsafeMutableBytes(of: &saved) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: header[0..<18])) }
        do throws(NoiseError) {
            try cipher.open(ad: UnsafeRawBufferPointer(start: nil, count: 0), buffer: header)
        } catch .decryptFailed {
            throw withUnsafeBytes(of: &saved) { diagnose(UnsafeRawBufferPointer(rebasing: $0[0..<18])) }
        } catch {
            throw USPError(error, during: "record \(recordsOpened) header")
        }
        let length = Int(header[0]) << 8 | Int(header[1])
        guard length >= 1 else {
            throw USPError(.recordEmpty, "record \(recordsOpened): length 0")
        }
        guard length <= maxPlaintext else {
            throw USPError(.recordTooLarge, "record \(recordsOpened): \(length) bytes, limit \(maxPlaintext)")
        }
        guard bytesSinceRekey + UInt64(length) <= rekeyLimit else {
            throw USPError(.rekeyOverdue, "record \(recordsOpened): peer sent \(bytesSinceRekey + UInt64(length)) bytes under one key, limit \(rekeyLimit)")
        }
        return length
    }

    /// Decrypts the body (plaintext then tag, L + 16 bytes) in place; returns L.
    public mutating func openBody(_ body: UnsafeMutableRawBufferPointer) throws(USPError) -> Int {
        let length: Int
        do throws(NoiseError) {
            length = try cipher.open(ad: UnsafeRawBufferPointer(start: nil, count: 0), buffer: body)
        } catch .decryptFailed {
            throw USPError(.recordTampered, "record \(recordsOpened): body failed authentication")
        } catch {
            throw USPError(error, during: "record \(recordsOpened) body")
        }
        bytesSinceRekey &+= UInt64(length)
        recordsOpened &+= 1
        return length
    }

    /// Rotates the receiving key after a record that carried REKEY.
    public mutating func rekey() throws(USPError) {
        do throws(NoiseError) { try cipher.rekey() } catch { throw USPError(error, during: "rekey") }
        bytesSinceRekey = 0
    }

    /// Names a header failure: a header that opens under an earlier record's nonce was replayed,
    /// one that opens under a later record's nonce arrived out of order, anything else was tampered.
    private func diagnose(_ header: UnsafeRawBufferPointer) -> USPError {
        let n = cipher.nonce
        var back: UInt64 = 2
        while back <= 2 * Self.diagnosisWindow, back <= n {
            if cipher.probe(nonce: n - back, ciphertext: header) {
                return USPError(.recordReplayed, "record \(recordsOpened): header is a copy of record \((n - back) / 2)")
            }
            back += 2
        }
        var ahead: UInt64 = 2
        // Stay below the reserved nonce 2^64-1 (and do not overflow near the end of the nonce space).
        while ahead <= 2 * Self.diagnosisWindow, ahead < UInt64.max - n {
            if cipher.probe(nonce: n + ahead, ciphertext: header) {
                return USPError(.recordReordered, "record \(recordsOpened): header belongs to record \((n + ahead) / 2)")
            }
            ahead += 2
        }
        return USPError(.recordTampered, "record \(recordsOpened): header failed authentication")
    }
}
