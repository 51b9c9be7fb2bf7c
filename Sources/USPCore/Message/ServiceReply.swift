/// Message kind 4, server → client: the answer to a `service_request` (proposal §4.a.iii),
/// exactly the proposal's bare object keyed by index:
///
///     {"0":{"token":"<authorization token>"},"1":{"token":"<app token>"},
///      "5":{"error":{"code":"authorization_token_missing","message":"Authorization token missing"}}}
public struct ServiceReply: Hashable, Sendable {
    /// Index → result; at most `Limits.maxIndices` entries.
    public var results: [ServiceIndex: ServiceResult]

    public init(results: [ServiceIndex: ServiceResult] = [:]) {
        self.results = results
    }
}

extension ServiceReply: SessionMessageBody {
    static let kind = SessionMessage.Kind.serviceReply

    init(json: JSONValue, _ path: MessagePath) throws(USPError) {
        guard case .object = json else { throw path.malformed("expected JSON object, got \(json.typeName)") }
        results = [:]
        for entry in try readIndexMap(json, MessagePath(path.message, "")) {
            results[entry.index] = try ServiceResult(json: entry.value, index: entry.index, entry.path)
        }
    }

    func toJSON(_ path: MessagePath) throws(USPError) -> JSONValue {
        try checkIndexCount(results.count, path)
        var o: [String: JSONValue] = [:]
        for (index, result) in results {
            o[index.key] = try result.toJSON(index: index, path.key(index.key))
        }
        return .object(o)
    }
}
