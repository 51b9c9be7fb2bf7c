import Foundation
import FuzzSupport
import USPApp
import USPCore
import USPUnix

// The application's side of a `unix` hand-off (USPApp's HandoffReceiver, docs/APPLICATIONS.md):
// what `receiveHandoff` does with the bytes it reads, without the socket: the u32 length prefix
// (`LengthPrefixedMessage.length`), the metadata JSON (`SessionMetadata(json:)`), and for a
// relay-free hand-off the snapshot that follows (`DedicatedStreamSnapshot(encoded:)` and
// `DedicatedStreamSession(resuming:)`); and the control line's `reset <code>` lines
// (`USPError.Code.fromName`, as `ControlLineHandler` reads them).
//
// Input: a mode byte; mode even: prefix ‖ JSON ‖ snapshot, as uspd sends them; mode odd: the
// bytes of the control line.
//
// Properties: the prefix's length is 1…65536; accepted metadata's `requestJSON` is a JSON object
// text; a relay-free flag only comes with a snapshot length.

func handoff(_ cursor: inout ByteCursor) {
    let length: Int
    do { length = try LengthPrefixedMessage.length(cursor.take(LengthPrefixedMessage.prefixLength)) } catch { return }
    check((1...LengthPrefixedMessage.maximumLength).contains(length), "length \(length) accepted")
    let json = cursor.take(length)
    guard json.count == length else { return }  // the socket would wait, then time out
    let metadata: SessionMetadata
    do { metadata = try SessionMetadata(json: json) } catch { return }
    let request = try? JSONSerialization.jsonObject(with: Data(metadata.requestJSON.utf8))
    check(request is [String: Any], "requestJSON is not a JSON object: \(metadata.requestJSON)")
    guard metadata.relayFree else { return }
    var snapshotBytes = cursor.rest()
    guard snapshotBytes.count <= HandoffReceiver.maximumSnapshotLength else { return }
    defer { DedicatedStreamSnapshot.zeroize(&snapshotBytes) }
    guard var snapshot = try? DedicatedStreamSnapshot(encoded: snapshotBytes) else { return }
    defer { snapshot.zeroize() }
    _ = try? DedicatedStreamSession(resuming: snapshot)
}

func controlLine(_ bytes: [UInt8]) {
    // ControlLineHandler: lines up to a newline, each kept to 256 bytes.
    for line in bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
        let text = String(decoding: line.prefix(256), as: UTF8.self)
        guard text.hasPrefix("reset ") else { continue }
        if let code = USPError.Code.fromName(String(text.dropFirst("reset ".count))) {
            check(USPError.Code.fromName(code.name) == code, "code \(code.name) does not name itself")
        }
    }
}

func run(_ input: [UInt8]) {
    var cursor = ByteCursor(input)
    if cursor.u8() & 1 == 0 { handoff(&cursor) } else { controlLine(cursor.rest()) }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHandoff(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt { Harness.run(data, size, run) }

/// The seed corpus (Fuzz/Corpus/), from the project's own encoders.
func seeds() -> [(name: String, bytes: [UInt8])] {
    // The metadata uspd's HandoffMessage writes (same fields, same encoder: JSONValue).
    func metadata(relayFree snapshotLength: Int? = nil, identity: JSONValue = "alice") -> [UInt8] {
        var o: [String: JSONValue] = [
            "v": 1, "application": "notes", "identity": identity, "peer_address": "192.0.2.10", "session": "s-fuzzserver0001",
            "token_id": "AAAAAAAAAAAAAAAAAAAAAA", "authorization_token_id": .null, "request": ["user": "alice", "port": 22],
        ]
        if let n = snapshotLength { o["relay_free"] = ["v": 1, "snapshot_length": .integer(Int64(n))] }
        return LengthPrefixedMessage.encode(try! JSONValue.object(o).encoded())!
    }
    var seeds: [(name: String, bytes: [UInt8])] = [
        ("unix", [0] + metadata()),
        ("unix-anonymous", [0] + metadata(identity: .null)),
        ("control", [1] + Array("reset token_revoked\nreset authorization_revoked\nhello\nreset nonsense\n".utf8)),
        ("empty-length", [0, 0, 0, 0, 0]),
    ]
    if let (name, snapshot) = Snapshots.all().last {
        let bytes = snapshot.encoded()
        seeds.append(("relay-free-\(name)", [0] + metadata(relayFree: bytes.count) + bytes))
    }
    return seeds
}

@_cdecl("LLVMFuzzerInitialize")
public func fuzzHandoffInitialize(_ argc: FuzzArgc, _ argv: FuzzArgv) -> CInt { Harness.initialize(seeds: seeds) }
