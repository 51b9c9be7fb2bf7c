import Testing
import USPAgent
import USPClient
import USPCore

/// Each kind of bad request has its own code; good ones round-trip.
struct AgentRequestTests {
    func code(_ text: String) -> String? {
        do {
            _ = try AgentRequest.parse(Array(text.utf8))
            return nil
        } catch {
            return error.code.rawValue
        }
    }

    @Test func openAndStatusRoundTrip() throws {
        let open = AgentRequest(.open(.init(server: try ServerURI(parsing: "usp://127.0.0.1:7300"), application: "ssh",
                                            fields: ["user": "alice", "port": .integer(22)])))
        #expect(try AgentRequest.parse(open.encoded()) == open)
        let text = AgentRequest(.open(.init(server: try ServerURI(parsing: "usp://host"), application: "web", textFields: ["n": "5"])))
        #expect(try AgentRequest.parse(text.encoded()) == text)
        #expect(try AgentRequest.parse(AgentRequest(.status).encoded()) == AgentRequest(.status))
        let parsed = try AgentRequest.parse(Array(#"{"v":1,"op":"open","uri":"usp://[::1]:7400","application":"echo","fields":{"a":[1,2]}}"#.utf8))
        guard case .open(let o) = parsed.operation else { Issue.record("not an open"); return }
        #expect(o.server.port == 7400)
        #expect(o.fields["a"] == .array([1, 2]))
    }

    @Test func malformedRequestsHaveSpecificCodes() {
        #expect(code("not json") == "malformed_request")
        #expect(code("[1,2]") == "malformed_request")
        #expect(code(#"{"op":"status"}"#) == "malformed_request")
        #expect(code(#"{"v":2,"op":"status"}"#) == "unsupported_version")
        #expect(code(#"{"v":"1","op":"status"}"#) == "unsupported_version")
        #expect(code(#"{"v":1,"op":"steal"}"#) == "unknown_operation")
        #expect(code(#"{"v":1,"op":7}"#) == "malformed_request")
        #expect(code(#"{"v":1,"op":"open","application":"x"}"#) == "malformed_request")
        #expect(code(#"{"v":1,"op":"open","uri":"http://x","application":"x"}"#) == "invalid_uri")
        #expect(code(#"{"v":1,"op":"open","uri":"usp://x","application":""}"#) == "malformed_request")
        #expect(code(#"{"v":1,"op":"open","uri":"usp://x","application":"a","fields":[]}"#) == "malformed_request")
        #expect(code(#"{"v":1,"op":"open","uri":"usp://x","application":"a","fields":{},"text_fields":{}}"#) == "malformed_request")
        #expect(code(#"{"v":1,"op":"open","uri":"usp://x","application":"a","text_fields":{"n":5}}"#) == "malformed_request")
        #expect(code(#"{"v":1,"op":"open","uri":"usp://x","application":"a","token":"usp1.x"}"#) == "malformed_request")
        #expect(code(#"{"v":1,"op":"status","op2":1}"#) == "malformed_request")
    }

    @Test func framesAreBoundedBothWays() throws {
        #expect(throws: AgentError.self) { try AgentFrame.length([0, 0, 0, 0]) }
        #expect((try? AgentFrame.length([0, 0, 0, 0])) == nil)
        do {
            _ = try AgentFrame.length([0, 0, 0, 0])
        } catch {
            #expect(error.code == .malformedRequest)
        }
        #expect(try AgentFrame.length([0, 1, 0, 0]) == 65536)
        do {
            _ = try AgentFrame.length([0, 1, 0, 1])
            Issue.record("65537 bytes accepted")
        } catch {
            #expect(error.code == .requestTooLarge)
            #expect(error.message.contains("65537"))
        }
        #expect(AgentFrame.encode([1, 2, 3]) == [0, 0, 0, 3, 1, 2, 3])
    }

    @Test func responsesRoundTrip() throws {
        let opened = AgentResponse.opened(stream: 3, tokenID: "abc", server: "127.0.0.1:7300", application: "ssh")
        #expect(try AgentResponse.parse(opened.encoded(), expectingStatus: false) == opened)
        let failed = AgentResponse.failed(AgentError(.rateLimited, "slow down"))
        #expect(try AgentResponse.parse(failed.encoded(), expectingStatus: false) == failed)
        let info = AgentStreamInfo(stream: 1, program: PeerProgram(uid: 1000, gid: 0, pid: 42, executable: "/usr/bin/ssh"),
                                   server: "h:1", application: "ssh", tokenID: nil, bytesSent: 10, bytesReceived: 20, openedAt: 1.5, age: 2.5)
        let status = AgentResponse.status(AgentStatus(pid: 4242, streams: [info]))
        #expect(try AgentResponse.parse(status.encoded(), expectingStatus: true) == status)
        #expect(String(decoding: status.encoded(), as: UTF8.self).contains(#""pid":4242"#))
        // An answer without a pid (an older agent) still parses; the pid is unknown.
        #expect(try AgentResponse.parse(Array(#"{"ok":true,"streams":[]}"#.utf8), expectingStatus: true) == .status(AgentStatus(pid: nil, streams: [])))
        #expect(throws: AgentError.self) { try AgentResponse.parse(Array("{}".utf8), expectingStatus: false) }
    }
}
