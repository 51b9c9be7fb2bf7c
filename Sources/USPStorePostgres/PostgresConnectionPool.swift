import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import PostgresNIO
import USPStore

/// A few PostgreSQL connections for blocking callers: `withConnection` waits for a free one (or
/// opens it), runs the body, and gives it back. The store's protocol is synchronous (the daemon
/// calls it from its thread pool and from the admin commands' main thread), so each query is a
/// future waited for on the caller's thread; the connections live on an event loop group of their
/// own, never on the daemon's, so a wait can never block the loop it waits for.
///
/// A connection that fails (the server restarted, the network dropped) is closed and replaced
/// on the next use: callers see one failed call, then the store works again by itself.
final class PostgresConnectionPool: @unchecked Sendable {
    let location: PostgresLocation
    let group: MultiThreadedEventLoopGroup
    let logger: Logger
    private let lock = NSCondition()
    private var idle: [PostgresConnection] = []
    private var open = 0
    private var closed = false
    private var nextID = 0
    let capacity: Int
    /// How long a query may wait for a free connection or for the server to answer.
    let timeout: TimeAmount

    init(location: PostgresLocation, capacity: Int = 4, timeout: TimeAmount = .seconds(10), logger: Logger) {
        self.location = location
        self.capacity = max(1, capacity)
        self.timeout = timeout
        self.logger = logger
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    }

    deinit { close() }

    var configuration: PostgresConnection.Configuration {
        get throws {
            var c: PostgresConnection.Configuration
            switch location.endpoint {
            case .tcp(let host, let port):
                let tls: PostgresConnection.Configuration.TLS
                switch location.tls {
                case .disable: tls = .disable
                case .verifyFull: tls = .require(try NIOSSLContext(configuration: .makeClientConfiguration()))
                }
                c = .init(host: host, port: port, username: location.user, password: location.password, database: location.database, tls: tls)
            case .unixSocket(let path):
                c = .init(unixSocketPath: path, username: location.user, password: location.password, database: location.database)
            }
            c.options.connectTimeout = timeout
            return c
        }
    }

    /// Runs `body` with a connection of its own. A connection whose use threw a connection-level
    /// error is dropped; one that threw a statement error (a constraint, a bad query) is kept.
    func withConnection<T>(_ body: (PostgresConnection) throws -> T) throws -> T {
        let connection = try take()
        do {
            let result = try body(connection)
            give(connection)
            return result
        } catch {
            if Self.isConnectionLost(error) || connection.isClosed {
                discard(connection)
            } else {
                give(connection)
            }
            throw error
        }
    }

    static func isConnectionLost(_ error: any Error) -> Bool {
        guard let e = error as? PSQLError else { return error is ChannelError || error is IOError }
        switch e.code {
        case .server: return false
        default: return true
        }
    }

    private func take() throws -> PostgresConnection {
        lock.lock()
        let deadline = Date().addingTimeInterval(Double(timeout.nanoseconds) / 1e9)
        while true {
            if closed { lock.unlock(); throw StoreError(.closed, path: location.displayURL, "the store was closed") }
            if let c = idle.popLast() {
                lock.unlock()
                if c.isClosed { discard(c); lock.lock(); continue }
                return c
            }
            if open < capacity {
                open += 1
                nextID += 1
                let id = nextID
                lock.unlock()
                do {
                    return try PostgresConnection.connect(on: group.next(), configuration: try configuration, id: id, logger: logger).wait()
                } catch {
                    lock.lock(); open -= 1; lock.broadcast(); lock.unlock()
                    throw error
                }
            }
            guard lock.wait(until: deadline) else {
                lock.unlock()
                throw StoreError(.io, path: location.displayURL, "no database connection free within \(timeout.nanoseconds / 1_000_000_000) s")
            }
        }
    }

    private func give(_ connection: PostgresConnection) {
        lock.lock()
        if closed {
            open -= 1
            lock.unlock()
            _ = try? connection.close().wait()
            return
        }
        idle.append(connection)
        lock.signal()
        lock.unlock()
    }

    private func discard(_ connection: PostgresConnection) {
        _ = try? connection.close().wait()
        lock.lock()
        open -= 1
        lock.signal()
        lock.unlock()
    }

    /// Closes the idle connections and stops the event loop; connections in use are closed as
    /// they come back. Idempotent.
    func close() {
        lock.lock()
        if closed { lock.unlock(); return }
        closed = true
        let all = idle
        idle = []
        open -= all.count
        lock.broadcast()
        lock.unlock()
        for c in all { _ = try? c.close().wait() }
        try? group.syncShutdownGracefully()
    }
}
