import Foundation
import Testing
import USPTestSupport
@testable import USPStore

/// Audit retention in SQLite: by age, by size (oldest first), never the rows a live token may need.
@Suite struct AuditRetentionStoreTests {
    static func rows(_ n: Int, from start: Date, step: Double, detail: String = String(repeating: "x", count: 200)) -> [AuditEvent] {
        (0..<n).map { AuditEvent(time: start.addingTimeInterval(Double($0) * step), kind: .connectionClosed, session: "s-\($0)",
                                 peerAddress: "192.0.2.1", detail: detail) }
    }

    @Test func rowsOlderThanTheAgeGoButNeverThoseAfterKeepAfter() throws {
        let dir = TempDirectory()
        let store = try SQLiteStore(path: dir.file("usp.sqlite"))
        let now = Date()
        try store.appendAudit(Self.rows(100, from: now.addingTimeInterval(-100 * 86400), step: 86400))
        // Older than 30 days: 70 rows.
        let byAge = try store.pruneAudit(olderThan: now.addingTimeInterval(-30.5 * 86400), maxBytes: nil, keepAfter: now)
        #expect(byAge.deleted == 70)
        #expect(byAge.rowsLeft == 30)
        // keepAfter wins over the age.
        let kept = try store.pruneAudit(olderThan: now, maxBytes: nil, keepAfter: now.addingTimeInterval(-10.5 * 86400))
        #expect(kept.deleted == 20)
        #expect(try store.audit(identity: nil, since: nil, limit: nil).count == 10)
    }

    @Test func theOldestRowsGoUntilTheTrailFitsItsSize() throws {
        let dir = TempDirectory()
        let store = try SQLiteStore(path: dir.file("usp.sqlite"))
        let now = Date()
        try store.appendAudit(Self.rows(5000, from: now.addingTimeInterval(-5000), step: 1))
        let before = try store.auditFootprint()
        #expect(before.rows == 5000)
        #expect(before.bytes > 1_000_000)
        let result = try store.pruneAudit(olderThan: nil, maxBytes: 400_000, keepAfter: now)
        #expect(result.bytesLeft <= 400_000)
        #expect(result.rowsLeft == 5000 - result.deleted)
        #expect(result.rowsLeft > 500, "not more than needed: \(result.rowsLeft)")
        let left = try store.audit(identity: nil, since: nil, limit: nil)
        #expect(left.first?.session == "s-\(result.deleted)", "the oldest went first")
        // Under keepAfter, a trail over its size is kept.
        let none = try store.pruneAudit(olderThan: nil, maxBytes: 1000, keepAfter: now.addingTimeInterval(-10_000))
        #expect(none.deleted == 0)
    }

    @Test func summaryRowsKeepTheirCount() throws {
        let dir = TempDirectory()
        let store = try SQLiteStore(path: dir.file("usp.sqlite"))
        var e = AuditEvent(kind: .rateLimited, peerAddress: "198.51.100.0/24", result: "dropped", detail: "summary")
        e.count = 4711
        try store.appendAudit(e)
        #expect(try store.audit(identity: nil, since: nil, limit: nil).first?.count == 4711)
    }
}
