import FuzzSupport
import USPCore

// The record reader: `RecordReader` (with its `RecordOpener`) reassembling records from a byte
// stream delivered in arbitrary pieces, opening headers and bodies in place.
//
// Input: a config byte (the opener's max_plaintext and rekey limit), then operations, each an op
// byte and its operands, that build the byte stream a peer sends under the same key:
//   0 record: u16 length n (mod 4096), n plaintext bytes; header and body sealed in order
//   1 forged header: u16 length L (any, 0 and above the limit included) sealed, then n body bytes
//   2 replay: a copy of an earlier record's bytes
//   3 skip: the sender's nonce jumps ahead (records arrive out of order)
//   4 corrupt: XOR a byte of the stream so far
//   5 rekey: both directions rotate the key after the next record
//   6 garbage: n raw bytes
//   7 truncate: cut the stream by n bytes
// then the stream is fed to the reader in pieces whose sizes come from the rest of the input.
//
// Properties: while the stream is exactly what was sealed, every record opens to its plaintext;
// an opened record is 1...max_plaintext bytes and never above the rekey limit's allowance; after
// an error nothing more is read; `checkEndOfInput` fails exactly when bytes are left over.

let key = [UInt8](repeating: 0x42, count: 32)
let limits = [1024, 4096, 16384, RecordLayout.maxPlaintext]

func run(_ input: [UInt8]) {
    var cursor = ByteCursor(input)
    let config = cursor.u8()
    let maxPlaintext = limits[Int(config & 3)]
    let rekeyLimit: UInt64 = config & 4 != 0 ? 8192 : .max
    var sender = try! CipherState(key: key)
    var stream: [UInt8] = []
    /// The plaintexts expected, and where the stream stops being genuine.
    var expected: [[UInt8]] = []
    var genuineUntil: Int? = nil
    var rekeyPoints: [Int] = []  // the reader rekeys once it has opened this many records
    var sealedCount = 0
    var sealedRanges: [Range<Int>] = []
    var ops = 0

    func spoil() { if genuineUntil == nil { genuineUntil = expected.count } }

    while !cursor.isAtEnd, ops < 64 {
        ops += 1
        let op = cursor.u8() % 9
        switch op {
        case 0, 1, 8:
            var n = Int(cursor.u16() % 4096)
            var header = n
            if op == 1 { header = Int(cursor.u16()); spoil() }
            if op != 1, n == 0 { n = 1; header = 1 }
            let body = cursor.takePadded(n)
            let start = stream.count
            stream += try! sender.encryptWithAd([], [UInt8(header >> 8), UInt8(header & 0xFF)])
            stream += try! sender.encryptWithAd([], body)
            sealedRanges.append(start..<stream.count)
            sealedCount += 1
            if op != 1 { expected.append(body) }
        case 2:
            guard !sealedRanges.isEmpty else { continue }
            let r = sealedRanges[Int(cursor.u8()) % sealedRanges.count]
            guard r.upperBound <= stream.count else { continue }  // cut by a truncation
            stream += stream[r]
            spoil()
        case 3:
            sender.setNonce(sender.nonce &+ 2 * UInt64(cursor.u8() % 40 + 1))
            spoil()
        case 4:
            guard !stream.isEmpty else { continue }
            stream[Int(cursor.u16()) % stream.count] ^= max(1, cursor.u8())
            spoil()
        case 5:
            try! sender.rekey()
            rekeyPoints.append(sealedCount)
        case 6:
            stream += cursor.take(Int(cursor.u8()))
            spoil()
        default:
            stream.removeLast(min(stream.count, Int(cursor.u8())))
            spoil()
        }
    }

    var reader = RecordReader(opener: RecordOpener(cipher: try! CipherState(key: key), maxPlaintext: maxPlaintext, rekeyLimit: rekeyLimit))
    var opened = 0
    var offset = 0
    var failed = false
    var allowance = rekeyLimit
    var nextRekey = 0
    func rekeyIfDue() throws(USPError) {
        while nextRekey < rekeyPoints.count, rekeyPoints[nextRekey] == opened {
            try reader.opener.rekey()
            allowance = rekeyLimit
            nextRekey += 1
        }
    }
    feeding: while offset < stream.count {
        let piece = max(1, Int(cursor.u16()) % 2048)
        let end = min(stream.count, offset + (cursor.isAtEnd ? stream.count : piece))
        reader.append(stream[offset..<end])
        offset = end
        while true {
            do {
                try rekeyIfDue()
                let got: [UInt8]? = try reader.nextRecord { (plaintext) throws(USPError) -> [UInt8] in Array(plaintext) }
                guard let got else { break }
                check(!got.isEmpty && got.count <= maxPlaintext, "opened a record of \(got.count) bytes, limit \(maxPlaintext)")
                check(UInt64(got.count) <= allowance, "opened past the rekey limit")
                allowance -= UInt64(got.count)
                if genuineUntil.map({ opened < $0 }) ?? true, opened < expected.count {
                    check(got == expected[opened], "record \(opened) opened to other bytes than were sealed")
                }
                opened += 1
            } catch {
                failed = true
                break feeding
            }
        }
    }
    guard !failed else { return }
    if genuineUntil == nil { check(opened == expected.count, "opened \(opened) of \(expected.count) genuine records") }
    do {
        try reader.checkEndOfInput()
        check(reader.bufferedByteCount == 0, "end of input accepted with \(reader.bufferedByteCount) bytes left")
    } catch {
        check(genuineUntil != nil, "a genuine stream refused at its end: \(error)")
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRecord(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt { Harness.run(data, size, run) }

/// The seed corpus (Fuzz/Corpus/), from the project's own encoders.
func seeds() -> [(name: String, bytes: [UInt8])] {
    func record(_ plaintext: [UInt8]) -> [UInt8] { [0, UInt8(plaintext.count >> 8), UInt8(plaintext.count & 0xFF)] + plaintext }
    let frames = Samples.frames.map(\.encoded)
    return [
        ("one", [3] + record(frames[4])),
        ("several", [3] + frames.flatMap(record) + [0x00, 0x40]),
        ("small-limit", [0] + record([UInt8](repeating: 0x05, count: 1500))),
        ("forged-zero", [3, 1, 0, 4, 0, 0] + [1, 2, 3, 4]),
        ("replay", [3] + record(frames[0]) + record(frames[1]) + [2, 0]),
        ("reorder", [3] + record(frames[0]) + [3, 1] + record(frames[1])),
        ("rekey", [7] + record(frames[8]) + [5] + record([UInt8](repeating: 1, count: 3000)) + record([UInt8](repeating: 2, count: 3000))),
        ("corrupt", [3] + record(frames[2]) + [4, 0, 20, 1]),
        ("truncate", [3] + record(frames[3]) + [7, 5]),
        ("pieces", [3] + record([UInt8](repeating: 9, count: 300)) + [0, 7, 0, 1, 0, 33]),
    ]
}

@_cdecl("LLVMFuzzerInitialize")
public func fuzzRecordInitialize(_ argc: FuzzArgc, _ argv: FuzzArgv) -> CInt { Harness.initialize(seeds: seeds) }
