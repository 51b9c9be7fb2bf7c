import NIOCore
import NIOPosix
import USPClient

/// One legitimate client, from 127.0.0.1 with the server's key pinned in the URI. An attempt is
/// timed from "start connecting" to being served:
/// - `echo`: IK with the client's identity key (registered with uspd), begin the public `echo`
///   application by name with one byte in message 1, and wait for that byte to come back;
/// - `passwordLogin`: NK (the home has no identity key), then a password login.
struct LegitClient: Sendable {
    enum Work: Sendable {
        case echo
        case passwordLogin(user: String, password: String)
    }

    let server: ServerURI
    let home: ClientHome
    let work: Work
    /// Connect and handshake deadlines (the attempt itself is timed by `LegitLoad`).
    let timeout: Double
    let group: any EventLoopGroup

    /// One session; throws what went wrong.
    func attempt() async throws {
        var options = USPConnectionOptions()
        options.serverKeyChecking = .strict
        options.connectTimeout = .milliseconds(Int64(timeout * 1000))
        options.handshakeTimeout = .milliseconds(Int64(timeout * 1000))
        options.eventLoopGroup = group
        switch work {
        case .echo:
            let byte = UInt8.random(in: 0x21...0x7e)
            let stream = try await USPConnection.connectDedicated(to: server, home: home, application: "echo", initialData: [byte], options: options)
            var echoed: UInt8?
            do {
                for try await chunk in stream.inbound {
                    guard let first = chunk.readableBytesView.first else { continue }
                    echoed = first
                    break
                }
            } catch {
                await stream.close()
                throw error
            }
            await stream.close()
            guard echoed == byte else { throw USPClientError(.connectionLost, echoed == nil ? "no_echo" : "wrong_echo") }
        case .passwordLogin(let user, let password):
            let connection = try await USPConnection.connect(to: server, home: home, options: options)
            do {
                _ = try await connection.login(user: user, password: password)
            } catch {
                await connection.close()
                throw error
            }
            await connection.close()
        }
    }

    /// A failure's short name for the report: the protocol code if there is one, else the client's.
    static func reason(_ error: any Error) -> String {
        if let e = error as? USPClientError {
            if let wire = e.wireCode { return wire.name }
            if e.code == .connectionLost, ["no_echo", "wrong_echo"].contains(e.message) { return e.message }
            return e.code.rawValue
        }
        return "\(type(of: error))"
    }
}

/// Legitimate attempts at a steady rate, each in a task of its own, so a slow one never delays
/// the schedule; outcomes go to `samples` (success only within its limit).
struct LegitLoad: Sendable {
    let client: LegitClient
    /// Attempts per second.
    let rate: Double

    /// Starts attempts for `seconds`, then waits for the last ones (at most the client's timeout
    /// and a second); those still running count as timeouts.
    func run(for seconds: Double, into samples: LegitSamples) async {
        let start = Monotonic.now()
        let interval = 1 / rate
        var n = 0
        let client = self.client
        while true {
            let due = start + Double(n) * interval
            guard due - start < seconds else { break }
            await Monotonic.sleep(due - Monotonic.now())
            samples.started()
            Task {
                let t0 = Monotonic.now()
                do {
                    try await client.attempt()
                    samples.succeeded(after: Monotonic.now() - t0)
                } catch {
                    samples.failed(LegitClient.reason(error))
                }
            }
            n += 1
        }
        let deadline = Monotonic.now() + client.timeout + 1
        while samples.finished < n, Monotonic.now() < deadline { await Monotonic.sleep(0.05) }
    }
}
