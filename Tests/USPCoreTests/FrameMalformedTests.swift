import Testing
@testable import USPCore
import USPTestSupport

struct MalformedCase: Sendable, CustomTestStringConvertible {
    let name: String
    let bytes: [UInt8]
    let code: USPError.Code
    /// Substrings the one-line detail must contain (frame type, offset, …).
    let detail: [String]

    var testDescription: String { name }

    init(_ name: String, _ bytes: [UInt8], _ code: USPError.Code = .malformedFrame, _ detail: String...) {
        self.name = name
        self.bytes = bytes
        self.code = code
        self.detail = detail
    }
}

/// A valid FIN (7 bytes) to put in front, so offsets of the bad frame are 7.
let finPrefix: [UInt8] = [0x07, 0, 4, 0, 0, 0, 1]

let malformedCases: [MalformedCase] = [
    // PADDING
    .init("padding then non-zero", [0, 0, 0, 1], .malformedFrame, "PADDING frame at offset 0", "offset 3"),
    .init("padding then a frame", [0] + finPrefix, .malformedFrame, "PADDING frame at offset 0", "offset 1"),
    .init("frame, padding, garbage", finPrefix + [0, 0, 0xFF], .malformedFrame, "PADDING frame at offset 7", "offset 9"),
    // Unknown types
    .init("type 0x0E", [0x0E, 0, 0], .unknownFrameType, "0x0E", "offset 0"),
    .init("type 0xFF after a frame", finPrefix + [0xFF], .unknownFrameType, "0xFF", "offset 7"),
    .init("type 0x80", [0x80], .unknownFrameType, "0x80", "offset 0"),
    // Header / length
    .init("type byte only", [0x05], .malformedFrame, "DATA frame at offset 0", "header"),
    .init("half a length", finPrefix + [0x05, 0x00], .malformedFrame, "DATA frame at offset 7", "header"),
    .init("length past record", [0x05, 0, 10, 0, 0, 0, 1, 9], .malformedFrame, "DATA frame at offset 0", "past"),
    .init("length 0xFFFF past record", finPrefix + [0x01, 0xFF, 0xFF, 1], .malformedFrame, "MESSAGE frame at offset 7", "past"),
    // MESSAGE
    .init("message without kind", [0x01, 0, 0], .malformedFrame, "MESSAGE frame at offset 0", "kind"),
    // OPEN
    .init("open short", [0x02, 0, 3, 0, 0, 1], .malformedFrame, "OPEN frame at offset 0"),
    .init("open stream 0", finPrefix + [0x02, 0, 4, 0, 0, 0, 0], .malformedFrame, "OPEN frame at offset 7", "stream id 0"),
    // ACCEPT
    .init("accept 7 bytes", [0x03, 0, 7, 0, 0, 0, 1, 0, 0, 1], .malformedFrame, "ACCEPT frame at offset 0", "8 bytes"),
    .init("accept 9 bytes", [0x03, 0, 9, 0, 0, 0, 1, 0, 0, 0, 1, 0], .malformedFrame, "ACCEPT frame at offset 0", "8 bytes"),
    .init("accept opener 0", [0x03, 0, 8, 0, 0, 0, 0, 0, 0, 0, 1], .malformedFrame, "ACCEPT", "stream id 0"),
    .init("accept acceptor 0", [0x03, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0], .malformedFrame, "ACCEPT", "stream id 0"),
    // REJECT
    .init("reject short", [0x04, 0, 5, 0, 0, 0, 1, 0], .malformedFrame, "REJECT frame at offset 0"),
    .init("reject opener 0", [0x04, 0, 6, 0, 0, 0, 0, 0, 1], .malformedFrame, "REJECT", "stream id 0"),
    .init("reject bad utf8 0xFF", [0x04, 0, 7, 0, 0, 0, 1, 0, 1, 0xFF], .malformedFrame, "REJECT frame at offset 0", "UTF-8", "offset 9"),
    .init("reject overlong", [0x04, 0, 8, 0, 0, 0, 1, 0, 1, 0xC0, 0x80], .malformedFrame, "REJECT", "UTF-8"),
    .init("reject surrogate", [0x04, 0, 9, 0, 0, 0, 1, 0, 1, 0xED, 0xA0, 0x80], .malformedFrame, "REJECT", "UTF-8"),
    .init("reject truncated sequence", [0x04, 0, 8, 0, 0, 0, 1, 0, 1, 0xE2, 0x82], .malformedFrame, "REJECT", "UTF-8"),
    .init("reject above U+10FFFF", [0x04, 0, 10, 0, 0, 0, 1, 0, 1, 0xF4, 0x90, 0x80, 0x80], .malformedFrame, "REJECT", "UTF-8"),
    // DATA
    .init("data empty", [0x05, 0, 4, 0, 0, 0, 1], .malformedFrame, "DATA frame at offset 0", "empty"),
    .init("data short", [0x05, 0, 3, 0, 0, 1], .malformedFrame, "DATA frame at offset 0"),
    .init("data stream 0", [0x05, 0, 5, 0, 0, 0, 0, 1], .malformedFrame, "DATA", "stream id 0"),
    // WINDOW
    .init("window short", [0x06, 0, 7, 0, 0, 0, 1, 0, 0, 1], .malformedFrame, "WINDOW frame at offset 0", "8 bytes"),
    .init("window increment 0", finPrefix + [0x06, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0], .malformedFrame, "WINDOW frame at offset 7", "increment 0"),
    .init("window stream 0", [0x06, 0, 8, 0, 0, 0, 0, 0, 0, 0, 1], .malformedFrame, "WINDOW", "stream id 0"),
    // FIN
    .init("fin long", [0x07, 0, 5, 0, 0, 0, 1, 0], .malformedFrame, "FIN frame at offset 0", "4 bytes"),
    .init("fin stream 0", [0x07, 0, 4, 0, 0, 0, 0], .malformedFrame, "FIN", "stream id 0"),
    // RESET
    .init("reset short", [0x08, 0, 4, 0, 0, 0, 1], .malformedFrame, "RESET frame at offset 0", "6 bytes"),
    .init("reset stream 0", [0x08, 0, 6, 0, 0, 0, 0, 0, 1], .malformedFrame, "RESET", "stream id 0"),
    // REKEY
    .init("rekey with body", [0x09, 0, 1, 0], .malformedFrame, "REKEY frame at offset 0", "empty"),
    // PING / PONG
    .init("ping 7 bytes", [0x0A, 0, 7, 1, 2, 3, 4, 5, 6, 7], .malformedFrame, "PING frame at offset 0", "8 bytes"),
    .init("pong 9 bytes", [0x0B, 0, 9, 1, 2, 3, 4, 5, 6, 7, 8, 9], .malformedFrame, "PONG frame at offset 0", "8 bytes"),
    // CLOSE
    .init("close short", [0x0C, 0, 1, 0], .malformedFrame, "CLOSE frame at offset 0"),
    .init("close bad utf8", finPrefix + [0x0C, 0, 4, 0, 0, 0x61, 0x80], .malformedFrame, "CLOSE frame at offset 7", "UTF-8", "offset 13"),
]

@Suite struct FrameMalformedTests {
    @Test(arguments: malformedCases)
    func malformed(_ c: MalformedCase) throws {
        let error = try #require(frameDecodeError(c.bytes), "\(c.name) decoded")
        #expect(error.code == c.code, "\(error)")
        for part in c.detail {
            #expect(error.detail.contains(part), "detail \"\(error.detail)\" lacks \"\(part)\"")
        }
        #expect(!error.detail.contains("\n"))
    }

    @Test func validUTF8Accepted() throws {
        for text in ["", "a", "é", "€", "𝄞", "\u{10FFFF}", "\u{D7FF}", "\u{E000}", "mixed ascii € 𝄞 é"] {
            let frame = Frame.close(code: 1, reason: text)
            #expect(try Frame.decodeAll(frame.encoded) == [frame])
        }
    }
}
