#if canImport(Glibc)
import Glibc
#endif
import USPCore

/// The agent's answer, one per request:
///
///     {"ok":true,"stream":3,"token_id":"Xk3…","server":"127.0.0.1:7300","application":"ssh"}   + the descriptor
///     {"ok":true,"pid":4242,"streams":[{…}, …]}                                                 (status)
///     {"ok":false,"code":"rate_limited","message":"…"}
public enum AgentResponse: Hashable, Sendable {
    /// An open stream: the descriptor travels with the response.
    case opened(stream: Int, tokenID: String?, server: String, application: String)
    case status(AgentStatus)
    case failed(AgentError)

    public func encoded() -> [UInt8] {
        var o: [String: JSONValue]
        switch self {
        case .opened(let stream, let tokenID, let server, let application):
            o = ["ok": true, "stream": .integer(Int64(stream)), "server": .string(server), "application": .string(application),
                 "token_id": tokenID.map(JSONValue.string) ?? .null]
        case .status(let status):
            o = ["ok": true, "streams": .array(status.streams.map(\.json))]
            if let pid = status.pid { o["pid"] = .integer(Int64(pid)) }
        case .failed(let error):
            o = ["ok": false, "code": .string(error.code.rawValue), "message": .string(error.message)]
        }
        return (try? JSONValue.object(o).encoded()) ?? Array(#"{"ok":false,"code":"system_call","message":"cannot encode the response"}"#.utf8)
    }

    /// Parses an answer (client side). `expectingStatus` says which success shape to read.
    public static func parse(_ body: [UInt8], expectingStatus: Bool) throws(AgentError) -> AgentResponse {
        func bad(_ why: String) -> AgentError { AgentError(.protocolViolation, "the agent's answer \(why)") }
        guard let json = try? JSONValue.parse(body), let o = json.objectValue, let ok = o["ok"]?.boolValue else {
            throw bad("is not a JSON object with \"ok\"")
        }
        guard ok else {
            guard let code = o["code"]?.stringValue else { throw bad("has no \"code\"") }
            return .failed(AgentError(AgentError.Code(code), o["message"]?.stringValue ?? code))
        }
        if expectingStatus {
            guard let list = o["streams"]?.arrayValue else { throw bad("has no \"streams\"") }
            let streams = try list.map { (item) throws(AgentError) -> AgentStreamInfo in
                guard let info = AgentStreamInfo(json: item) else { throw bad("lists a stream without its fields") }
                return info
            }
            let pid = o["pid"]?.integerValue.flatMap { pid_t(exactly: $0) }
            return .status(AgentStatus(pid: pid, streams: streams))
        }
        guard let stream = o["stream"]?.integerValue, let server = o["server"]?.stringValue, let application = o["application"]?.stringValue else {
            throw bad("has no \"stream\", \"server\" or \"application\"")
        }
        return .opened(stream: Int(stream), tokenID: o["token_id"]?.stringValue, server: server, application: application)
    }
}
