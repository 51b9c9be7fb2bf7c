/// Traffic shaping (docs/PROTOCOL.md §4.1): while a profile is on, a side sends exactly one record
/// of `recordLength` plaintext bytes every `tickMilliseconds`, whatever it has to send. Data waits
/// for its tick; a tick with nothing to send carries a padding-only (cover) record. On the wire
/// an interactive session and a bulk transfer at the same rate look the same: one record of one
/// size per tick, each way.
public struct ShapingProfile: Hashable, Sendable {
    public static let minRecordLength: UInt16 = 64
    public static let maxTickMilliseconds: UInt16 = 10_000

    public var tickMilliseconds: UInt16
    /// Plaintext bytes per record (`L`); the wire carries `recordLength + 34` per tick.
    public var recordLength: Int

    public init(tickMilliseconds: UInt16, recordLength: Int) {
        precondition(tickMilliseconds >= 1 && tickMilliseconds <= Self.maxTickMilliseconds, "tick 1…\(Self.maxTickMilliseconds) ms")
        precondition(recordLength >= Int(Self.minRecordLength) && recordLength <= RecordLayout.maxPlaintext, "record length 64…65519")
        self.tickMilliseconds = tickMilliseconds
        self.recordLength = recordLength
    }

    /// `shape = "interactive"`: 512-byte records every 20 ms (25,600 bytes/s of payload room each
    /// way, 27,300 bytes/s on the wire whether or not anything is said).
    public static let interactive = ShapingProfile(tickMilliseconds: 20, recordLength: 512)

    /// Bytes on the wire per tick.
    public var wireRecordLength: Int { recordLength + RecordLayout.overhead }

    /// Sealed bytes waiting for their ticks past which a write takes nothing more: eight ticks'
    /// worth, so a keystroke waits behind at most that much bulk.
    public var backlogLimit: Int { 8 * wireRecordLength }
}
