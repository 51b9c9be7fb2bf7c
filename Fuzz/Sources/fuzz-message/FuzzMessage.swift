import FuzzSupport
import USPCore

// The session messages: `SessionMessage.decode` (kind byte + strict JSON, every kind), the JSON
// parser alone (`JSONValue.parse`), an OPEN frame's body (`ApplicationSessionRequest.decodeOpenBody`),
// and the request-body validator (`RequestBodyValidator`) on the bodies and specs they carry.
//
// Input: the bytes of a MESSAGE frame's body (kind, then JSON); the JSON alone is also tried as an
// OPEN body and as a bare JSON value.
//
// Properties: a decoded message re-encodes and decodes to an equal message, within the size limit;
// a parsed JSON value that encodes parses back equal; an OPEN body re-encodes and decodes equal;
// the validator accepts a body only if every field of it is in the spec and every required field
// is present with a type the spec allows.

let fixedSpecs: [[String: String]] = [
    [:],
    ["user": "string", "password": "string"],
    ["zone": "string?", "port": "integer", "ratio": "number?", "on": "boolean", "o": "object?", "a": "array", "x": "", "y": "any?"],
    ["bad": "strin"],
]

func checkValidator(_ body: [String: JSONValue], _ spec: [String: String]) {
    guard RequestBodyValidator.validate(body, against: spec) == nil else { return }
    guard case .success(let fields) = RequestBodyValidator.parse(spec) else {
        fail("a body was accepted against a spec that does not parse")
    }
    for (name, value) in body {
        guard let field = fields[name] else { fail("accepted field \(name) that is not in the spec") }
        check((field.isOptional && value.isNull) || field.type.accepts(value), "accepted \(name) of the wrong type")
    }
    for (name, field) in fields where !field.isOptional {
        check(body[name] != nil, "accepted a body without required field \(name)")
    }
}

func run(_ input: [UInt8]) {
    var bodies: [[String: JSONValue]] = []
    var specs = fixedSpecs

    if let message = try? SessionMessage.decode(input) {
        let encoded: [UInt8]
        do { encoded = try message.encode() } catch { fail("a decoded \(message.kind) does not encode: \(error)") }
        check(encoded.count <= SessionMessage.Limits.maxEncodedSize, "encoded \(encoded.count) bytes, above the limit")
        checkRoundTrip(message, "a \(message.kind) message") { try SessionMessage.decode(encoded) }
        switch message {
        case .serviceRequest(let request):
            bodies += request.services.values
            if case .credentials(let fields)? = request.authentication { bodies.append(fields) }
        case .initialRequest(let request):
            if let app = request.applicationSession {
                if let r = app.request { bodies.append(r) }
                if let p = app.parameters { bodies.append(p) }
            }
        case .menu(let menu):
            specs += menu.applications.values.map(\.expectedRequestBody)
        default:
            break
        }
    }

    let json = input.dropFirst()
    if let value = try? JSONValue.parse(json) {
        if let encoded = try? value.encoded() {
            checkRoundTrip(value, "a JSON value") { try JSONValue.parse(encoded) }
        }
        if case .object(let o) = value {
            bodies.append(o)
            if o.values.allSatisfy({ $0.stringValue != nil }) { specs.append(o.compactMapValues(\.stringValue)) }
        }
    }

    let open: ApplicationSessionRequest? = json.withUnsafeBytes { try? ApplicationSessionRequest.decodeOpenBody($0) }
    if let open {
        let encoded: [UInt8]
        do { encoded = try open.encodeOpenBody() } catch { fail("a decoded OPEN body does not encode: \(error)") }
        checkRoundTrip(open, "an OPEN body") {
            try encoded.withUnsafeBytes { (b) throws(USPError) in try ApplicationSessionRequest.decodeOpenBody(b) }
        }
    }

    for body in bodies.prefix(8) {
        for spec in specs.prefix(8) { checkValidator(body, spec) }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzMessage(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt { Harness.run(data, size, run) }

/// The seed corpus (Fuzz/Corpus/), from the project's own encoders.
func seeds() -> [(name: String, bytes: [UInt8])] {
    var seeds: [(name: String, bytes: [UInt8])] = []
    for (n, message) in Samples.messages.enumerated() { seeds.append(("\(message.kind.name)-\(n)", try! message.encode())) }
    let open = try! ApplicationSessionRequest(application: "ssh", request: ["user": "alice", "port": 22], clientTCPStream: 5).encodeOpenBody()
    seeds.append(("open-body", [0] + open))
    seeds.append(("json-edge", [0] + Array(#"{"a":[1,-0.0,1e308,"\ud83d\ude00\u0000",true,null,{"b":{}}],"c":"\/"}"#.utf8)))
    seeds.append(("json-deep", [1] + Array((String(repeating: "[", count: 70) + String(repeating: "]", count: 70)).utf8)))
    seeds.append(("json-dup", [3] + Array(#"{"client_session_id":"x","client_session_id":"y"}"#.utf8)))
    return seeds
}

@_cdecl("LLVMFuzzerInitialize")
public func fuzzMessageInitialize(_ argc: FuzzArgc, _ argv: FuzzArgv) -> CInt { Harness.initialize(seeds: seeds) }
