/// Fast-path frame headers, so payload bytes can be placed right after them without an
/// intermediate `Frame` value or copy.
public enum FrameWriter {
    /// Appends the 7-byte DATA header (`0x05 | length = 4 + count | stream`); the caller then
    /// appends exactly `count` payload bytes. `stream` must be non-zero and `count` in
    /// `1...Frame.maxDataLength`.
    @inlinable
    public static func writeDataHeader(stream: UInt32, count: Int, into writer: inout WireWriter) {
        precondition(stream != 0, "DATA frame with stream id 0")
        precondition(count >= 1 && count <= Frame.maxDataLength, "DATA payload of \(count) bytes out of 1...\(Frame.maxDataLength)")
        writer.writeUInt8(FrameType.data.rawValue)
        writer.writeUInt16(UInt16(4 + count))
        writer.writeUInt32(stream)
    }

    /// Writes the 7-byte DATA header into `buffer` at `offset` and returns the offset where the
    /// `count` payload bytes go. Same preconditions as above, and the header must fit.
    @inlinable
    @discardableResult
    public static func writeDataHeader(
        stream: UInt32, count: Int, into buffer: UnsafeMutableRawBufferPointer, at offset: Int
    ) -> Int {
        precondition(stream != 0, "DATA frame with stream id 0")
        precondition(count >= 1 && count <= Frame.maxDataLength, "DATA payload of \(count) bytes out of 1...\(Frame.maxDataLength)")
        precondition(offset >= 0 && buffer.count - offset >= Frame.dataHeaderLength, "DATA header does not fit")
        let length = UInt16(4 + count)
        buffer[offset] = FrameType.data.rawValue
        buffer[offset + 1] = UInt8(truncatingIfNeeded: length >> 8)
        buffer[offset + 2] = UInt8(truncatingIfNeeded: length)
        buffer[offset + 3] = UInt8(truncatingIfNeeded: stream >> 24)
        buffer[offset + 4] = UInt8(truncatingIfNeeded: stream >> 16)
        buffer[offset + 5] = UInt8(truncatingIfNeeded: stream >> 8)
        buffer[offset + 6] = UInt8(truncatingIfNeeded: stream)
        return offset + Frame.dataHeaderLength
    }
}
