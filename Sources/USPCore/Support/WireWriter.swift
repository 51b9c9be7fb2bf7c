/// Appends big-endian integers and bytes to a `[UInt8]` whose capacity is kept between uses,
/// so that writing the same shapes again in steady state allocates nothing.
public struct WireWriter: Sendable {
    public var bytes: [UInt8]

    public init(capacity: Int = 0) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    public var count: Int { bytes.count }

    /// Empties the buffer but keeps its storage.
    public mutating func clear() { bytes.removeAll(keepingCapacity: true) }
    /// Drops the first `count` bytes, keeping the storage.
    public mutating func removeFirst(_ count: Int) { bytes.removeFirst(count) }

    public mutating func writeUInt8(_ v: UInt8) { bytes.append(v) }
    public mutating func writeUInt16(_ v: UInt16) {
        bytes.append(UInt8(truncatingIfNeeded: v >> 8))
        bytes.append(UInt8(truncatingIfNeeded: v))
    }
    public mutating func writeUInt32(_ v: UInt32) {
        for shift in stride(from: 24, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: v >> UInt32(shift))) }
    }
    public mutating func writeUInt64(_ v: UInt64) {
        for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: v >> UInt64(shift))) }
    }
    public mutating func writeBytes(_ b: some Sequence<UInt8>) { bytes.append(contentsOf: b) }
    public mutating func writeBytes(_ b: UnsafeRawBufferPointer) { bytes.append(contentsOf: b) }
    public mutating func writeZeros(_ n: Int) { bytes.append(contentsOf: repeatElement(0, count: n)) }

    /// Appends at most `limit` bytes that `fill` writes straight into the buffer's storage (a
    /// caller's read(2), for instance), so they are not copied again. `fill` is given exactly
    /// `limit` bytes of room and returns how many it wrote (0…`limit`). Returns that count.
    public mutating func writeFilled(upTo limit: Int, _ fill: (UnsafeMutableRawBufferPointer) -> Int) -> Int {
        guard limit > 0 else { return 0 }
        bytes.reserveCapacity(bytes.count + limit)
        let before = bytes.count
        withoutActuallyEscaping(fill) { fill in
            bytes.append(contentsOf: FilledBytes(limit: limit, fill: fill))
        }
        return bytes.count - before
    }

    /// Overwrites a big-endian UInt16 at `offset` (for lengths known only after the body).
    public mutating func setUInt16(_ v: UInt16, at offset: Int) {
        bytes[offset] = UInt8(truncatingIfNeeded: v >> 8)
        bytes[offset + 1] = UInt8(truncatingIfNeeded: v)
    }
}

/// Reads big-endian integers from a byte view with bounds checks. Every short read throws
/// the error code the caller names, so each decoder reports its own specific failure.
public struct WireReader {
    public let buffer: UnsafeRawBufferPointer
    public private(set) var offset: Int = 0
    let shortCode: USPError.Code
    let context: String

    public init(_ buffer: UnsafeRawBufferPointer, shortCode: USPError.Code = .malformedFrame, context: String = "frame") {
        self.buffer = buffer
        self.shortCode = shortCode
        self.context = context
    }

    public var remaining: Int { buffer.count - offset }
    public var isAtEnd: Bool { offset >= buffer.count }

    private func need(_ n: Int, _ what: String) throws(USPError) {
        guard n >= 0, remaining >= n else {
            throw USPError(shortCode, "\(context): \(what) needs \(n) bytes at offset \(offset), \(remaining) left")
        }
    }

    public mutating func readUInt8(_ what: String = "u8") throws(USPError) -> UInt8 {
        try need(1, what)
        defer { offset += 1 }
        return buffer[offset]
    }
    public mutating func readUInt16(_ what: String = "u16") throws(USPError) -> UInt16 {
        try need(2, what)
        defer { offset += 2 }
        return UInt16(buffer[offset]) << 8 | UInt16(buffer[offset + 1])
    }
    public mutating func readUInt32(_ what: String = "u32") throws(USPError) -> UInt32 {
        try need(4, what)
        var v: UInt32 = 0
        for i in 0..<4 { v = v << 8 | UInt32(buffer[offset + i]) }
        offset += 4
        return v
    }
    public mutating func readUInt64(_ what: String = "u64") throws(USPError) -> UInt64 {
        try need(8, what)
        var v: UInt64 = 0
        for i in 0..<8 { v = v << 8 | UInt64(buffer[offset + i]) }
        offset += 8
        return v
    }
    /// A view of the next `n` bytes, valid as long as `buffer` is.
    public mutating func readSlice(_ n: Int, _ what: String = "bytes") throws(USPError) -> UnsafeRawBufferPointer {
        try need(n, what)
        defer { offset += n }
        return UnsafeRawBufferPointer(rebasing: buffer[offset..<offset + n])
    }
    public mutating func readRest() -> UnsafeRawBufferPointer {
        defer { offset = buffer.count }
        return UnsafeRawBufferPointer(rebasing: buffer[offset...])
    }
    public mutating func skip(_ n: Int, _ what: String = "bytes") throws(USPError) {
        try need(n, what)
        offset += n
    }
}

/// A sequence whose bytes a closure writes in place: Array's `append(contentsOf:)` hands the free
/// capacity to `_copyContents(initializing:)`, which lets `fill` write into it directly. Its
/// iterator yields nothing, so the array takes exactly what `fill` wrote.
private struct FilledBytes: Sequence {
    let limit: Int
    let fill: (UnsafeMutableRawBufferPointer) -> Int

    var underestimatedCount: Int { 0 }

    func makeIterator() -> EmptyCollection<UInt8>.Iterator { EmptyCollection<UInt8>.Iterator() }

    func _copyContents(initializing buffer: UnsafeMutableBufferPointer<UInt8>) -> (EmptyCollection<UInt8>.Iterator, Int) {
        let room = Swift.min(limit, buffer.count)
        guard room > 0, let base = buffer.baseAddress else { return (makeIterator(), 0) }
        let written = fill(UnsafeMutableRawBufferPointer(start: base, count: room))
        precondition(written >= 0 && written <= room, "fill wrote \(written) bytes into a buffer of \(room)")
        return (makeIterator(), written)
    }
}
