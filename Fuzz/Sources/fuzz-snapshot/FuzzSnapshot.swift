import FuzzSupport
import USPCore

// The relay-free snapshot (docs/PROTOCOL.md §14.3): `DedicatedStreamSnapshot(encoded:)`, the
// binary form uspd sends an application with the keys of a dedicated connection, then
// `DedicatedStreamSession(resuming:)` and `resume`, which rebuild the record layer and the stream
// table from it and process the input uspd had read but not opened.
//
// Properties: a snapshot that decodes encodes to bytes that decode to an equal snapshot (whose
// encoding is then stable); a resumed session never delivers more than the stream's receive
// window and the undelivered bytes.

func run(_ input: [UInt8]) {
    var snapshot: DedicatedStreamSnapshot
    do { snapshot = try DedicatedStreamSnapshot(encoded: input) } catch { return }
    // The binary form is not canonical (padding kind 0 ignores its size, a session id that is not
    // UTF-8 is read with replacement characters), so the value, not the bytes, must round-trip.
    // (An id longer than 255 bytes after that replacement is cut when encoded: ids are ASCII in practice.)
    let encoded = snapshot.encoded()
    if snapshot.serverSessionID.utf8.count <= 255 {
        checkRoundTrip(snapshot, "a snapshot") { try DedicatedStreamSnapshot(encoded: encoded) }
        check(try! DedicatedStreamSnapshot(encoded: encoded).encoded() == encoded, "a snapshot's encoding is not stable")
    }
    defer { snapshot.zeroize() }

    var session: DedicatedStreamSession
    do { session = try DedicatedStreamSession(resuming: snapshot) } catch { return }
    var actions = DedicatedStreamSession.Actions()
    session.resume(into: &actions)
    var delivered = 0
    for action in actions { if case .data(let d) = action { delivered += d.count } }
    check(delivered <= snapshot.limits.initialWindow + snapshot.undeliveredData.count,
                 "delivered \(delivered) bytes, window \(snapshot.limits.initialWindow)")
    _ = session.drainOutbound { $0.count }
    if session.state == .open {
        _ = try? [UInt8](repeating: 0x61, count: 100).withUnsafeBytes { try session.write($0) }
        if delivered > 0 { try? session.consumed(count: delivered) }
        actions.removeAll()
        try? session.finish(into: &actions)
        _ = session.drainOutbound { $0.count }
        session.endOfInput(into: &actions)
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSnapshot(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt { Harness.run(data, size, run) }

/// The seed corpus (Fuzz/Corpus/), from the project's own encoders.
func seeds() -> [(name: String, bytes: [UInt8])] {
    var seeds = Snapshots.all().map { (name: $0.name, bytes: $0.snapshot.encoded()) }
    if let first = seeds.first?.bytes {
        var bad = first
        bad[4] = 2
        seeds.append(("version-2", bad))
        seeds.append(("truncated", Array(first.prefix(first.count / 2))))
    }
    return seeds
}

@_cdecl("LLVMFuzzerInitialize")
public func fuzzSnapshotInitialize(_ argc: FuzzArgc, _ argv: FuzzArgv) -> CInt { Harness.initialize(seeds: seeds) }
