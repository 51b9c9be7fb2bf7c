import FoundationEssentials
import Synchronization
import USPClient

/// The streams the agent relays now, numbered from 1, for `status` and the close log line.
final class AgentStreamTable: Sendable {
    struct Entry: Sendable {
        let program: PeerProgram
        let server: String
        let application: String
        let tokenID: String?
        let openedAt: Date
        let counters: RelayCounters
    }

    private let state = Mutex<(next: Int, entries: [Int: Entry])>((1, [:]))

    func add(_ entry: Entry) -> Int {
        state.withLock { s in
            let id = s.next
            s.next += 1
            s.entries[id] = entry
            return id
        }
    }

    @discardableResult
    func remove(_ id: Int) -> Entry? {
        state.withLock { $0.entries.removeValue(forKey: id) }
    }

    func list(now: Date = Date()) -> [AgentStreamInfo] {
        state.withLock { s in
            s.entries.sorted { $0.key < $1.key }.map { id, e in
                AgentStreamInfo(stream: id, program: e.program, server: e.server, application: e.application, tokenID: e.tokenID,
                                bytesSent: e.counters.bytesSent, bytesReceived: e.counters.bytesReceived,
                                openedAt: e.openedAt.timeIntervalSince1970, age: now.timeIntervalSince(e.openedAt))
            }
        }
    }
}
