import Testing
@testable import USPCore
import USPTestSupport

/// Found by fuzz-snapshot (Fuzz/Regressions/snapshot/): a relay-free snapshot whose send direction
/// has a max_plaintext below what any hello allows, or a fixed padding too small for a DATA frame,
/// decoded, and the resumed session then trapped in `RecordComposer.reserve` on its first write:
/// such a snapshot must be refused when it is decoded. And a snapshot of a stream whose FIN uspd
/// had already sent made the application's own `finish` trap (a second FIN) in `StreamTable`; one
/// whose receive direction had counted more bytes than its rekey limit made the next record's
/// header overflow that count in `RecordOpener.openHeader`.
@Suite("Relay-free snapshot bounds")
struct SnapshotBoundsTests {
    /// A genuine snapshot's bytes and the offset of its send direction's max_plaintext.
    static func genuine() throws -> (bytes: [UInt8], sendMaxPlaintext: Int) {
        let pair = try DedicatedStreamSessionTests.dedicated()
        var server = pair.server
        let bytes = try server.beginHandoff(undeliveredData: pair.serverData[1]!).encoded()
        // magic 4, version 1, cipher 1, id length 1, id, then the send direction: key 32, nonce 8, max_plaintext 4.
        return (bytes, 7 + Int(bytes[6]) + 32 + 8)
    }

    static func setUInt32(_ bytes: inout [UInt8], at offset: Int, _ value: UInt32) {
        for k in 0..<4 { bytes[offset + k] = UInt8(truncatingIfNeeded: value >> (24 - 8 * k)) }
    }

    @Test(arguments: [UInt32(1), 8, 1023])
    func aSendMaxPlaintextBelowTheHelloMinimumIsRefused(_ value: UInt32) throws {
        var (bytes, offset) = try Self.genuine()
        Self.setUInt32(&bytes, at: offset, value)
        #expect(throws: USPError.self) { _ = try DedicatedStreamSnapshot(encoded: bytes) }
    }

    @Test(arguments: [UInt32(0), 1, 10, 1023, 65520])
    func aFixedPaddingThatLeavesNoRoomIsRefused(_ size: UInt32) throws {
        var (bytes, offset) = try Self.genuine()
        let padding = offset + 4 + 8 + 8 + 8  // after max_plaintext, rekey bytes, bytes_since_rekey, records
        bytes[padding] = 2
        Self.setUInt32(&bytes, at: padding + 1, size)
        #expect(throws: USPError.self) { _ = try DedicatedStreamSnapshot(encoded: bytes) }
    }

    @Test func theBoundsThemselvesAreAccepted() throws {
        var (bytes, offset) = try Self.genuine()
        Self.setUInt32(&bytes, at: offset, UInt32(Hello.minRecordPlaintext))
        let padding = offset + 4 + 8 + 8 + 8
        bytes[padding] = 2
        Self.setUInt32(&bytes, at: padding + 1, UInt32(Hello.minRecordPlaintext))
        var session = try DedicatedStreamSession(resuming: try DedicatedStreamSnapshot(encoded: bytes))
        session.resume { _ in }
        let written = try [UInt8](repeating: 7, count: 3000).withUnsafeBytes { try session.write($0) }
        #expect(written > 0)
    }

    @Test func finishingAStreamThatUspdHadAlreadyFinishedSendsNothingMore() throws {
        var (bytes, offset) = try Self.genuine()
        // After the send direction (68 bytes), padding (5), the receive direction (68),
        // pending_body_length (4), five u32 limits (20) and four u32 stream ids (16): the flags.
        let flags = offset - 32 - 8 + 68 + 5 + 68 + 4 + 20 + 16
        #expect(bytes[flags] == 0)
        bytes[flags] = 1  // local_finished
        let snapshot = try DedicatedStreamSnapshot(encoded: bytes)
        #expect(snapshot.stream.localFinished && !snapshot.stream.peerFinished)
        var session = try DedicatedStreamSession(resuming: snapshot)
        session.resume { _ in }
        _ = session.drainOutbound { $0.count }
        var closed = false
        try session.finish { if case .streamClosed = $0 { closed = true } }
        #expect(!closed)
        #expect(session.outboundByteCount == 0)
        #expect(session.streamIsOpen)
    }

    @Test(arguments: [UInt64.max - 3, UInt64(1 << 32) + 1])
    func aReceiveCountAboveItsRekeyLimitIsRefused(_ count: UInt64) throws {
        var (bytes, offset) = try Self.genuine()
        // The receive direction follows the send direction (68 bytes) and the padding (5): key 32,
        // nonce 8, max_plaintext 4, rekey limit 8 (2^32 here), then bytes_since_rekey.
        let since = offset - 32 - 8 + 68 + 5 + 32 + 8 + 4 + 8
        for k in 0..<8 { bytes[since + k] = UInt8(truncatingIfNeeded: count >> (56 - 8 * k)) }
        #expect(throws: USPError.self) { _ = try DedicatedStreamSnapshot(encoded: bytes) }
    }
}
