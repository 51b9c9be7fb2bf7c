import USPCore

/// Record-layer throughput and allocation counts at 16 KiB plaintext per record.
///
/// Three data paths:
/// - seal in place: `RecordSealer.seal(plaintextCount:in:)` over one 16 KiB + 34 byte buffer, as
///   `openssl speed` encrypts one buffer over and over;
/// - open in place: `RecordOpener.openHeader` + `openBody` over a batch of `batch` records sealed
///   (untimed) by the peer's sealer just before;
/// - stream: `RecordSealer.seal(_:appendingTo:)` into a reused `[UInt8]`, then `RecordReader.append`
///   + `nextRecord`, which is how a session moves records (the reader's copy in is part of it).
/// MB/s counts plaintext bytes, 10^6 bytes per MB, like `openssl speed` (1000s of bytes).
struct RecordBench {
    static let payload = 16_384
    static let stride = payload + RecordLayout.overhead
    /// Records sealed ahead and then opened as one timed batch (4 × 16 KiB stays in L2).
    static let batch = 4

    let plaintext: UnsafeMutableRawBufferPointer
    let sealBuffer: UnsafeMutableRawBufferPointer
    let batchBuffer: UnsafeMutableRawBufferPointer

    var sealer: RecordSealer
    var aead: CipherState
    var peerSealer: RecordSealer
    var opener: RecordOpener
    var streamSealer: RecordSealer
    var reader: RecordReader
    var wire: [UInt8] = []

    init() throws {
        plaintext = .allocate(byteCount: Self.payload, alignment: 64)
        sealBuffer = .allocate(byteCount: Self.stride, alignment: 64)
        batchBuffer = .allocate(byteCount: Self.stride * Self.batch, alignment: 64)
        let fill = randomBytes(Self.payload)
        plaintext.copyBytes(from: fill)
        sealBuffer.initializeMemory(as: UInt8.self, repeating: 0)
        sealBuffer.baseAddress!.advanced(by: RecordLayout.headerLength).copyMemory(from: plaintext.baseAddress!, byteCount: Self.payload)
        for r in 0..<Self.batch {
            let slot = batchBuffer.baseAddress!.advanced(by: r * Self.stride)
            slot.initializeMemory(as: UInt8.self, repeating: 0, count: Self.stride)
            slot.advanced(by: RecordLayout.headerLength).copyMemory(from: plaintext.baseAddress!, byteCount: Self.payload)
        }

        let k1 = randomBytes(32), k2 = randomBytes(32), k3 = randomBytes(32)
        sealer = RecordSealer(cipher: try CipherState(key: k1))
        aead = try CipherState(key: k1)
        peerSealer = RecordSealer(cipher: try CipherState(key: k2))
        opener = RecordOpener(cipher: try CipherState(key: k2))
        streamSealer = RecordSealer(cipher: try CipherState(key: k3))
        reader = RecordReader(opener: RecordOpener(cipher: try CipherState(key: k3)))
        wire.reserveCapacity(Self.stride * Self.batch)
        try selfCheck()
    }

    /// A sealed record opens to the same bytes on both paths, so the timed loops measure real work.
    private mutating func selfCheck() throws {
        var s = RecordSealer(cipher: try CipherState(key: [UInt8](repeating: 7, count: 32)))
        var o = RecordOpener(cipher: try CipherState(key: [UInt8](repeating: 7, count: 32)))
        var buf = [UInt8](repeating: 0, count: Self.stride)
        for i in 0..<Self.payload { buf[RecordLayout.headerLength + i] = plaintext[i] }
        let total = try buf.withUnsafeMutableBytes { b throws(USPError) in try s.seal(plaintextCount: Self.payload, in: b) }
        precondition(total == Self.stride)
        precondition(!buf[RecordLayout.headerLength..<RecordLayout.headerLength + 64].elementsEqual(plaintext[0..<64]), "seal did not encrypt")
        let n = try buf.withUnsafeMutableBytes { b throws(USPError) -> Int in
            let len = try o.openHeader(UnsafeMutableRawBufferPointer(rebasing: b[0..<RecordLayout.headerLength]))
            precondition(len == Self.payload)
            return try o.openBody(UnsafeMutableRawBufferPointer(rebasing: b[RecordLayout.headerLength...]))
        }
        precondition(n == Self.payload)
        precondition(buf[RecordLayout.headerLength..<RecordLayout.headerLength + Self.payload].elementsEqual(plaintext), "open did not restore the plaintext")

        var w: [UInt8] = []
        var r = RecordReader(opener: RecordOpener(cipher: try CipherState(key: [UInt8](repeating: 9, count: 32))))
        var s2 = RecordSealer(cipher: try CipherState(key: [UInt8](repeating: 9, count: 32)))
        try s2.seal(UnsafeRawBufferPointer(plaintext), appendingTo: &w)
        precondition(w.count == Self.stride)
        w.withUnsafeBytes { r.append($0) }
        let same = try r.nextRecord { p in p.elementsEqual(plaintext) }
        precondition(same == true, "RecordReader did not return the plaintext")
    }

    // MARK: timed paths (each returns nanoseconds spent in the measured calls)

    mutating func sealInPlace(records n: Int, countAllocs: Bool = false) throws -> UInt64 {
        try Self.sealLoop(&sealer, sealBuffer, n, countAllocs)
    }

    private static func sealLoop(_ sealer: inout RecordSealer, _ buffer: UnsafeMutableRawBufferPointer, _ n: Int, _ countAllocs: Bool) throws -> UInt64 {
        var acc = 0
        if countAllocs { AllocCounter.start() }
        let t0 = nowNanoseconds()
        for _ in 0..<n {
            acc &+= try sealer.seal(plaintextCount: payload, in: buffer)
        }
        let t1 = nowNanoseconds()
        if countAllocs { AllocCounter.stop() }
        consume(UInt64(acc) &+ UInt64(buffer[40]))
        return t1 - t0
    }

    /// One `CipherState.seal` of 16 KiB: the AEAD call alone (one BoringSSL seal),
    /// to split the record layer's cost (two AEAD calls per record) from the cipher's.
    mutating func aeadOnly(records n: Int) throws -> UInt64 {
        try Self.aeadLoop(&aead, sealBuffer, n)
    }

    private static func aeadLoop(_ cipher: inout CipherState, _ buffer: UnsafeMutableRawBufferPointer, _ n: Int) throws -> UInt64 {
        let none = UnsafeRawBufferPointer(start: nil, count: 0)
        let body = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<(payload + RecordLayout.tagLength)])
        let t0 = nowNanoseconds()
        for _ in 0..<n {
            try cipher.seal(ad: none, buffer: body, plaintextCount: payload)
        }
        let t1 = nowNanoseconds()
        consume(UInt64(buffer[40]))
        return t1 - t0
    }

    mutating func openInPlace(records n: Int, countAllocs: Bool = false) throws -> UInt64 {
        try Self.openLoop(&peerSealer, &opener, batchBuffer, n, countAllocs)
    }

    private static func openLoop(_ sealer: inout RecordSealer, _ opener: inout RecordOpener,
                                 _ buffer: UnsafeMutableRawBufferPointer, _ n: Int, _ countAllocs: Bool) throws -> UInt64 {
        var total: UInt64 = 0
        var acc = 0
        for _ in 0..<max(1, n / batch) {
            // Untimed: the peer seals the next batch (each slot's plaintext is what the last open left).
            for r in 0..<batch {
                let slot = UnsafeMutableRawBufferPointer(rebasing: buffer[r * stride..<(r + 1) * stride])
                _ = try sealer.seal(plaintextCount: payload, in: slot)
            }
            if countAllocs { AllocCounter.start() }
            let t0 = nowNanoseconds()
            for r in 0..<batch {
                let base = r * stride
                let header = UnsafeMutableRawBufferPointer(rebasing: buffer[base..<base + RecordLayout.headerLength])
                let length = try opener.openHeader(header)
                let bodyStart = base + RecordLayout.headerLength
                let body = UnsafeMutableRawBufferPointer(rebasing: buffer[bodyStart..<bodyStart + length + RecordLayout.tagLength])
                acc &+= try opener.openBody(body)
            }
            let t1 = nowNanoseconds()
            if countAllocs { AllocCounter.stop() }
            total += t1 - t0
        }
        consume(UInt64(acc))
        return total
    }

    /// The session's path: seal appending to a reused array, then feed those bytes to a RecordReader.
    /// Returns (ns sealing, ns reading).
    mutating func stream(records n: Int, countAllocs: Bool = false) throws -> (seal: UInt64, read: UInt64) {
        try Self.streamLoop(&streamSealer, &reader, &wire, UnsafeRawBufferPointer(plaintext), n, countAllocs)
    }

    private static func streamLoop(_ sealer: inout RecordSealer, _ reader: inout RecordReader, _ wire: inout [UInt8],
                                   _ plaintext: UnsafeRawBufferPointer, _ n: Int, _ countAllocs: Bool) throws -> (seal: UInt64, read: UInt64) {
        var sealNs: UInt64 = 0, readNs: UInt64 = 0
        var acc = 0
        for _ in 0..<max(1, n / batch) {
            if countAllocs { AllocCounter.start() }
            let t0 = nowNanoseconds()
            wire.removeAll(keepingCapacity: true)
            for _ in 0..<batch {
                try sealer.seal(plaintext, appendingTo: &wire)
            }
            let t1 = nowNanoseconds()
            var failure: USPError?
            wire.withUnsafeBytes { (w: UnsafeRawBufferPointer) in
                for r in 0..<batch {
                    reader.append(UnsafeRawBufferPointer(rebasing: w[r * stride..<(r + 1) * stride]))
                    do throws(USPError) {
                        guard let count = try reader.nextRecord({ (p: UnsafeMutableRawBufferPointer) -> Int in p.count }) else {
                            preconditionFailure("a whole record was appended")
                        }
                        acc &+= count
                    } catch {
                        failure = error
                        return
                    }
                }
            }
            let t2 = nowNanoseconds()
            if countAllocs { AllocCounter.stop() }
            if let failure { throw failure }
            sealNs += t1 - t0
            readNs += t2 - t1
        }
        consume(UInt64(acc))
        return (sealNs, readNs)
    }
}

/// MB/s (10^6 bytes) for `records` 16 KiB plaintexts in `ns` nanoseconds.
func megabytesPerSecond(records: Int, ns: UInt64) -> Double {
    Double(records * RecordBench.payload) / (Double(ns) / 1e9) / 1e6
}
