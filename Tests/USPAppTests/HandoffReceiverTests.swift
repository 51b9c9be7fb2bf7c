import Foundation
import NIOCore
import Synchronization
import Testing
import USPApp
import USPUnix

/// What uspd sends, built by hand: u32 big-endian length, JSON, one descriptor.
func handoffFrame(_ json: String) -> [UInt8] {
    let body = Array(json.utf8)
    let n = UInt32(body.count)
    return [UInt8(n >> 24), UInt8(n >> 16 & 0xff), UInt8(n >> 8 & 0xff), UInt8(n & 0xff)] + body
}

let sampleJSON = """
    {"v":1,"application":"upper","identity":"alice","peer_address":"127.0.0.1","session":"s1",\
    "token_id":"t1","authorization_token_id":null,"request":{"user":"alice","n":2},"later":"ignored"}
    """

@Suite struct HandoffReceiverTests {
    /// Sends `bytes` with `descriptors` from a fresh control pair and runs the receiver on the other end.
    func handOff(_ bytes: [UInt8], descriptors: [CInt]) throws -> (result: Result<(SessionMetadata, CInt), USPAppError>, answer: String?) {
        let control = try SocketPair.make()
        defer { close(control.first) }
        _ = try DescriptorPassing.send(control.first, bytes: bytes, descriptors: descriptors)
        shutdown(control.first, CInt(SHUT_WR))
        let result: Result<(SessionMetadata, CInt), USPAppError>
        do throws(USPAppError) {
            result = .success(try HandoffReceiver.receive(on: control.second))
        } catch {
            result = .failure(error)
        }
        return (result, try StreamIO.readLine(control.first, limit: 2000))
    }

    @Test func aWellFormedHandOffIsAcceptedWithItsDescriptor() throws {
        let stream = try SocketPair.make()
        defer { close(stream.first) }
        let (result, answer) = try handOff(handoffFrame(sampleJSON), descriptors: [stream.second])
        close(stream.second)
        #expect(answer == "ok")
        let (metadata, fd) = try result.get()
        defer { close(fd) }
        #expect(metadata == SessionMetadata(application: "upper", identity: "alice", peerAddress: "127.0.0.1", session: "s1",
                                            tokenID: "t1", authorizationTokenID: nil, requestJSON: #"{"n":2,"user":"alice"}"#))
        struct Body: Decodable { var user: String; var n: Int }
        #expect(try metadata.request(as: Body.self).n == 2)
        try StreamIO.writeAll(fd, Array("x".utf8))
        #expect(try StreamIO.readExactly(stream.first, 1) == Array("x".utf8))
    }

    @Test(arguments: [
        ("HTTP garbage: a huge length", Array("GET / HTTP/1.0\r\n\r\n".utf8), "metadata_too_large"),
        ("not JSON", handoffFrame("{nope"), "malformed_metadata"),
        ("an array", handoffFrame("[1]"), "malformed_metadata"),
        ("version 2", handoffFrame(#"{"v":2}"#), "malformed_metadata"),
        ("missing session", handoffFrame(#"{"v":1,"application":"a","peer_address":"p","token_id":"t","request":{}}"#), "malformed_metadata"),
        ("oversized", [0, 0x10, 0, 1] + Array("{}".utf8), "metadata_too_large"),
        ("zero length", [0, 0, 0, 0], "malformed_metadata"),
        ("truncated", [0, 0, 0, 50] + Array("{}".utf8), "malformed_metadata"),
    ])
    func malformedHandOffsAreAnsweredWithAnErrorAndTheDescriptorClosed(_ label: String, _ bytes: [UInt8], _ code: String) throws {
        let stream = try SocketPair.make()
        defer { close(stream.first) }
        let (result, answer) = try handOff(bytes, descriptors: [stream.second])
        close(stream.second)
        guard case .failure(let error) = result else { Issue.record("\(label): accepted"); return }
        #expect(error.code.rawValue == code, "\(label): \(error)")
        #expect(answer?.hasPrefix("error \(code): ") == true, "\(label): \(answer ?? "nil")")
        // The receiver closed its copy: the stream's other end sees end of file.
        var byte: UInt8 = 0
        #expect(read(stream.first, &byte, 1) == 0, "\(label): descriptor not closed")
    }

    @Test func aHandOffWithoutADescriptorIsRefused() throws {
        let (result, answer) = try handOff(handoffFrame(sampleJSON), descriptors: [])
        guard case .failure(let error) = result else { Issue.record("accepted"); return }
        #expect(error.code == .wrongDescriptorCount)
        #expect(answer?.hasPrefix("error wrong_descriptor_count") == true)
    }

    @Test func environmentMetadataOfAnExecdApplication() throws {
        let m = try SessionMetadata(environment: ["USP_APPLICATION": "upper", "USP_IDENTITY": "", "USP_PEER_ADDRESS": "::1",
                                                  "USP_SESSION": "s", "USP_TOKEN_ID": "t", "USP_AUTHORIZATION_TOKEN_ID": "a",
                                                  "USP_REQUEST_JSON": "{}"])
        #expect(m.identity == nil && m.authorizationTokenID == "a" && m.peerAddress == "::1")
        #expect(m.brokeredFor == nil)
        let brokered = try SessionMetadata(environment: ["USP_APPLICATION": "upper", "USP_IDENTITY": "relay", "USP_PEER_ADDRESS": "10.20.1.2",
                                                         "USP_SESSION": "s", "USP_TOKEN_ID": "t", "USP_AUTHORIZATION_TOKEN_ID": "a",
                                                         "USP_BROKERED_FOR": "10.20.1.2", "USP_REQUEST_JSON": "{}"])
        #expect(brokered.identity == "relay" && brokered.brokeredFor == "10.20.1.2")
        let json = #"{"v":1,"application":"upper","identity":"relay","peer_address":"10.20.1.2","session":"s","token_id":"t","authorization_token_id":"a","brokered_for":"10.20.1.2","request":{}}"#
        #expect(try SessionMetadata(json: Array(json.utf8)).brokeredFor == "10.20.1.2")
        let wrong = #"{"v":1,"application":"upper","identity":"relay","peer_address":"10.20.1.2","session":"s","token_id":"t","brokered_for":7,"request":{}}"#
        #expect(throws: USPAppError.self) { try SessionMetadata(json: Array(wrong.utf8)) }
        #expect(SocketActivation.streamDescriptor(environment: ["LISTEN_PID": "\(getpid())", "LISTEN_FDS": "1", "LISTEN_FDNAMES": "usp"]) == 3)
        #expect(SocketActivation.streamDescriptor(environment: ["LISTEN_PID": "1", "LISTEN_FDS": "1"]) == nil)
        #expect(SocketActivation.streamDescriptor(environment: ["LISTEN_PID": "\(getpid())", "LISTEN_FDS": "1", "LISTEN_FDNAMES": "http"]) == nil)
    }

    /// A listener gets garbage, then a real hand-off: it reports the first and serves the second.
    @Test func theListenerKeepsServingAfterGarbage() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("uspapp-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let path = dir.appendingPathComponent("app.sock").path
        let errors = Mutex<[USPAppError]>([])
        let sessions = try ApplicationListener.listening(at: path) { e in errors.withLock { $0.append(e) } }
        let address = try UnixSocketAddress(path: path)

        let garbage = try UnixSocket.connect(to: address)
        try StreamIO.writeAll(garbage, Array(repeating: 0xff, count: 10))
        shutdown(garbage, CInt(SHUT_WR))
        #expect(try StreamIO.readLine(garbage, limit: 2000)?.hasPrefix("error metadata_too_large") == true)
        close(garbage)

        let stream = try SocketPair.make()
        defer { close(stream.first) }
        let control = try UnixSocket.connect(to: address)
        _ = try DescriptorPassing.send(control, bytes: handoffFrame(sampleJSON), descriptors: [stream.second])
        close(stream.second)
        #expect(try StreamIO.readLine(control, limit: 100) == "ok")
        close(control)

        var iterator = sessions.makeAsyncIterator()
        let session = try #require(await iterator.next())
        #expect(session.metadata.identity == "alice")
        try StreamIO.writeAll(stream.first, Array("from client".utf8))
        shutdown(stream.first, CInt(SHUT_WR))
        try await session.channel.executeThenClose { inbound, outbound in
            var got = ""
            for try await buffer in inbound { got += String(buffer: buffer) }
            #expect(got == "from client")
            try await outbound.write(ByteBuffer(string: "answer"))
            outbound.finish()
        }
        #expect(try StreamIO.readExactly(stream.first, 6) == Array("answer".utf8))
        #expect(errors.withLock { $0.map(\.code) } == [.metadataTooLarge])
    }
}
