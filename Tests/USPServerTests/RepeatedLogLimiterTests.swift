import Testing
@testable import USPServer

/// A flood of one kind of line is cut to `burst` per interval, and the next line written says how
/// many were suppressed; other kinds are not affected.
@Suite struct RepeatedLogLimiterTests {
    @Test func aFloodIsCutAndSummedUp() {
        let limiter = RepeatedLogLimiter(burst: 3, interval: 10)
        var written = 0
        for i in 0..<1000 where limiter.admit("max_connections", now: Double(i) * 0.001).write { written += 1 }
        #expect(written == 3)
        // Another kind is not held back by the flood.
        #expect(limiter.admit("audit write failed", now: 0.5) == (true, 0))
        // The next window: written again, with the count of what was dropped.
        let next = limiter.admit("max_connections", now: 10.5)
        #expect(next.write && next.suppressed == 997)
        #expect(limiter.admit("max_connections", now: 10.6) == (true, 0))
    }

    @Test func memoryIsBounded() {
        let limiter = RepeatedLogLimiter(burst: 1, interval: 10, maxKinds: 100)
        for i in 0..<10_000 { _ = limiter.admit("kind \(i)", now: Double(i)) }
        #expect(limiter.admit("kind 9999", now: 10_000).write == false, "the newest kinds are kept")
    }
}
