/// Iterates the frames of one record's plaintext without allocating.
///
/// ```swift
/// var reader = FrameReader(plaintext)
/// while let frame = try reader.next() { ... }
/// ```
///
/// Every failure is a `USPError` whose detail names the frame type and the offset of the
/// frame's type byte in the record: `.unknownFrameType` for a type byte outside 0x00…0x0D,
/// `.malformedFrame` for everything else (a header or body running past the record, a wrong
/// fixed body size, stream id 0, empty DATA, WINDOW increment 0, invalid UTF-8 in REJECT or
/// CLOSE text, a non-zero byte after PADDING starts). After a failure the reader is at the end.
/// Errors are the only path that allocates (for the detail string).
public struct FrameReader {
    public let record: UnsafeRawBufferPointer
    /// The offset of the next frame's type byte.
    public private(set) var offset: Int = 0

    public init(_ record: UnsafeRawBufferPointer) {
        self.record = record
    }

    public var isAtEnd: Bool { offset >= record.count }

    /// The next frame, or nil at the end of the record. PADDING, if present, is returned once
    /// and ends the record.
    public mutating func next() throws(USPError) -> FrameView? {
        do {
            return try parseNext()
        } catch {
            offset = record.count
            throw error
        }
    }

    private mutating func parseNext() throws(USPError) -> FrameView? {
        let count = record.count
        let start = offset
        guard start < count else { return nil }
        let typeByte = record[start]

        if typeByte == 0 {
            var i = start + 1
            while i < count {
                guard record[i] == 0 else {
                    throw USPError(.malformedFrame, "PADDING frame at offset \(start): non-zero byte 0x\(hex(record[i])) at offset \(i)")
                }
                i += 1
            }
            offset = count
            return .padding(length: count - start)
        }

        guard let type = FrameType(rawValue: typeByte) else {
            throw USPError(.unknownFrameType, "unknown frame type 0x\(hex(typeByte)) at offset \(start)")
        }
        guard count - start >= Frame.headerLength else {
            throw malformed(type, start, "header needs 3 bytes, \(count - start) left in record")
        }
        let length = Int(record[start + 1]) << 8 | Int(record[start + 2])
        let bodyStart = start + Frame.headerLength
        guard count - bodyStart >= length else {
            throw malformed(type, start, "length \(length) runs past the record end (\(count - bodyStart) bytes left)")
        }
        let body = UnsafeRawBufferPointer(rebasing: record[bodyStart..<bodyStart + length])
        offset = bodyStart + length

        switch type {
        case .padding:
            preconditionFailure("handled above")
        case .message:
            guard length >= 1 else { throw malformed(type, start, "body needs a kind byte") }
            return .message(kind: body[0], json: UnsafeRawBufferPointer(rebasing: body[1...]))
        case .open:
            let stream = try streamID(body, at: 0, type, start, minimumLength: 4, exact: false)
            return .open(stream: stream, session: UnsafeRawBufferPointer(rebasing: body[4...]))
        case .accept:
            let opener = try streamID(body, at: 0, type, start, minimumLength: 8, exact: true)
            let acceptor = try streamID(body, at: 4, type, start, minimumLength: 8, exact: true)
            return .accept(opener: opener, acceptor: acceptor)
        case .reject:
            let opener = try streamID(body, at: 0, type, start, minimumLength: 6, exact: false)
            let message = UnsafeRawBufferPointer(rebasing: body[6...])
            try checkUTF8(message, type, start, textOffset: bodyStart + 6)
            return .reject(opener: opener, code: u16(body, 4), message: message)
        case .data:
            let stream = try streamID(body, at: 0, type, start, minimumLength: 4, exact: false)
            guard length > 4 else { throw malformed(type, start, "empty data") }
            return .data(stream: stream, data: UnsafeRawBufferPointer(rebasing: body[4...]))
        case .window:
            let stream = try streamID(body, at: 0, type, start, minimumLength: 8, exact: true)
            let increment = u32(body, 4)
            guard increment >= 1 else { throw malformed(type, start, "increment 0") }
            return .window(stream: stream, increment: increment)
        case .fin:
            return .fin(stream: try streamID(body, at: 0, type, start, minimumLength: 4, exact: true))
        case .reset:
            let stream = try streamID(body, at: 0, type, start, minimumLength: 6, exact: true)
            return .reset(stream: stream, code: u16(body, 4))
        case .rekey:
            guard length == 0 else { throw malformed(type, start, "body must be empty, has \(length) bytes") }
            return .rekey
        case .ping, .pong:
            guard length == 8 else { throw malformed(type, start, "body must be 8 bytes, has \(length)") }
            let v = u64(body, 0)
            return type == .ping ? .ping(v) : .pong(v)
        case .close:
            guard length >= 2 else { throw malformed(type, start, "body needs 2 bytes for the code, has \(length)") }
            let reason = UnsafeRawBufferPointer(rebasing: body[2...])
            try checkUTF8(reason, type, start, textOffset: bodyStart + 2)
            return .close(code: u16(body, 0), reason: reason)
        case .shape:
            guard length == 4 else { throw malformed(type, start, "body must be 4 bytes, has \(length)") }
            let tick = u16(body, 0), record = u16(body, 2)
            if tick == 0 {
                guard record == 0 else { throw malformed(type, start, "tick 0 (stop) with record length \(record), not 0") }
            } else {
                guard tick <= ShapingProfile.maxTickMilliseconds else {
                    throw malformed(type, start, "tick \(tick) ms above \(ShapingProfile.maxTickMilliseconds)")
                }
                guard record >= ShapingProfile.minRecordLength else {
                    throw malformed(type, start, "record length \(record) below \(ShapingProfile.minRecordLength)")
                }
            }
            return .shape(tickMilliseconds: tick, recordLength: record)
        }
    }

    /// Reads a non-zero stream id after checking the body size (`exact`: size must equal `minimumLength`).
    private func streamID(
        _ body: UnsafeRawBufferPointer, at index: Int, _ type: FrameType, _ start: Int, minimumLength: Int, exact: Bool
    ) throws(USPError) -> UInt32 {
        if exact {
            guard body.count == minimumLength else {
                throw malformed(type, start, "body must be \(minimumLength) bytes, has \(body.count)")
            }
        } else {
            guard body.count >= minimumLength else {
                throw malformed(type, start, "body needs at least \(minimumLength) bytes, has \(body.count)")
            }
        }
        let id = u32(body, index)
        guard id != 0 else { throw malformed(type, start, "stream id 0") }
        return id
    }

    private func checkUTF8(_ text: UnsafeRawBufferPointer, _ type: FrameType, _ start: Int, textOffset: Int) throws(USPError) {
        if let bad = UTF8Validation.firstInvalidOffset(text) {
            throw malformed(type, start, "invalid UTF-8 at offset \(textOffset + bad)")
        }
    }

    private func malformed(_ type: FrameType, _ start: Int, _ what: String) -> USPError {
        USPError(.malformedFrame, "\(type.name) frame at offset \(start): \(what)")
    }

    @inline(__always) private func u16(_ b: UnsafeRawBufferPointer, _ i: Int) -> UInt16 {
        UInt16(b[i]) << 8 | UInt16(b[i + 1])
    }

    @inline(__always) private func u32(_ b: UnsafeRawBufferPointer, _ i: Int) -> UInt32 {
        UInt32(bigEndian: b.loadUnaligned(fromByteOffset: i, as: UInt32.self))
    }

    @inline(__always) private func u64(_ b: UnsafeRawBufferPointer, _ i: Int) -> UInt64 {
        UInt64(bigEndian: b.loadUnaligned(fromByteOffset: i, as: UInt64.self))
    }
}

private func hex(_ b: UInt8) -> String {
    let s = String(b, radix: 16, uppercase: true)
    return b < 0x10 ? "0" + s : s
}
