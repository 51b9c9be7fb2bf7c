import Foundation
import Logging
import NIOCore
import PostgresNIO
import USPStore

/// LISTEN on `usp_revocations` over a connection of its own, reconnecting (100 ms, doubling to
/// 5 s) whenever it is lost. Each notification's payload is token IDs separated by commas
/// (`PostgresStore` sends them in the transaction that revokes, so they arrive on commit).
final class PostgresRevocationListener: RevocationFollowing, @unchecked Sendable {
    static let channel = "usp_revocations"

    private let pool: PostgresConnectionPool
    private let logger: Logger
    private let revoked: @Sendable ([String]) -> Void
    private let connected: @Sendable () -> Void
    private let lock = NSLock()
    private var stopped = false
    private var connection: PostgresConnection?
    private var thread: Thread?

    init(pool: PostgresConnectionPool, logger: Logger, revoked: @escaping @Sendable ([String]) -> Void,
         connected: @escaping @Sendable () -> Void) {
        self.pool = pool
        self.logger = logger
        self.revoked = revoked
        self.connected = connected
    }

    func start() {
        let t = Thread { [self] in run() }
        t.name = "usp-revocations"
        thread = t
        t.start()
    }

    private var isStopped: Bool { lock.lock(); defer { lock.unlock() }; return stopped }

    private func run() {
        var delay = 0.1
        var failedBefore = false
        while !isStopped {
            do {
                let c = try PostgresConnection.connect(on: pool.group.next(), configuration: try pool.configuration, id: 0, logger: logger)
                    .blockingResult()
                lock.lock()
                if stopped { lock.unlock(); _ = try? c.close().blockingResult(); return }
                connection = c
                lock.unlock()
                let revoked = self.revoked
                c.addListener(channel: Self.channel) { _, notification in
                    revoked(notification.payload.split(separator: ",").map(String.init))
                }
                _ = try c.query("LISTEN usp_revocations", logger: logger).blockingResult()
                if failedBefore { logger.notice("revocation feed from \(pool.location.displayURL) is back") }
                failedBefore = false
                delay = 0.1
                connected()
                // Until the connection ends (server restart, network), or stop() closes it.
                _ = try? c.closeFuture.blockingResult(timeout: .hours(24 * 365))
                lock.lock(); connection = nil; lock.unlock()
                if isStopped { return }
                logger.warning("revocation feed from \(pool.location.displayURL) lost; reconnecting")
                failedBefore = true
            } catch {
                if !failedBefore {
                    logger.warning("revocation feed from \(pool.location.displayURL): \(PostgresStore.storeError(error, location: pool.location.displayURL, doing: "listen").message); retrying")
                }
                failedBefore = true
            }
            Thread.sleep(forTimeInterval: delay)
            delay = min(delay * 2, 5)
        }
    }

    func stop() {
        lock.lock()
        stopped = true
        let c = connection
        lock.unlock()
        _ = try? c?.close().blockingResult()
    }
}

/// Splits token IDs into NOTIFY payloads below PostgreSQL's 8000-byte limit.
enum PostgreSQLNotifyPayload {
    static let limit = 7000

    static func chunks(_ ids: [String]) -> [String] {
        var out: [String] = []
        var current = ""
        for id in ids {
            if !current.isEmpty, current.utf8.count + 1 + id.utf8.count > limit {
                out.append(current)
                current = ""
            }
            current += current.isEmpty ? id : "," + id
        }
        if !current.isEmpty { out.append(current) }
        return out
    }
}
