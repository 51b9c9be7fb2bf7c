import CUSPCrypto

/// An AEAD key held in a BoringSSL EVP_AEAD context. A new key gets a new instance, so a copied
/// `CipherState` (the handshake's roll-back copy, for instance) never shares a key that later changes.
final class AEADKey: @unchecked Sendable {
    let context: OpaquePointer
    /// The raw key, kept only so that a relay-free hand-off can export it (`CipherState.exportKey`);
    /// zeroed when the key is dropped.
    private let raw: UnsafeMutableRawBufferPointer

    init(_ key: [UInt8], function: CipherFunction) throws(NoiseError) {
        guard key.count == 32 else { throw .invalidKey }
        guard let ctx = key.withUnsafeBufferPointer({ usp_aead_new_cipher($0.baseAddress, function.cValue) }) else {
            throw .cryptoUnavailable
        }
        context = ctx
        raw = .allocate(byteCount: 32, alignment: 8)
        key.withUnsafeBytes { raw.copyMemory(from: $0) }
    }

    var bytes: [UInt8] { Array(raw) }

    deinit {
        usp_secure_zero(raw.baseAddress, raw.count)
        raw.deallocate()
        usp_aead_free(context)
    }
}

/// Noise §5.1 CipherState: a key `k` (or none) and a 64-bit nonce `n`, under one cipher function
/// (ChaChaPoly unless a session's records negotiated AESGCM, docs/PROTOCOL.md §4.2).
///
/// Besides the spec's allocating `encryptWithAd`/`decryptWithAd`, it offers in-place
/// `seal`/`open` on caller-owned memory, which the record layer uses so that steady-state
/// traffic allocates nothing.
public struct CipherState: Sendable {
    public static let tagLength = 16
    /// The largest Noise message (§3); a ciphertext never exceeds it.
    public static let maxMessageLength = 65535

    private var key: AEADKey?
    /// The nonce `n`. 2^64-1 is reserved, so it is never used to encrypt.
    public private(set) var nonce: UInt64 = 0
    /// The AEAD this state encrypts with.
    public let function: CipherFunction

    public init(function: CipherFunction = .chaChaPoly) {
        self.function = function
    }

    /// InitializeKey(key): sets `k` and `n = 0`. `nil` empties the key.
    public init(key: [UInt8]?, function: CipherFunction = .chaChaPoly) throws(NoiseError) {
        self.function = function
        try initializeKey(key)
    }

    public mutating func initializeKey(_ newKey: [UInt8]?) throws(NoiseError) {
        let function = function
        key = try newKey.map { (k: [UInt8]) throws(NoiseError) -> AEADKey in try AEADKey(k, function: function) }
        nonce = 0
    }

    /// The same key and nonce under another cipher function: how the transport CipherStates that
    /// `Split()` returns become AESGCM ones when the hellos chose it for records.
    public func under(_ other: CipherFunction) throws(NoiseError) -> CipherState {
        guard other != function else { return self }
        var raw = key?.bytes
        defer { if raw != nil { raw!.withUnsafeMutableBytes { usp_secure_zero($0.baseAddress, $0.count) } } }
        var next = try CipherState(key: raw, function: other)
        next.nonce = nonce
        return next
    }

    /// HasKey()
    public var hasKey: Bool { key != nil }

    /// The current key `k` (nil when empty), for a relay-free hand-off snapshot
    /// (`DedicatedStreamSnapshot`). The caller zeroes its copy once it has sent it.
    public func exportKey() -> [UInt8]? { key?.bytes }

    /// SetNonce(nonce)
    public mutating func setNonce(_ n: UInt64) { nonce = n }

    /// EncryptWithAd(ad, plaintext)
    public mutating func encryptWithAd(_ ad: some Collection<UInt8>, _ plaintext: some Collection<UInt8>) throws(NoiseError) -> [UInt8] {
        guard hasKey else { return Array(plaintext) }
        var buffer = Array(plaintext)
        let count = buffer.count
        buffer.append(contentsOf: repeatElement(0, count: Self.tagLength))
        let adBytes = Array(ad)
        var failure: NoiseError?
        adBytes.withUnsafeBytes { adp in
            buffer.withUnsafeMutableBytes { buf in
                do throws(NoiseError) { try seal(ad: adp, buffer: buf, plaintextCount: count) } catch { failure = error }
            }
        }
        if let failure { throw failure }
        return buffer
    }

    /// DecryptWithAd(ad, ciphertext). On failure the nonce does not advance (§5.1).
    public mutating func decryptWithAd(_ ad: some Collection<UInt8>, _ ciphertext: some Collection<UInt8>) throws(NoiseError) -> [UInt8] {
        guard hasKey else { return Array(ciphertext) }
        var buffer = Array(ciphertext)
        let adBytes = Array(ad)
        var failure: NoiseError?
        var n = 0
        adBytes.withUnsafeBytes { adp in
            buffer.withUnsafeMutableBytes { buf in
                do throws(NoiseError) { n = try open(ad: adp, buffer: buf) } catch { failure = error }
            }
        }
        if let failure { throw failure }
        buffer.removeLast(buffer.count - n)
        return buffer
    }

    /// Encrypts `buffer[0..<plaintextCount]` in place and writes the tag to
    /// `buffer[plaintextCount..<plaintextCount+16]`. Allocates nothing.
    public mutating func seal(ad: UnsafeRawBufferPointer, buffer: UnsafeMutableRawBufferPointer, plaintextCount: Int) throws(NoiseError) {
        guard let key else {
            preconditionFailure("seal needs a key; callers check hasKey (the handshake) or only seal after Split()")
        }
        precondition(buffer.count >= plaintextCount + Self.tagLength, "seal: buffer has no room for the tag")
        guard nonce != UInt64.max else { throw .nonceExhausted }
        let base = buffer.baseAddress!.assumingMemoryBound(to: UInt8.self)
        let ok = usp_aead_seal(key.context, nonce,
                               ad.baseAddress?.assumingMemoryBound(to: UInt8.self), ad.count,
                               base, base, plaintextCount, base + plaintextCount)
        guard ok == 1 else { throw .cryptoUnavailable }
        nonce &+= 1
    }

    /// Decrypts `buffer` (ciphertext then 16-byte tag) in place. Returns the plaintext length.
    /// On a bad tag the nonce stays, the plaintext area is zeroed, and `.decryptFailed` is thrown.
    @discardableResult
    public mutating func open(ad: UnsafeRawBufferPointer, buffer: UnsafeMutableRawBufferPointer) throws(NoiseError) -> Int {
        guard let key else {
            preconditionFailure("open needs a key; callers check hasKey (the handshake) or only open after Split()")
        }
        guard buffer.count >= Self.tagLength else { throw .messageTooShort }
        guard nonce != UInt64.max else { throw .nonceExhausted }
        let count = buffer.count - Self.tagLength
        let base = buffer.baseAddress!.assumingMemoryBound(to: UInt8.self)
        let ok = usp_aead_open(key.context, nonce,
                               ad.baseAddress?.assumingMemoryBound(to: UInt8.self), ad.count,
                               base, base, count, base + count)
        guard ok == 1 else { throw .decryptFailed }
        nonce &+= 1
        return count
    }

    /// Trial-opens a copy of `ciphertext` under an explicit nonce without changing this state.
    /// Used only on failure paths, to say whether a bad record was replayed or reordered.
    public func probe(nonce probeNonce: UInt64, ciphertext: UnsafeRawBufferPointer) -> Bool {
        guard let key, ciphertext.count >= Self.tagLength, ciphertext.count <= 64 else { return false }
        var scratch = (UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0))
        return withUnsafeMutableBytes(of: &scratch) { s in
            s.copyMemory(from: ciphertext)
            let base = s.baseAddress!.assumingMemoryBound(to: UInt8.self)
            let count = ciphertext.count - Self.tagLength
            return usp_aead_open(key.context, probeNonce, nil, 0, base, base, count, base + count) == 1
        }
    }

    /// Rekey(): k = REKEY(k), the first 32 bytes of ENCRYPT(k, 2^64-1, zerolen, zeros) (§4.2, §11.3).
    /// The nonce is unchanged.
    public mutating func rekey() throws(NoiseError) {
        guard let key else { return }
        var block = [UInt8](repeating: 0, count: 32 + Self.tagLength)
        let ok = block.withUnsafeMutableBufferPointer { b in
            usp_aead_seal(key.context, UInt64.max, nil, 0, b.baseAddress, b.baseAddress, 32, b.baseAddress! + 32)
        }
        guard ok == 1 else { throw .cryptoUnavailable }
        self.key = try AEADKey(Array(block[0..<32]), function: function)
        block.withUnsafeMutableBytes { usp_secure_zero($0.baseAddress, $0.count) }
    }
}
