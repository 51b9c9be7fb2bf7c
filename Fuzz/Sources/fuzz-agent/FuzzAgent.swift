import FuzzSupport
import USPAgent
import USPClient
import USPCore

// The agent protocol (docs/AGENT.md): a program's request as the agent reads it — the u32 length
// prefix (`AgentFrame.length`) and the JSON request (`AgentRequest.parse`, with the server URI
// parser inside) — and the agent's answer as a client reads it (`AgentResponse.parse`).
//
// Input: a flags byte (bit 0: parse the body as a status answer), then the 4-byte prefix, then the body.
//
// Properties: an accepted length is 1…65536; a parsed request or answer encodes and parses back equal.

func run(_ input: [UInt8]) {
    var cursor = ByteCursor(input)
    let expectingStatus = cursor.u8() & 1 == 1
    if let length = try? AgentFrame.length(cursor.take(4)) {
        check((1...65536).contains(length), "length \(length) accepted")
    }
    let body = cursor.rest()
    if let request = try? AgentRequest.parse(body) {
        checkRoundTrip(request, "a request") { try AgentRequest.parse(request.encoded()) }
    }
    if let response = try? AgentResponse.parse(body, expectingStatus: expectingStatus) {
        checkRoundTrip(response, "an answer") { try AgentResponse.parse(response.encoded(), expectingStatus: expectingStatus) }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzAgent(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt { Harness.run(data, size, run) }

/// The seed corpus (Fuzz/Corpus/), from the project's own encoders.
func seeds() -> [(name: String, bytes: [UInt8])] {
    let uri = "usp://" + Base64URL.encode(FuzzKeys.server.publicKey) + "@127.0.0.1:7300"
    let requests: [(String, AgentRequest)] = [
        ("status", AgentRequest(.status)),
        ("open", AgentRequest(.open(.init(server: try! ServerURI(parsing: uri), application: "ssh", fields: ["user": "alice"])))),
        ("open-text", AgentRequest(.open(.init(server: try! ServerURI(parsing: "usp://[::1]:7300"), application: "notes",
                                               textFields: ["port": "22"])))),
    ]
    let responses: [(String, Bool, AgentResponse)] = [
        ("opened", false, .opened(stream: 3, tokenID: "Xk3", server: "127.0.0.1:7300", application: "ssh")),
        ("failed", false, .failed(AgentError(.rateLimited, "slow down"))),
        ("status", true, .status(AgentStatus(pid: 4242, streams: []))),
    ]
    return requests.map { (name: "request-\($0.0)", bytes: [0] + AgentFrame.encode($0.1.encoded())) }
        + responses.map { (name: "response-\($0.0)", bytes: [$0.1 ? 1 : 0] + AgentFrame.encode($0.2.encoded())) }
}

@_cdecl("LLVMFuzzerInitialize")
public func fuzzAgentInitialize(_ argc: FuzzArgc, _ argv: FuzzArgv) -> CInt { Harness.initialize(seeds: seeds) }
