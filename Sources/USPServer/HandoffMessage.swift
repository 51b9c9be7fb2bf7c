import NIOCore
import USPCore
import USPUnix

/// The bytes of a `unix` hand-off (docs/APPLICATIONS.md, "Hand-off to a running application").
///
/// uspd → application, once per session, in one sendmsg whose SCM_RIGHTS carries exactly one
/// descriptor (the application's end of the stream's socketpair), a `LengthPrefixedMessage`:
///
/// ```
/// u32 big-endian N (1 ≤ N ≤ 65536) ‖ N bytes: a UTF-8 JSON object
/// {"v":1,"application":"notes","identity":"alice","peer_address":"127.0.0.1","session":"…",
///  "token_id":"…","authorization_token_id":"…","brokered_for":null,"request":{"user":"alice"}}
/// ```
///
/// application → uspd: one line, `ok\n` to accept; any other line (by convention
/// `error <reason>\n`) refuses. The application then closes the connection.
enum HandoffMessage {
    /// The largest JSON body; a longer one is not sent (the stream is refused).
    static let maximumLength = LengthPrefixedMessage.maximumLength
    /// The longest answer line read, newline included.
    static let maximumAnswerLength = 1024
    /// The largest relay-free snapshot sent; a larger one (a huge stream window full of early
    /// data) is not handed off relay-free, the stream is relayed.
    static let maximumSnapshotLength = 64 << 20
    /// How long the application has to answer.
    static let answerTimeout: TimeAmount = .seconds(10)

    /// The JSON object for `request`: the same facts as the exec variables.
    static func metadata(for request: Launcher.Request) -> JSONValue {
        let body = (try? JSONValue.parse(Array(request.requestJSON.utf8))) ?? .object([:])
        return .object([
            "v": .integer(1),
            "application": .string(request.application.name),
            "identity": request.identity.map(JSONValue.string) ?? .null,
            "peer_address": .string(request.peerAddress),
            "session": .string(request.serverSessionID),
            "token_id": .string(request.tokenID),
            "authorization_token_id": request.authorizationTokenID.map(JSONValue.string) ?? .null,
            "brokered_for": request.brokeredFor.map(JSONValue.string) ?? .null,
            "request": body,
        ])
    }

    /// Length prefix and JSON; nil if the JSON is longer than `maximumLength`.
    static func frame(_ metadata: JSONValue) -> [UInt8]? {
        guard let json = try? metadata.encoded() else { return nil }
        return LengthPrefixedMessage.encode(json)
    }

    /// A relay-free hand-off (docs/PROTOCOL.md §14.2): the metadata with
    /// `"relay_free": {"v": 1, "snapshot_length": M}`, framed as usual, then the M bytes of the
    /// snapshot's binary form. nil if either part is too large.
    static func relayFreeFrame(_ metadata: JSONValue, snapshot: [UInt8]) -> [UInt8]? {
        guard case .object(var fields) = metadata, snapshot.count <= maximumSnapshotLength else { return nil }
        fields["relay_free"] = .object(["v": .integer(1), "snapshot_length": .integer(Int64(snapshot.count))])
        guard let head = frame(.object(fields)) else { return nil }
        return head + snapshot
    }

    /// The answer line, for the log: control characters replaced, at most 200 characters.
    static func printable(_ line: String) -> String {
        String(String.UnicodeScalarView(line.unicodeScalars.prefix(200).map { $0.properties.generalCategory == .control ? "?" : $0 }))
    }
}
