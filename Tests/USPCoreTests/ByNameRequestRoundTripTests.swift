import Testing
import USPCore

/// Found by fuzz-message (Fuzz/Regressions/message/): a begin by name without "request" decoded
/// with `request == nil`, was encoded with `"request":{}` (what the encoder writes for nil), and
/// decoded again with `request == [:]`: the same message, a different value. The decoder now reads
/// an absent body as `{}`, as it is written.
@Suite("Begin by name without a request body")
struct ByNameRequestRoundTripTests {
    @Test func anInitialRequestRoundTrips() throws {
        let text = #"{"application_session":{"action":"begin","application":"time","client_tcp_stream":1},"authorization_token":null,"client_session_id":"c-1","v":1}"#
        let message = try SessionMessage.decode([SessionMessage.Kind.initialRequest.rawValue] + Array(text.utf8))
        guard case .initialRequest(let request) = message else { Issue.record("not an initial_request"); return }
        #expect(request.applicationSession?.request == [:])
        #expect(try SessionMessage.decode(try message.encode()) == message)
    }

    @Test func anOpenBodyRoundTrips() throws {
        let open = try Array(#"{"action":"begin","application":"echo"}"#.utf8).withUnsafeBytes {
            try ApplicationSessionRequest.decodeOpenBody($0)
        }
        #expect(open == ApplicationSessionRequest(application: "echo"))
        let again = try open.encodeOpenBody().withUnsafeBytes { try ApplicationSessionRequest.decodeOpenBody($0) }
        #expect(again == open)
    }
}
