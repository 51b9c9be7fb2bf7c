import Testing
@testable import USPCore

/// Two CipherStates with the same key: one to seal with, one to open with.
func rtCipherPair(_ seed: UInt64 = 1, nonce: UInt64 = 0) -> (CipherState, CipherState) {
    let key = HSSeededRandom(seed: seed).bytes(32)
    var a = try! CipherState(key: key)
    var b = try! CipherState(key: key)
    a.setNonce(nonce)
    b.setNonce(nonce)
    return (a, b)
}

/// A sealer/opener pair over a fresh shared key.
func rtPair(seed: UInt64 = 1, nonce: UInt64 = 0, openerMax: Int = RecordLayout.maxPlaintext,
            rekeyLimit: UInt64 = .max, rekeyAfterBytes: UInt64 = 1 << 30) -> (RecordSealer, RecordOpener) {
    let (a, b) = rtCipherPair(seed, nonce: nonce)
    return (RecordSealer(cipher: a, rekeyAfterBytes: rekeyAfterBytes),
            RecordOpener(cipher: b, maxPlaintext: openerMax, rekeyLimit: rekeyLimit))
}

/// Seals one record and returns its bytes.
func rtSeal(_ sealer: inout RecordSealer, _ plaintext: [UInt8]) throws(USPError) -> [UInt8] {
    var out: [UInt8] = []
    var failure: USPError?
    plaintext.withUnsafeBytes { p in
        do throws(USPError) { try sealer.seal(p, appendingTo: &out) } catch { failure = error }
    }
    if let failure { throw failure }
    return out
}

/// Opens one whole record with a bare RecordOpener (header, then body).
func rtOpen(_ opener: inout RecordOpener, _ record: [UInt8]) throws(USPError) -> [UInt8] {
    var buffer = record
    var result: Result<[UInt8], USPError> = .failure(USPError(.internalError, "test: not run"))
    buffer.withUnsafeMutableBytes { all in
        do throws(USPError) {
            guard all.count >= RecordLayout.headerLength else { throw USPError(.recordTruncated, "test: short header") }
            let length = try opener.openHeader(UnsafeMutableRawBufferPointer(rebasing: all[0..<RecordLayout.headerLength]))
            let end = RecordLayout.headerLength + length + RecordLayout.tagLength
            guard all.count >= end else { throw USPError(.recordTruncated, "test: short body") }
            let n = try opener.openBody(UnsafeMutableRawBufferPointer(rebasing: all[RecordLayout.headerLength..<end]))
            #expect(n == length)
            result = .success(Array(all[RecordLayout.headerLength..<RecordLayout.headerLength + n]))
        } catch { result = .failure(error) }
    }
    return try result.get()
}

/// Opens every complete record the reader holds.
func rtDrain(_ reader: inout RecordReader) throws(USPError) -> [[UInt8]] {
    var out: [[UInt8]] = []
    while let p = try reader.nextRecord({ (b: UnsafeMutableRawBufferPointer) throws(USPError) -> [UInt8] in Array(b) }) {
        out.append(p)
    }
    return out
}

/// Deterministic plaintext of `n` bytes, different per `tag`.
func rtPlaintext(_ n: Int, tag: UInt64 = 0) -> [UInt8] {
    HSSeededRandom(seed: 0xC0FFEE &+ tag &* 7919 &+ UInt64(n)).bytes(n)
}
