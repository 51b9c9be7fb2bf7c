#if canImport(Glibc)
import Glibc
#endif
import USPCore

/// One stream the agent relays, as `usp agent status` lists it.
public struct AgentStreamInfo: Hashable, Sendable {
    /// The agent's number for the stream (also in the `open` response and the log).
    public var stream: Int
    public var program: PeerProgram
    /// `host:port`.
    public var server: String
    public var application: String
    public var tokenID: String?
    /// Bytes from the program to the server, and back.
    public var bytesSent: Int
    public var bytesReceived: Int
    /// When it opened, seconds since the epoch, and its age in seconds.
    public var openedAt: Double
    public var age: Double

    public init(stream: Int, program: PeerProgram, server: String, application: String, tokenID: String?,
                bytesSent: Int, bytesReceived: Int, openedAt: Double, age: Double) {
        self.stream = stream
        self.program = program
        self.server = server
        self.application = application
        self.tokenID = tokenID
        self.bytesSent = bytesSent
        self.bytesReceived = bytesReceived
        self.openedAt = openedAt
        self.age = age
    }

    public var json: JSONValue {
        var o = program.json
        o["stream"] = .integer(Int64(stream))
        o["server"] = .string(server)
        o["application"] = .string(application)
        o["token_id"] = tokenID.map(JSONValue.string) ?? .null
        o["bytes_sent"] = .integer(Int64(bytesSent))
        o["bytes_received"] = .integer(Int64(bytesReceived))
        o["opened_at"] = .number(openedAt)
        o["age"] = .number(age)
        return .object(o)
    }

    public init?(json: JSONValue) {
        guard let o = json.objectValue, let stream = o["stream"]?.integerValue, let uid = o["uid"]?.integerValue,
              let pid = o["pid"]?.integerValue, let executable = o["executable"]?.stringValue,
              let server = o["server"]?.stringValue, let application = o["application"]?.stringValue,
              let sent = o["bytes_sent"]?.integerValue, let received = o["bytes_received"]?.integerValue,
              let openedAt = o["opened_at"]?.doubleValue, let age = o["age"]?.doubleValue else { return nil }
        let via = o["via_pid"]?.integerValue.flatMap { viaPID in
            o["via_executable"]?.stringValue.map { PeerProgram.Via(pid: pid_t(truncatingIfNeeded: viaPID), executable: $0) }
        }
        self.init(stream: Int(stream), program: PeerProgram(uid: uid_t(truncatingIfNeeded: uid), gid: 0, pid: pid_t(truncatingIfNeeded: pid),
                                                            executable: executable, via: via),
                  server: server, application: application, tokenID: o["token_id"]?.stringValue,
                  bytesSent: Int(sent), bytesReceived: Int(received), openedAt: openedAt, age: age)
    }
}
