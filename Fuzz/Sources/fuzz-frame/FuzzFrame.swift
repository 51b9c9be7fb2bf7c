import FuzzSupport
import USPCore

// The frame reader: `FrameReader` over one record's plaintext, as the server, the client and a
// relay-free session read it.
//
// Property: every frame it accepts re-encodes (`Frame(view).encoded`) to exactly the bytes it was
// read from, so the reader and the writer agree on every field (and REJECT/CLOSE text that passed
// the UTF-8 check survives a String round trip); PADDING is the rest of the record, all zeros.
// `Frame.decodeAll` gives the same frames.

func run(_ input: [UInt8]) {
    var frames: [Frame] = []
    var failed = false
    input.withUnsafeBytes { record in
        var reader = FrameReader(record)
        while true {
            let start = reader.offset
            let view: FrameView?
            do { view = try reader.next() } catch {
                check(reader.isAtEnd, "the reader is not at the end after an error")
                failed = true
                break
            }
            guard let view else { break }
            let end = reader.offset
            check(end > start && end <= record.count, "frame \(start)..<\(end) outside the record")
            let frame = Frame(view)
            if case .padding(let length) = frame {
                check(end == record.count && length == end - start, "PADDING does not end the record")
                check(record[start..<end].allSatisfy { $0 == 0 }, "PADDING with a non-zero byte")
            } else {
                check(frame.encoded.elementsEqual(record[start..<end]), "\(view.type) does not re-encode to its bytes")
            }
            frames.append(frame)
        }
    }
    do {
        let all = try Frame.decodeAll(input)
        check(!failed && all == frames, "decodeAll disagrees with FrameReader")
    } catch {
        check(failed, "decodeAll failed where FrameReader did not")
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzFrame(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt { Harness.run(data, size, run) }

/// The seed corpus (Fuzz/Corpus/), from the project's own encoders.
func seeds() -> [(name: String, bytes: [UInt8])] {
    var seeds: [(name: String, bytes: [UInt8])] = []
    for frame in Samples.frames { seeds.append(("\(frame.type.name.lowercased())", frame.encoded)) }
    seeds.append(("all", Samples.frames.flatMap(\.encoded)))
    for (n, message) in Samples.messages.enumerated() { seeds.append(("message-\(message.kind.name)-\(n)", Samples.frame(message))) }
    seeds.append(("bad-utf8-close", [0x0C, 0x00, 0x04, 0x00, 0x01, 0xC3, 0x28]))
    seeds.append(("zero-stream", [0x07, 0x00, 0x04, 0, 0, 0, 0]))
    seeds.append(("unknown-type", [0x0E, 0x00, 0x00]))
    seeds.append(("shape", [0x0D, 0x00, 0x04, 0x00, 0x14, 0x02, 0x00]))
    return seeds
}

@_cdecl("LLVMFuzzerInitialize")
public func fuzzFrameInitialize(_ argc: FuzzArgc, _ argv: FuzzArgv) -> CInt { Harness.initialize(seeds: seeds) }
