import Testing
import USPAgent

struct AgentRateLimiterTests {
    let program = AgentRateLimiter.Key(uid: 1000, executable: "/usr/bin/ssh")

    /// How many of `n` opens at `now` are allowed.
    func take(_ n: Int, _ limiter: inout AgentRateLimiter, _ key: AgentRateLimiter.Key, now: Double) -> Int {
        var allowed = 0
        for _ in 0..<n where limiter.allow(key, now: now) { allowed += 1 }
        return allowed
    }

    @Test func burstThenRefillAtTheRate() {
        var limiter = AgentRateLimiter(rate: AgentRateLimiter.Rate(count: 60, perSeconds: 60, unit: "min"), burst: 3)
        #expect(take(3, &limiter, program, now: 100) == 3)
        #expect(take(1, &limiter, program, now: 100) == 0)
        #expect(take(1, &limiter, program, now: 100.5) == 0)
        #expect(take(1, &limiter, program, now: 101.6) == 1, "one open per second refills")
        #expect(take(1, &limiter, program, now: 101.7) == 0)
        // A long pause refills up to the burst, not beyond.
        #expect(take(3, &limiter, program, now: 1000) == 3)
        #expect(take(1, &limiter, program, now: 1000) == 0)
    }

    @Test func programsAreKeyedByUidAndExecutable() {
        var limiter = AgentRateLimiter(rate: AgentRateLimiter.Rate(count: 1, perSeconds: 3600, unit: "h"), burst: 1)
        #expect(take(1, &limiter, program, now: 0) == 1)
        #expect(take(1, &limiter, program, now: 1) == 0)
        #expect(take(1, &limiter, .init(uid: 1000, executable: "/usr/bin/curl"), now: 1) == 1)
        #expect(take(1, &limiter, .init(uid: 1001, executable: "/usr/bin/ssh"), now: 1) == 1)
    }

    @Test func ratesParse() throws {
        #expect(try AgentRateLimiter.Rate(parsing: "60/min").description == "60/min")
        #expect(try AgentRateLimiter.Rate(parsing: "5/s").count == 5)
        #expect(try AgentRateLimiter.Rate(parsing: "100/h").period == 3600)
        for bad in ["60", "0/min", "x/min", "5/fortnight", "-1/s", ""] {
            #expect(throws: AgentError.self, "\(bad)") { try AgentRateLimiter.Rate(parsing: bad) }
        }
    }
}
