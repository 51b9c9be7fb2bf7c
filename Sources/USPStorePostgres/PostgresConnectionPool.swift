import Dispatch
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
        if error is PostgresTimeout { return true }
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
                    return try PostgresConnection.connect(on: group.next(), configuration: try configuration, id: id, logger: logger).blockingResult()
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
            _ = try? connection.close().blockingResult()
            return
        }
        idle.append(connection)
        lock.signal()
        lock.unlock()
    }

    private func discard(_ connection: PostgresConnection) {
        _ = try? connection.close().blockingResult()
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
        for c in all { _ = try? c.close().blockingResult() }
        group.shutdownGracefully { _ in }
    }
}

/// A query that got no answer in time: its connection is dropped (as a lost one).
struct PostgresTimeout: Error, CustomStringConvertible {
    let seconds: Int64
    var description: String { "no answer from the database server within \(seconds) s" }
}

extension EventLoopFuture {
    /// The result, waited for on this thread. Unlike `wait()` it may be called on any thread,
    /// an event loop of the daemon's included: the futures here complete on the pool's own
    /// loop, never on the caller's, so the wait cannot block the work it waits for.
    func blockingResult(timeout: TimeAmount = .seconds(10)) throws -> Value {
        let semaphore = DispatchSemaphore(value: 0)
        let box = ResultBox<Value>()
        whenComplete { result in
            box.set(result)
            semaphore.signal()
        }
        guard semaphore.wait(timeout: .now() + .nanoseconds(Int(timeout.nanoseconds))) == .success, let result = box.get() else {
            throw PostgresTimeout(seconds: timeout.nanoseconds / 1_000_000_000)
        }
        return try result.get()
    }
}

/// The one value a completed future hands over to the waiting thread.
final class ResultBox<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var result: Result<Value, any Error>?
    func set(_ r: Result<Value, any Error>) { lock.lock(); result = r; lock.unlock() }
    func get() -> Result<Value, any Error>? { lock.lock(); defer { lock.unlock() }; return result }
}
