import USPCore

/// Genuine relay-free snapshots: a real client begins an application by name on a dedicated
/// connection, and the server session hands it off (`ServerSession.beginHandoff`).
public enum Snapshots {
    /// (name, snapshot) pairs: with nothing pending, with undelivered stream bytes, with unread
    /// input (records the client sent after the hand-off began), and with unwritten output.
    public static func all() -> [(name: String, snapshot: DedicatedStreamSnapshot)] {
        var out: [(name: String, snapshot: DedicatedStreamSnapshot)] = []
        for variant in 0..<4 {
            var pair = MemoryPair(mode: variant == 3 ? MemoryPair.anonymous : MemoryPair.knownServer, seed: UInt64(10 + variant))
            pair.serverConsumes = variant != 1
            try! pair.client.start(ClientStart(application: .init(name: "echo"), initialData: Array("early bytes".utf8)), now: pair.now)
            pair.pump()
            guard let stream = pair.server.dedicatedStream, let clientStream = pair.client.applicationStream else { continue }
            var unread: [UInt8] = []
            if variant == 2 {
                _ = try! Array("after the hand-off".utf8).withUnsafeBytes { try pair.client.write(stream: clientStream, $0) }
                unread = pair.client.drainOutbound { Array($0) }
            }
            let undelivered = variant == 1 ? pair.serverData[stream] ?? [] : []
            let unwritten: [UInt8] = variant == 3 ? [UInt8](repeating: 0xAB, count: 40) : []
            guard let snapshot = try? pair.server.beginHandoff(undeliveredData: undelivered, unreadInput: unread, unwrittenOutput: unwritten) else { continue }
            out.append((["idle", "undelivered", "unread", "unwritten"][variant], snapshot))
        }
        return out
    }
}
