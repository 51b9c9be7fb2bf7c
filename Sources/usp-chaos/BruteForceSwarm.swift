import NIOCore
import Synchronization
import USPClient
import USPCore

/// Password guessing against one user: `workers` USP sessions at once from the addresses of one
/// attacker network, each a USPClient connection (NK: the server key is public) that sends a
/// password login with a fresh wrong password as soon as the previous answer came back, and
/// connects again when uspd ends the session. So it guesses exactly as fast as uspd answers.
final class BruteForceSwarm: Sendable {
    struct Plan: Sendable {
        var sources: SourceAddresses
        var workers: Int
        var user: String
        var server: ServerURI
        /// An empty client home (no identity: NK, nothing saved).
        var home: ClientHome
    }

    struct Counters: Sendable {
        var connections = 0
        var connectFailures = 0
        /// Answers to guesses, by code (authentication_failed, rate_limited…; "accepted" would be a hit).
        var answers: [String: Int] = [:]
        /// Sessions that ended while guessing (uspd closed them).
        var sessionsEnded = 0
        var guesses: Int { answers.values.reduce(0, +) }
    }

    let plan: Plan
    private let group: any EventLoopGroup
    private let counters = Mutex(Counters())
    private let stopped = Mutex(false)
    private let tasks = Mutex<[Task<Void, Never>]>([])

    init(plan: Plan, group: any EventLoopGroup) {
        self.plan = plan
        self.group = group
    }

    func start() {
        let started = (0..<plan.workers).map { w in Task { await self.work(source: self.plan.sources[w]) } }
        tasks.withLock { $0 = started }
    }

    func snapshot() async -> Counters { counters.withLock { $0 } }

    func stop() async {
        stopped.withLock { $0 = true }
        for task in tasks.withLock({ $0 }) { await task.value }
    }

    private var isStopped: Bool { stopped.withLock { $0 } }

    private func work(source: String) async {
        var options = USPConnectionOptions()
        options.anonymous = true
        options.serverKeyChecking = .strict
        options.localAddress = source
        options.connectTimeout = .seconds(3)
        options.handshakeTimeout = .seconds(5)
        options.eventLoopGroup = group
        while !isStopped {
            counters.withLock { $0.connections += 1 }
            let connection: USPConnection
            do {
                connection = try await USPConnection.connect(to: plan.server, home: plan.home, options: options)
            } catch {
                counters.withLock { $0.connectFailures += 1 }
                await Monotonic.sleep(0.05)
                continue
            }
            while !isStopped {
                let guess = "guess-" + String(UInt64.random(in: 0...UInt64.max), radix: 36)
                do {
                    _ = try await connection.login(user: plan.user, password: guess)
                    counters.withLock { $0.answers["accepted", default: 0] += 1 }
                    break
                } catch let e as USPClientError {
                    guard e.code == .authenticationFailed || e.wireCode == .rateLimited else {
                        counters.withLock { $0.sessionsEnded += 1 }
                        break
                    }
                    counters.withLock { $0.answers[e.wireCode?.name ?? e.code.rawValue, default: 0] += 1 }
                } catch {
                    counters.withLock { $0.sessionsEnded += 1 }
                    break
                }
            }
            await connection.close()
        }
    }
}
