/// Every byte the demo client put on or took off the wire, over all its connections, so the
/// demo can show that nothing readable crossed it.
final class WireTap {
    private(set) var sent: [UInt8] = []
    private(set) var received: [UInt8] = []
    private(set) var connections = 0

    func record(sent bytes: UnsafeRawBufferPointer) { sent.append(contentsOf: bytes) }
    func record(received bytes: UnsafeRawBufferPointer) { received.append(contentsOf: bytes) }
    func noteConnection() { connections += 1 }

    var totalBytes: Int { sent.count + received.count }

    /// The needles found in either direction, in the order given.
    func cleartextFound(_ needles: [String]) -> [String] {
        needles.filter { needle in
            let n = Array(needle.utf8)
            return Self.contains(sent, n) || Self.contains(received, n)
        }
    }

    private static func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        guard !needle.isEmpty, haystack.count >= needle.count else { return false }
        for start in 0...(haystack.count - needle.count) where haystack[start] == needle[0] {
            if haystack[start..<start + needle.count].elementsEqual(needle) { return true }
        }
        return false
    }
}

/// Bytes and flights on one connection. A flight is a run of bytes in one direction: each
/// change of direction starts a new one, so two flights make one round trip.
struct WireMeter {
    struct Delta: CustomStringConvertible {
        let sent: Int
        let received: Int
        var description: String { "→ \(sent) B  ← \(received) B" }
    }

    private enum Direction { case out, `in` }

    private(set) var sent = 0
    private(set) var received = 0
    private(set) var flights = 0
    private var direction: Direction?
    private var mark = (sent: 0, received: 0)

    mutating func countSent(_ n: Int) {
        guard n > 0 else { return }
        if direction != .out { flights += 1; direction = .out }
        sent += n
    }

    mutating func countReceived(_ n: Int) {
        guard n > 0 else { return }
        if direction != .in { flights += 1; direction = .in }
        received += n
    }

    /// Bytes since the previous call.
    mutating func takeDelta() -> Delta {
        defer { mark = (sent, received) }
        return Delta(sent: sent - mark.sent, received: received - mark.received)
    }
}
