/// The 64-byte hello each side puts at the start of its handshake payload (docs/PROTOCOL.md §3.4).
/// It negotiates the wire version and states the limits this side enforces on what it receives.
/// Being inside a Noise payload, it is hashed into `h`: a rewritten hello fails the handshake.
public struct Hello: Equatable, Sendable {
    public static let length = 64
    public static let minRecordPlaintext = 1024
    public static let maxRecordPlaintext = 65535 - CipherState.tagLength  // 65519
    public static let minStreamWindow: UInt32 = 16384
    public static let maxStreamWindow: UInt32 = 0x7FFF_FFFF
    public static let minRekeyLimit: UInt64 = 1 << 20

    public struct Flags: OptionSet, Hashable, Sendable {
        public let rawValue: UInt16
        public init(rawValue: UInt16) { self.rawValue = rawValue }
        /// Server → client: the early frames in message 1 were accepted and acted on.
        /// When clear, the client must send them again after the handshake.
        public static let earlyDataAccepted = Flags(rawValue: 1 << 0)
        /// "Pad the records you send me" (the sender applies its padding policy).
        public static let paddingRequested = Flags(rawValue: 1 << 1)
        static let known: Flags = [.earlyDataAccepted, .paddingRequested]
    }

    /// Record ciphers the sender offers besides ChaChaPoly (`record_ciphers`). Records use AESGCM
    /// when both hellos offer it (`recordCipher(client:server:)`). Unknown bits are ignored, so a
    /// later revision can offer more.
    public struct RecordCiphers: OptionSet, Hashable, Sendable {
        public let rawValue: UInt16
        public init(rawValue: UInt16) { self.rawValue = rawValue }
        public static let aesGCM = RecordCiphers(rawValue: 1 << 0)
    }

    public var versionMin: UInt8 = 1
    public var versionMax: UInt8 = 1
    public var flags: Flags = []
    /// The largest record plaintext this side accepts.
    public var maxRecordPlaintext: UInt32 = UInt32(Hello.maxRecordPlaintext)
    /// This side's receive window for each stream, in bytes.
    public var streamWindow: UInt32 = 256 * 1024
    /// How many concurrent streams this side accepts.
    public var maxStreams: UInt16 = 100
    /// The most plaintext bytes the peer may send under one key before it must send REKEY.
    public var rekeyLimit: UInt64 = 1 << 32
    /// The sender's clock when it wrote the hello (replay protection of message 1).
    public var timestamp: Timestamp = .zero
    /// What the sender offers for records besides ChaChaPoly (none by default).
    public var recordCiphers: RecordCiphers = []

    public init() {}

    public func encode(into w: inout WireWriter) {
        let start = w.count
        w.writeUInt8(versionMin)
        w.writeUInt8(versionMax)
        w.writeUInt16(flags.rawValue)
        w.writeUInt32(maxRecordPlaintext)
        w.writeUInt32(streamWindow)
        w.writeUInt16(maxStreams)
        w.writeUInt16(recordCiphers.rawValue)
        w.writeUInt64(rekeyLimit)
        w.writeUInt64(timestamp.seconds)
        w.writeUInt32(timestamp.nanoseconds)
        w.writeZeros(Hello.length - (w.count - start))
    }

    public var bytes: [UInt8] {
        var w = WireWriter(capacity: Hello.length)
        encode(into: &w)
        return w.bytes
    }

    /// Decodes and validates a hello. Reserved bytes are ignored so later revisions can use them.
    public static func decode(_ bytes: UnsafeRawBufferPointer) throws(USPError) -> Hello {
        var r = WireReader(bytes, shortCode: .invalidHello, context: "hello")
        var h = Hello()
        h.versionMin = try r.readUInt8("version_min")
        h.versionMax = try r.readUInt8("version_max")
        h.flags = Flags(rawValue: try r.readUInt16("flags"))
        h.maxRecordPlaintext = try r.readUInt32("max_record_plaintext")
        h.streamWindow = try r.readUInt32("stream_window")
        h.maxStreams = try r.readUInt16("max_streams")
        h.recordCiphers = RecordCiphers(rawValue: try r.readUInt16("record_ciphers"))
        h.rekeyLimit = try r.readUInt64("rekey_limit")
        let secs = try r.readUInt64("timestamp_seconds")
        let nanos = try r.readUInt32("timestamp_nanos")
        try r.skip(Hello.length - r.offset, "reserved tail")
        h.timestamp = Timestamp(seconds: secs, nanoseconds: nanos)
        try h.validate()
        return h
    }

    public static func decode(_ bytes: [UInt8]) throws(USPError) -> Hello {
        var result: Result<Hello, USPError> = .failure(USPError(.invalidHello))
        bytes.withUnsafeBytes { b in
            do throws(USPError) { result = .success(try decode(b)) } catch { result = .failure(error) }
        }
        return try result.get()
    }

    public func validate() throws(USPError) {
        guard versionMin >= 1, versionMin <= versionMax else {
            throw USPError(.invalidHello, "hello: version range \(versionMin)...\(versionMax) is empty or starts below 1")
        }
        guard Int(maxRecordPlaintext) >= Hello.minRecordPlaintext, Int(maxRecordPlaintext) <= Hello.maxRecordPlaintext else {
            throw USPError(.invalidHello, "hello: max_record_plaintext \(maxRecordPlaintext) outside \(Hello.minRecordPlaintext)...\(Hello.maxRecordPlaintext)")
        }
        guard streamWindow >= Hello.minStreamWindow, streamWindow <= Hello.maxStreamWindow else {
            throw USPError(.invalidHello, "hello: stream_window \(streamWindow) outside \(Hello.minStreamWindow)...\(Hello.maxStreamWindow)")
        }
        guard maxStreams >= 1 else { throw USPError(.invalidHello, "hello: max_streams is 0") }
        guard rekeyLimit >= Hello.minRekeyLimit else {
            throw USPError(.invalidHello, "hello: rekey_limit \(rekeyLimit) below \(Hello.minRekeyLimit)")
        }
        guard timestamp.nanoseconds < 1_000_000_000 else {
            throw USPError(.invalidHello, "hello: timestamp_nanos \(timestamp.nanoseconds) is not below 10^9")
        }
        guard Flags.known.isSuperset(of: flags) else {
            throw USPError(.invalidHello, "hello: unknown flag bits 0x\(String(flags.rawValue & ~Flags.known.rawValue, radix: 16))")
        }
    }

    /// The cipher function of the session's records (docs/PROTOCOL.md §4.2): AESGCM when both
    /// hellos offer it, else ChaChaPoly. The handshake itself is always ChaChaPoly.
    public static func recordCipher(client: Hello, server: Hello) -> CipherFunction {
        client.recordCiphers.contains(.aesGCM) && server.recordCiphers.contains(.aesGCM) ? .aesGCM : .chaChaPoly
    }

    /// The wire version both sides speak: the highest version in both ranges.
    public static func negotiate(client: Hello, server: Hello) throws(USPError) -> UInt8 {
        let top = min(client.versionMax, server.versionMax)
        let bottom = max(client.versionMin, server.versionMin)
        guard top >= bottom else {
            throw USPError(.versionMismatch, "no common wire version: client \(client.versionMin)...\(client.versionMax), server \(server.versionMin)...\(server.versionMax)")
        }
        return top
    }
}
