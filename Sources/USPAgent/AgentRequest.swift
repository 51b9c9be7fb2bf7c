import USPClient
import USPCore

/// A program's request to the agent, one per connection (docs/AGENT.md):
///
///     {"v":1,"op":"open","uri":"usp://…","application":"ssh","fields":{"user":"alice"}}
///     {"v":1,"op":"open","uri":"usp://…","application":"ssh","text_fields":{"port":"22"}}
///     {"v":1,"op":"status"}
///
/// `fields` is the request body as JSON, sent as it is; `text_fields` are `--field k=v` texts
/// that the agent types by the menu's `expected_request_body` (one more round trip). Unknown
/// keys are refused, so that a misspelt field is an error rather than silently dropped.
public struct AgentRequest: Hashable, Sendable {
    public static let version: Int64 = 1

    public enum Operation: Hashable, Sendable {
        case open(Open)
        case status
    }

    public struct Open: Hashable, Sendable {
        public var server: ServerURI
        public var application: String
        public var fields: [String: JSONValue]
        public var textFields: [String: String]?

        public init(server: ServerURI, application: String, fields: [String: JSONValue] = [:], textFields: [String: String]? = nil) {
            self.server = server
            self.application = application
            self.fields = fields
            self.textFields = textFields
        }
    }

    public var operation: Operation

    public init(_ operation: Operation) { self.operation = operation }

    /// The request's JSON text.
    public func encoded() -> [UInt8] {
        var o: [String: JSONValue] = ["v": .integer(Self.version)]
        switch operation {
        case .status:
            o["op"] = "status"
        case .open(let open):
            o["op"] = "open"
            o["uri"] = .string(open.server.description)
            o["application"] = .string(open.application)
            if !open.fields.isEmpty { o["fields"] = .object(open.fields) }
            if let text = open.textFields { o["text_fields"] = .object(text.mapValues(JSONValue.string)) }
        }
        return (try? JSONValue.object(o).encoded()) ?? []
    }

    /// Parses a request body; each kind of bad input has its own code.
    public static func parse(_ body: [UInt8]) throws(AgentError) -> AgentRequest {
        let json: JSONValue
        do throws(USPError) {
            json = try JSONValue.parse(body)
        } catch {
            throw AgentError(.malformedRequest, "the request is not JSON: \(error.detail)")
        }
        guard let object = json.objectValue else { throw AgentError(.malformedRequest, "the request is a JSON \(json.typeName), not an object") }
        guard let v = object["v"] else { throw AgentError(.malformedRequest, "the request has no \"v\" (version); send \"v\":\(version)") }
        guard v.integerValue == version else {
            throw AgentError(.unsupportedVersion, "version \(text(v)) is not supported; this agent speaks \"v\":\(version)")
        }
        guard let op = object["op"] else { throw AgentError(.malformedRequest, "the request has no \"op\"; send \"open\" or \"status\"") }
        guard let name = op.stringValue else { throw AgentError(.malformedRequest, "\"op\" is a \(op.typeName), not a string") }
        switch name {
        case "status":
            try rejectUnknown(object, allowed: ["v", "op"])
            return AgentRequest(.status)
        case "open":
            try rejectUnknown(object, allowed: ["v", "op", "uri", "application", "fields", "text_fields"])
            let uri = try string(object, "uri")
            let server: ServerURI
            do throws(USPClientError) {
                server = try ServerURI(parsing: uri)
            } catch {
                throw AgentError(Code(error.code.rawValue), error.message)
            }
            let application = try string(object, "application")
            var fields: [String: JSONValue] = [:]
            if let f = object["fields"] {
                guard let o = f.objectValue else { throw AgentError(.malformedRequest, "\"fields\" is a \(f.typeName), not an object") }
                fields = o
            }
            var textFields: [String: String]?
            if let t = object["text_fields"] {
                guard object["fields"] == nil else { throw AgentError(.malformedRequest, "give \"fields\" or \"text_fields\", not both") }
                guard let o = t.objectValue else { throw AgentError(.malformedRequest, "\"text_fields\" is a \(t.typeName), not an object") }
                var out: [String: String] = [:]
                for (key, value) in o {
                    guard let s = value.stringValue else { throw AgentError(.malformedRequest, "\"text_fields\".\(key) is a \(value.typeName), not a string") }
                    out[key] = s
                }
                textFields = out
            }
            return AgentRequest(.open(Open(server: server, application: application, fields: fields, textFields: textFields)))
        default:
            throw AgentError(.unknownOperation, "unknown \"op\" \"\(name.prefix(64))\"; this agent knows \"open\" and \"status\"")
        }
    }

    typealias Code = AgentError.Code

    private static func string(_ object: [String: JSONValue], _ key: String) throws(AgentError) -> String {
        guard let value = object[key] else { throw AgentError(.malformedRequest, "the open request has no \"\(key)\"") }
        guard let s = value.stringValue, !s.isEmpty else { throw AgentError(.malformedRequest, "\"\(key)\" is not a non-empty string") }
        return s
    }

    private static func rejectUnknown(_ object: [String: JSONValue], allowed: Set<String>) throws(AgentError) {
        if let key = object.keys.sorted().first(where: { !allowed.contains($0) }) {
            throw AgentError(.malformedRequest, "unknown key \"\(key.prefix(64))\" in the request (known: \(allowed.sorted().joined(separator: ", ")))")
        }
    }

    private static func text(_ v: JSONValue) -> String {
        (try? v.encoded()).map { String(decoding: $0.prefix(32), as: UTF8.self) } ?? v.typeName
    }
}
