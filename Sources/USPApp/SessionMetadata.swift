import Foundation
import USPUnix

/// What uspd tells an application about a session (docs/APPLICATIONS.md): in a `unix` hand-off as
/// a JSON object, in an exec'd process as `USP_*` variables.
public struct SessionMetadata: Hashable, Sendable {
    /// The largest metadata message uspd sends (and this library accepts), in bytes of JSON.
    public static let maximumLength = LengthPrefixedMessage.maximumLength

    /// The application's name in uspd's apps.d.
    public var application: String
    /// The logged-in identity, or nil for a public application used without login.
    public var identity: String?
    /// The client's IP address as uspd saw it.
    public var peerAddress: String
    /// uspd's ID of the USP session (connection).
    public var session: String
    /// The application token's ID (also in uspd's audit trail).
    public var tokenID: String
    /// The authorization token (login) the application token was issued under, if any.
    public var authorizationTokenID: String?
    /// The validated request body the client sent for this application, a JSON object's text.
    public var requestJSON: String
    /// A brokered session (connection brokering): the client address the broker (`identity`)
    /// asked the token for, which is also `peerAddress`. nil: the client holds its own token.
    public var brokeredFor: String?
    /// Whether the session came relay-free: the application serves the client's TCP connection
    /// itself (USPApp does it; the channel looks the same).
    public var relayFree: Bool { relayFreeSnapshotLength != nil }
    /// From `"relay_free": {"v": 1, "snapshot_length": M}`: the snapshot bytes after the JSON.
    var relayFreeSnapshotLength: Int?

    public init(application: String, identity: String?, peerAddress: String, session: String, tokenID: String,
                authorizationTokenID: String?, requestJSON: String, brokeredFor: String? = nil) {
        self.brokeredFor = brokeredFor
        self.application = application
        self.identity = identity
        self.peerAddress = peerAddress
        self.session = session
        self.tokenID = tokenID
        self.authorizationTokenID = authorizationTokenID
        self.requestJSON = requestJSON
    }

    /// The request body decoded as `type`.
    public func request<T: Decodable>(as type: T.Type) throws -> T {
        try JSONDecoder().decode(type, from: Data(requestJSON.utf8))
    }

    /// Parses the JSON object of a hand-off: `v` must be 1; `application`, `peer_address`,
    /// `session` and `token_id` strings; `identity`, `authorization_token_id` and `brokered_for`
    /// strings or null (`brokered_for` may be absent);
    /// `request` an object. Unknown keys are ignored (a newer uspd may add some).
    public init(json: [UInt8]) throws(USPAppError) {
        guard json.count <= Self.maximumLength else {
            throw USPAppError(.metadataTooLarge, "metadata of \(json.count) bytes; at most \(Self.maximumLength)")
        }
        let parsed: Any
        do {
            parsed = try JSONSerialization.jsonObject(with: Data(json))
        } catch {
            throw USPAppError(.malformedMetadata, "metadata is not JSON")
        }
        guard let object = parsed as? [String: Any] else { throw USPAppError(.malformedMetadata, "metadata is not a JSON object") }
        guard let version = object["v"] as? Int, version == 1 else {
            throw USPAppError(.malformedMetadata, "metadata \"v\" must be 1")
        }
        func string(_ key: String) throws(USPAppError) -> String {
            guard let s = object[key] as? String else { throw USPAppError(.malformedMetadata, "metadata \"\(key)\" must be a string") }
            return s
        }
        func optionalString(_ key: String) throws(USPAppError) -> String? {
            if object[key] == nil || object[key] is NSNull { return nil }
            return try string(key)
        }
        guard let request = object["request"] as? [String: Any],
              let requestData = try? JSONSerialization.data(withJSONObject: request, options: [.sortedKeys]) else {
            throw USPAppError(.malformedMetadata, "metadata \"request\" must be an object")
        }
        self.init(application: try string("application"), identity: try optionalString("identity"),
                  peerAddress: try string("peer_address"), session: try string("session"), tokenID: try string("token_id"),
                  authorizationTokenID: try optionalString("authorization_token_id"),
                  requestJSON: String(decoding: requestData, as: UTF8.self), brokeredFor: try optionalString("brokered_for"))
        if let relayFree = object["relay_free"] {
            guard let fields = relayFree as? [String: Any], let version = fields["v"] as? Int, version == 1,
                  let length = fields["snapshot_length"] as? Int, length >= 1 else {
                throw USPAppError(.malformedSnapshot, "metadata \"relay_free\" must be {\"v\": 1, \"snapshot_length\": N ≥ 1}")
            }
            relayFreeSnapshotLength = length
        }
    }

    /// The `USP_*` variables of a process uspd exec'd (empty or unset USP_IDENTITY,
    /// USP_AUTHORIZATION_TOKEN_ID and USP_BROKERED_FOR mean none).
    public init(environment: [String: String]) throws(USPAppError) {
        func value(_ key: String) throws(USPAppError) -> String {
            guard let v = environment[key] else { throw USPAppError(.malformedMetadata, "\(key) is not set") }
            return v
        }
        let identity = environment["USP_IDENTITY"] ?? ""
        let authorization = environment["USP_AUTHORIZATION_TOKEN_ID"] ?? ""
        let brokered = environment["USP_BROKERED_FOR"] ?? ""
        self.init(application: try value("USP_APPLICATION"), identity: identity.isEmpty ? nil : identity,
                  peerAddress: try value("USP_PEER_ADDRESS"), session: try value("USP_SESSION"), tokenID: try value("USP_TOKEN_ID"),
                  authorizationTokenID: authorization.isEmpty ? nil : authorization,
                  requestJSON: environment["USP_REQUEST_JSON"] ?? "{}", brokeredFor: brokered.isEmpty ? nil : brokered)
    }
}
