import Foundation
import NIOCore
import Testing
import USPApp
import USPConfig
import USPCore
import USPTestSupport
@testable import USPServer
import USPStore

/// The daemon in-process with a `relay_free` unix application served by USPApp in the same
/// process: a dedicated connection is handed over relay-free, a stream opened with OPEN on a menu
/// connection is relayed (it shares its connection with the menu, so it cannot be handed over).
@Suite("relay-free hand-off in the daemon", .serialized)
struct RelayFreeDaemonTests {
    /// Echoes every session and records whether it came relay-free.
    final class EchoApplication: @unchecked Sendable {
        private let lock = NSLock()
        private var seen: [Bool] = []
        var relayFree: [Bool] { lock.withLock { seen } }
        private(set) var task: Task<Void, Never>?
        /// Off the cooperative pool: the blocking tests running beside this one cannot delay it.
        private let executor = QueueTaskExecutor(label: "relay-free echo")

        init(socket: String) throws {
            let sessions = try ApplicationListener.listening(at: socket, executor: executor)
            task = Task(executorPreference: executor) { [self] in
                await withDiscardingTaskGroup { group in
                    for await session in sessions {
                        lock.withLock { seen.append(session.metadata.relayFree) }
                        group.addTask {
                            try? await session.channel.executeThenClose { inbound, outbound in
                                for try await buffer in inbound { try await outbound.write(buffer) }
                                outbound.finish()
                            }
                        }
                    }
                }
            }
        }
    }

    /// A daemon serving `rf`, a relay-free unix application echoed by `EchoApplication`; `body`
    /// runs on a thread of its own (the clients block on their sockets) so that everything on
    /// the cooperative pool keeps running meanwhile.
    func withRelayFreeEcho(_ body: @escaping @Sendable (TestDaemon, EchoApplication) throws -> Void) async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("rf-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let socket = dir.appendingPathComponent("rf.sock").path
        let app = try EchoApplication(socket: socket)
        defer { app.task?.cancel() }
        let d = try TestDaemon(listen: ["127.0.0.1:0"])
        d.applications.withLock {
            $0.append(ApplicationDefinition(name: "rf", visibility: .public, launch: .unix(path: socket, relayFree: true)))
        }
        try await withDaemon(d) { d in try await onThread { try body(d, app) } }
    }

    @Test func dedicatedConnectionIsHandedOverAndAMenuStreamIsRelayed() async throws {
        try await withRelayFreeEcho { d, app in try Self.exchange(d, app) }
    }

    /// The client's bytes that reach uspd while it hands the connection over (after the stream is
    /// accepted, before the application has the socket) are in the snapshot and reach the
    /// application: sent at a range of moments around the hand-off, every connection echoes all.
    @Test func bytesSentDuringTheHandOffReachTheApplication() async throws {
        try await withRelayFreeEcho { d, _ in
            let menu = try d.menuClient()
            let rf = try #require(menu.log.index(of: "rf"))
            for attempt in 1...12 {
                try menu.request([rf: [:]])
                let token = try #require(menu.log.token(at: rf))
                usleep(80_000)  // under the per-source handshake rate (20/s, burst 5)
                let dedicated = try SocketClient(port: d.port4)
                try dedicated.start(ClientStart(application: .init(token: token), initialData: Array("early ".utf8)))
                let accepted = try dedicated.pump(timeout: 20) { $0.notes.contains(.accepted(1)) }
                #expect(accepted, "attempt \(attempt): \(dedicated.log.notes)")
                // Right after the acceptance (odd attempts) or a little later: the bytes reach
                // uspd before, during or after its hand-off.
                if attempt % 2 == 0 { usleep(useconds_t(attempt * 100)) }
                try dedicated.write(1, "and during")
                let echoed = try dedicated.pump(timeout: 20) { _ in dedicated.text(1) == "early and during" }
                #expect(echoed, "attempt \(attempt): echoed \(dedicated.text(1).debugDescription), notes \(dedicated.log.notes)")
            }
        }
    }

    static func exchange(_ d: TestDaemon, _ app: EchoApplication) throws {
        let menu = try d.menuClient()
        let rf = try #require(menu.log.index(of: "rf"))
        try menu.request([rf: [:]])
        let viaOpen = try #require(menu.log.token(at: rf))
        try menu.request([rf: [:]])
        let dedicatedToken = try #require(menu.log.token(at: rf))

        // OPEN on the menu connection: relayed.
        let s = try menu.session.openStream(applicationToken: viaOpen)
        try menu.flush()
        try menu.write(s, "through uspd")
        #expect(try menu.pump(timeout: 20) { _ in menu.text(s) == "through uspd" })
        #expect(app.relayFree == [false])

        // A connection of its own: relay-free, early data included, FIN both ways.
        let dedicated = try SocketClient(port: d.port4)
        try dedicated.start(ClientStart(application: .init(token: dedicatedToken), initialData: Array("early ".utf8)))
        #expect(try dedicated.pump(timeout: 20) { $0.notes.contains(.accepted(1)) })
        try dedicated.write(1, "and later")
        let echoed = try dedicated.pump(timeout: 20) { _ in dedicated.text(1) == "early and later" }
        #expect(echoed, "echoed \(dedicated.text(1).debugDescription), notes \(dedicated.log.notes)")
        #expect(app.relayFree == [false, true])
        try dedicated.session.finish(stream: 1) { _ in }
        try dedicated.flush()
        #expect(try dedicated.pump(timeout: 20) { $0.closedCode(1) == "ok" })

        Thread.sleep(forTimeInterval: 0.2)
        let handedOff = d.store.allAudit.filter { $0.kind == .streamHandedOff }
        #expect(handedOff.count == 1)
        #expect(handedOff.first?.application == "rf")
        #expect(handedOff.first?.tokenID == (try TokenProof.tokenID(secret: dedicatedToken)).description)
        #expect(d.store.allAudit.contains { $0.kind == .connectionClosed && $0.result == "handed_off" })
        // The menu connection's stream is still relayed by uspd.
        try menu.write(s, " again")
        #expect(try menu.pump(timeout: 20) { _ in menu.text(s) == "through uspd again" })
    }

    func onThread(_ body: @escaping @Sendable () throws -> Void) async throws {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
            Thread { c.resume(with: Result { try body() }) }.start()
        }
    }
}
