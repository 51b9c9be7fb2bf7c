import PropertyBased
import Testing
@testable import USPCore

private func eph(_ n: UInt64) -> [UInt8] { HSSeededRandom(seed: n).bytes(32) }
private func at(_ s: UInt64, _ ns: UInt32 = 0) -> Timestamp { Timestamp(seconds: s, nanoseconds: ns) }

@Suite("ReplayGuard")
struct ReplayGuardTests {
    let t0: UInt64 = 1_700_000_000

    @Test("an ephemeral is accepted once, then replayed")
    func acceptOnce() {
        var g = ReplayGuard(window: 120)
        let e = eph(1)
        #expect(g.check(ephemeral: e, timestamp: at(t0), now: at(t0)) == .accept)
        #expect(g.count == 1)
        #expect(g.check(ephemeral: e, timestamp: at(t0), now: at(t0)) == .replayed)
        #expect(g.check(ephemeral: e, timestamp: at(t0 + 10), now: at(t0 + 30)) == .replayed, "a rewritten timestamp does not help")
        #expect(g.check(ephemeral: eph(2), timestamp: at(t0), now: at(t0)) == .accept)
        #expect(g.count == 2)
    }

    @Test("timestamps more than one window old are stale, more than one window ahead are future")
    func timestampWindow() {
        var g = ReplayGuard(window: 120)
        let now = at(t0)
        #expect(g.check(ephemeral: eph(1), timestamp: at(t0 - 121), now: now) == .staleTimestamp)
        #expect(g.check(ephemeral: eph(2), timestamp: at(t0 - 120, 1), now: at(t0, 1)) == .accept, "exactly one window is still fresh")
        #expect(g.check(ephemeral: eph(3), timestamp: at(t0 - 120), now: at(t0, 1)) == .staleTimestamp, "a nanosecond past the window")
        #expect(g.check(ephemeral: eph(4), timestamp: at(t0 + 121), now: now) == .futureTimestamp)
        #expect(g.check(ephemeral: eph(5), timestamp: at(t0 + 120), now: now) == .accept)
        #expect(g.check(ephemeral: eph(6), timestamp: at(0), now: now) == .staleTimestamp)
        #expect(g.check(ephemeral: eph(7), timestamp: at(.max / 2), now: now) == .futureTimestamp)
        // Refused messages are not remembered.
        #expect(g.count == 2)
        #expect(g.check(ephemeral: eph(1), timestamp: now, now: now) == .accept)
    }

    @Test("entries expire after two windows, not before")
    func expiry() {
        var g = ReplayGuard(window: 10)
        let e = eph(1)
        #expect(g.check(ephemeral: e, timestamp: at(t0), now: at(t0)) == .accept)
        // Within 2×window the same ephemeral, even with a fresh timestamp, is a replay.
        #expect(g.check(ephemeral: e, timestamp: at(t0 + 20), now: at(t0 + 20)) == .replayed)
        #expect(g.count == 1)
        // Just past 2×window it has been forgotten (its old timestamp would be stale by now anyway).
        #expect(g.check(ephemeral: e, timestamp: at(t0), now: at(t0 + 20, 1)) == .staleTimestamp)
        #expect(g.count == 0)
        #expect(g.check(ephemeral: e, timestamp: at(t0 + 20), now: at(t0 + 20, 1)) == .accept)
    }

    @Test("at capacity new ephemerals get cacheFull until entries expire")
    func capacity() {
        var g = ReplayGuard(window: 10, capacity: 3)
        for i in 0..<3 { #expect(g.check(ephemeral: eph(UInt64(i)), timestamp: at(t0), now: at(t0 + UInt64(i))) == .accept) }
        #expect(g.check(ephemeral: eph(10), timestamp: at(t0), now: at(t0 + 3)) == .cacheFull)
        #expect(g.check(ephemeral: eph(0), timestamp: at(t0), now: at(t0 + 3)) == .replayed, "known entries still read as replays")
        #expect(g.count == 3)
        // The first entry (seen at t0) expires after t0 + 20: exactly one slot frees up.
        #expect(g.check(ephemeral: eph(10), timestamp: at(t0 + 21), now: at(t0 + 21)) == .accept)
        #expect(g.check(ephemeral: eph(11), timestamp: at(t0 + 21), now: at(t0 + 21)) == .cacheFull)
        #expect(g.count == 3)
    }

    @Test("a large cache keeps working across compaction of its expiry queue")
    func manyEntries() {
        var g = ReplayGuard(window: 5, capacity: 10_000)
        var t = t0
        for round in 0..<4 {
            for i in 0..<2_000 {
                let e = eph(UInt64(round * 10_000 + i))
                #expect(g.check(ephemeral: e, timestamp: at(t), now: at(t)) == .accept)
            }
            #expect(g.count == 2_000)
            // Every entry of this round is still remembered.
            #expect(g.check(ephemeral: eph(UInt64(round * 10_000)), timestamp: at(t), now: at(t)) == .replayed)
            #expect(g.check(ephemeral: eph(UInt64(round * 10_000 + 1_999)), timestamp: at(t), now: at(t)) == .replayed)
            t += 11  // more than 2×window: the whole round expires on the next check
        }
    }

    @Test("keys are compared on their first 16 bytes")
    func prefixKey() {
        var g = ReplayGuard()
        let a = eph(1)
        var b = a
        b[31] ^= 0xFF
        var c = a
        c[15] ^= 0x01
        #expect(g.check(ephemeral: a, timestamp: at(t0), now: at(t0)) == .accept)
        #expect(g.check(ephemeral: b, timestamp: at(t0), now: at(t0)) == .replayed)
        #expect(g.check(ephemeral: c, timestamp: at(t0), now: at(t0)) == .accept)
    }

    @Test("property: a recorded message 1 is never accepted twice, whenever it is replayed")
    func neverAcceptedTwice() async {
        // sent: the client's timestamp; skew: server clock minus client clock at first receipt;
        // delays: later replays. Other traffic in between drives expiry.
        let gen = zip(Gen.int(in: -150...150), Gen.int(in: 0...2_000).array(of: 1...8), Gen.uint64(in: 1...1_000))
        await propertyCheck(count: 300, input: gen) { skew, delays, seed in
            var g = ReplayGuard(window: 120, capacity: 1_000)
            let sent = 1_700_000_000 as UInt64
            let first = UInt64(Int(sent) + skew)
            let e = eph(seed)
            let firstVerdict = g.check(ephemeral: e, timestamp: at(sent), now: at(first))
            var accepted = firstVerdict == .accept ? 1 : 0
            #expect(abs(skew) <= 120 ? firstVerdict == .accept : firstVerdict != .accept)
            var now = first
            for (i, d) in delays.sorted().enumerated() {
                now = first + UInt64(d)
                _ = g.check(ephemeral: eph(seed &+ 10_000 &+ UInt64(i)), timestamp: at(now), now: at(now))
                if g.check(ephemeral: e, timestamp: at(sent), now: at(now)) == .accept { accepted += 1 }
            }
            #expect(accepted <= 1)
        }
    }
}

@Suite("Timestamp")
struct ReplayGuardTimestampTests {
    @Test("seconds(since:) is signed and includes nanoseconds; ordering is lexicographic")
    func arithmetic() {
        let a = Timestamp(seconds: 10, nanoseconds: 500_000_000)
        let b = Timestamp(seconds: 12, nanoseconds: 0)
        #expect(b.seconds(since: a) == 1.5)
        #expect(a.seconds(since: b) == -1.5)
        #expect(a < b)
        #expect(Timestamp(seconds: 10, nanoseconds: 1) > Timestamp(seconds: 10))
        #expect(!(b < b))
    }
}
