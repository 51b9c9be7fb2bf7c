import Testing
import USPAgent

struct AgentRateLimiterTests {
    let program = AgentRateLimiter.Key(uid: 1000, executable: "/usr/bin/ssh")

    @Test func burstThenRefillAtTheRate() {
        var limiter = AgentRateLimiter(rate: AgentRateLimiter.Rate(count: 60, perSeconds: 60, unit: "min"), burst: 3)
        #expect((0..<3).allSatisfy { _ in limiter.allow(program, now: 100) })
        #expect(!limiter.allow(program, now: 100))
        #expect(!limiter.allow(program, now: 100.5))
        #expect(limiter.allow(program, now: 101.6), "one open per second refills")
        #expect(!limiter.allow(program, now: 101.7))
        // A long pause refills up to the burst, not beyond.
        #expect((0..<3).allSatisfy { _ in limiter.allow(program, now: 1000) })
        #expect(!limiter.allow(program, now: 1000))
    }

    @Test func programsAreKeyedByUidAndExecutable() {
        var limiter = AgentRateLimiter(rate: AgentRateLimiter.Rate(count: 1, perSeconds: 3600, unit: "h"), burst: 1)
        #expect(limiter.allow(program, now: 0))
        #expect(!limiter.allow(program, now: 1))
        #expect(limiter.allow(.init(uid: 1000, executable: "/usr/bin/curl"), now: 1))
        #expect(limiter.allow(.init(uid: 1001, executable: "/usr/bin/ssh"), now: 1))
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
