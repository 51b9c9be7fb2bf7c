import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import USPCore

/// The agent's accountability record: one JSON object per line in `$USP_HOME/agent.log`
/// (mode 0600, appended), and the same event as one readable line on stderr.
///
///     {"event":"open","time":"2025-…Z","stream":3,"uid":1000,"pid":4242,"executable":"/usr/bin/ssh",
///      "server":"127.0.0.1:7300","application":"ssh","token_id":"Xk3…"}
///     {"event":"close","stream":3,…,"bytes_sent":2811,"bytes_received":40312,"duration":12.5}
///     {"event":"refused","code":"rate_limited","message":"…","uid":…,"pid":…,"executable":…}
///
/// Events: `started`, `stopped`, `open`, `close`, `refused` (the request got `ok:false`).
public final class AgentLog: Sendable {
    public let path: String
    private let fd: CInt
    private let toStderr: Bool
    private let lock = Mutex(())

    /// Opens (creates) the log for appending. An existing log of another user, or one that others
    /// can write, is refused.
    public init(path: String, toStderr: Bool = true) throws(AgentError) {
        self.path = path
        self.toStderr = toStderr
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw AgentError(.systemCall, "cannot open the log \(path): \(String(cString: strerror(errno)))") }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_uid == geteuid(), info.st_mode & 0o022 == 0 else {
            close(fd)
            throw AgentError(.unsafeSocket, "the log \(path) belongs to another user or others can write it; remove it")
        }
        self.fd = fd
    }

    deinit { close(fd) }

    /// Writes `event` with `fields`, stamped with the time (UTC, ISO 8601 with milliseconds).
    public func record(_ event: String, _ fields: [String: JSONValue], now: Date = Date()) {
        var object = fields
        object["event"] = .string(event)
        object["time"] = .string(Self.timestamp(now))
        guard let line = try? JSONValue.object(object).encoded() else { return }
        lock.withLock { _ in
            _ = (line + [0x0A]).withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if toStderr {
                let text = "usp agent: \(event) " + fields.sorted { $0.key < $1.key }.map { "\($0.key)=\(Self.text($0.value))" }.joined(separator: " ") + "\n"
                _ = Array(text.utf8).withUnsafeBytes { Glibc.write(STDERR_FILENO, $0.baseAddress, $0.count) }
            }
        }
    }

    static func text(_ value: JSONValue) -> String {
        switch value {
        case .string(let s): s.contains(" ") ? "\"\(s)\"" : s
        case .null: "-"
        default: (try? value.encoded()).map { String(decoding: $0, as: UTF8.self) } ?? "?"
        }
    }

    static func timestamp(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true, timeZone: .gmt))
    }
}
