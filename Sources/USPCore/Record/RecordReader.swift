/// Reassembles records from the byte stream and opens them in place.
///
/// Bytes arrive in arbitrary pieces; `append` copies them into one buffer whose storage is reused,
/// and `nextRecord` hands out each record's plaintext as a view into that buffer, valid only inside
/// the closure. In steady state nothing is allocated.
public struct RecordReader: Sendable {
    public var opener: RecordOpener
    private var buffer: [UInt8] = []
    private var readIndex = 0
    /// Set once a header is open: the body's plaintext length.
    private var pendingBodyLength: Int?

    public init(opener: RecordOpener) {
        self.opener = opener
    }

    /// Resumes mid-stream (a relay-free hand-off): `unread` are bytes received but not yet opened;
    /// `pendingBodyLength` is set when the header of the next record was already opened, so
    /// `unread` starts with that record's body.
    init(opener: RecordOpener, unread: [UInt8], pendingBodyLength: Int?) {
        self.opener = opener
        buffer = unread
        self.pendingBodyLength = pendingBodyLength
    }

    /// What `init(opener:unread:pendingBodyLength:)` needs to resume this reader elsewhere.
    var resumeState: (unread: [UInt8], pendingBodyLength: Int?) {
        (Array(buffer[readIndex...]), pendingBodyLength)
    }

    /// Frees the buffer's storage when nothing is pending (for idle sessions).
    public mutating func releaseStorage() {
        if readIndex == buffer.count, pendingBodyLength == nil {
            buffer = []
            readIndex = 0
        }
    }

    /// The address range of the buffer's storage, for recognising plaintext opened in it; the
    /// address is compared, never read through.
    var storageAddress: (base: UInt, count: UInt) {
        buffer.withUnsafeBytes { (UInt(bitPattern: $0.baseAddress), UInt($0.count)) }
    }

    /// The buffer itself, lent to the actions that refer to plaintext in it (a reference: the next
    /// `append` copies it only if the actions still hold it).
    var storage: [UInt8] { buffer }

    /// Bytes received but not yet consumed as records.
    public var bufferedByteCount: Int { buffer.count - readIndex }

    public mutating func append(_ bytes: UnsafeRawBufferPointer) {
        compactIfUseful()
        buffer.append(contentsOf: bytes)
    }

    public mutating func append(_ bytes: some Collection<UInt8>) {
        compactIfUseful()
        buffer.append(contentsOf: bytes)
    }

    private mutating func compactIfUseful() {
        if readIndex == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            readIndex = 0
        } else if readIndex > 0, readIndex >= buffer.count / 2 || readIndex > 1 << 16 {
            buffer.removeFirst(readIndex)
            readIndex = 0
        }
    }

    /// Opens the next complete record and passes its plaintext to `body`. Returns nil when more
    /// bytes are needed.
    public mutating func nextRecord<R>(_ body: (UnsafeMutableRawBufferPointer) throws(USPError) -> R) throws(USPError) -> R? {
        if pendingBodyLength == nil {
            guard buffer.count - readIndex >= RecordLayout.headerLength else { return nil }
            let start = readIndex
            var result: Result<Int, USPError> = .failure(USPError(.internalError))
            buffer.withUnsafeMutableBytes { all in
                let header = UnsafeMutableRawBufferPointer(rebasing: all[start..<start + RecordLayout.headerLength])
                do throws(USPError) { result = .success(try opener.openHeader(header)) } catch { result = .failure(error) }
            }
            pendingBodyLength = try result.get()
            readIndex += RecordLayout.headerLength
        }
        guard let length = pendingBodyLength, buffer.count - readIndex >= length + RecordLayout.tagLength else { return nil }
        let start = readIndex
        var output: Result<R, USPError> = .failure(USPError(.internalError))
        buffer.withUnsafeMutableBytes { all in
            let sealed = UnsafeMutableRawBufferPointer(rebasing: all[start..<start + length + RecordLayout.tagLength])
            do throws(USPError) {
                let n = try opener.openBody(sealed)
                output = .success(try body(UnsafeMutableRawBufferPointer(rebasing: sealed[0..<n])))
            } catch { output = .failure(error) }
        }
        readIndex += length + RecordLayout.tagLength
        pendingBodyLength = nil
        return try output.get()
    }

    /// Call when the peer closed the byte stream. A partial record there means truncation.
    public func checkEndOfInput() throws(USPError) {
        let left = buffer.count - readIndex
        if pendingBodyLength != nil || left > 0 {
            throw USPError(.recordTruncated, "stream ended inside record \(opener.recordsOpened) with \(left) bytes of it")
        }
    }
}
