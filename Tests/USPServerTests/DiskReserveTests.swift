import Foundation
import Testing
import USPTestSupport
@testable import USPServer
import USPStore
#if canImport(Glibc)
import Glibc
#endif

/// A full disk on a real file system (a small tmpfs, as root): the reserve lets grants go on,
/// strangers' rows are dropped and counted, and the reserve comes back when there is room.
@Suite(.serialized) struct DiskReserveTests {
    /// Mounts a tmpfs of `megabytes` at a fresh directory, or stops the test (a visible skip
    /// without root; a failure under `USP_REQUIRE_SHARED=1`, as CI runs as root).
    static func smallFileSystem(megabytes: Int) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("usp-full-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let mounted = dir.withCString { mount("tmpfs", $0, "tmpfs", 0, "size=\(megabytes)m") } == 0
        guard mounted else {
            let reason = "cannot mount a tmpfs (\(String(cString: strerror(errno)))): the full-disk test needs root"
            if ProcessInfo.processInfo.environment["USP_REQUIRE_SHARED"] == "1" {
                Issue.record("USP_REQUIRE_SHARED=1 and \(reason)")
                throw SocketError(reason)
            }
            print("SKIP: \(reason)")
            try Test.cancel("SKIP: \(reason)")
        }
        return dir
    }

    static func unmount(_ dir: String) {
        _ = umount2(dir, Int32(MNT_DETACH))
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// Writes zeros to `path` until the file system is full.
    static func fill(_ path: String) {
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0o600)
        defer { close(fd) }
        let chunk = [UInt8](repeating: 0, count: 4096)
        while chunk.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) > 0 {}
    }

    @Test func aFullDiskReleasesTheReserveForGrantsAndCountsTheStrangersRowsItDrops() throws {
        let dir = try Self.smallFileSystem(megabytes: 6)
        defer { Self.unmount(dir) }
        let store = try SQLiteStore(path: dir + "/usp.sqlite")
        let reserve = SpaceReserve(path: dir + "/usp.sqlite.reserve", bytes: 1_048_576)
        let log = AuditLog(store: store, flushInterval: .seconds(3600), reserve: reserve)
        #expect(reserve.isHeld)
        try log.record(AuditEvent(kind: .streamOpened, session: "s-0", peerAddress: "192.0.2.1", detail: "before"))

        Self.fill(dir + "/filler")
        // A stranger's row now is not even tried once the reserve is in use; a grant is written.
        #expect(throws: Never.self) {
            try log.recordToken(AuditLogTests.token("T1"), AuditEvent(kind: .tokenIssued, session: "s-1", peerAddress: "192.0.2.1"))
        }
        #expect(!reserve.isHeld, "the reserve was freed for the grant")
        #expect(try store.token(id: "T1") != nil)
        for i in 0..<20 {
            log.note(AuditEvent(kind: .authentication, session: "s-x\(i)", peerAddress: "198.51.100.9", identity: "alice",
                                result: "authentication_failed"))
        }
        #expect(log.strangerCounts.dropped == 20)
        // More grants still fit in the freed space.
        for i in 0..<20 {
            try log.record(AuditEvent(kind: .streamOpened, session: "s-\(i + 2)", peerAddress: "192.0.2.1"))
        }

        // Room again: the reserve comes back with the next write, and a gap row tells what was dropped.
        unlink(dir + "/filler")
        try log.record(AuditEvent(kind: .streamOpened, session: "s-99", peerAddress: "192.0.2.1"))
        log.flush()
        #expect(reserve.isHeld)
        let gap = try #require(try store.audit(identity: nil, since: nil, limit: nil).first { $0.kind == .auditGap })
        #expect(gap.count == 20)
        #expect(gap.detail?.contains("the disk was full") == true)
        #expect(log.strangerCounts.dropped == 0)
    }
}
