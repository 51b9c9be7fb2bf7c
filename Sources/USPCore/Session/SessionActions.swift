/// What a session asks of its I/O shell, in order, in a buffer the shell owns and reuses.
///
/// Every session call that can have consequences (`receive`, `endOfInput`, `close`, a stream's
/// `finish`, …) appends its actions here instead of calling back, so the shell acts on them after
/// the call returns, when the session is free to be called again (an application that writes
/// while it handles data calls the session from inside the shell's loop, not from inside the
/// session). Stream bytes are not copied when they lie in the record reader's buffer, where records
/// are opened in place: the reader lends that buffer to the actions (`lend`), and a data action is
/// a slice of it. Other bytes (message 1's early frames, frames held back by a slow login) are
/// copied once into the buffer's own storage. Both are kept or dropped by `removeAll()` so that in
/// steady state the data path allocates and copies nothing here.
///
/// Iterate to act; a data action's `ArraySlice` shares storage with the buffer (and with the
/// session's reader), so let it go (copy it into the shell's own buffer) before `removeAll()`.
public struct SessionActions<Action: SessionAction>: Sequence {
    /// Where an action's bytes are: in `bytes` (copied) or in `lent` (the reader's buffer).
    @usableFromInline enum Bytes {
        case none
        case own(Range<Int>)
        case lent(Range<Int>)
    }

    @usableFromInline var actions: [Action] = []
    @usableFromInline var ranges: [Bytes] = []
    @usableFromInline var bytes: [UInt8] = []
    /// The reader's buffer, lent until `removeAll()`.
    @usableFromInline var lent: [UInt8] = []
    /// Some action refers to the lent buffer.
    @usableFromInline var lentAny = false
    /// While records are opened: the address range of the reader's buffer (compared, never read).
    @usableFromInline var lendingBase: UInt = 0
    @usableFromInline var lendingCount: UInt = 0

    public init() {}

    public var count: Int { actions.count }
    public var isEmpty: Bool { actions.isEmpty }

    @inlinable
    public mutating func append(_ action: Action) {
        actions.append(action)
        ranges.append(.none)
    }

    /// Appends `action` with `data`, handed out as its slice when iterated: a slice of the reader's
    /// buffer when `data` lies in it (see `lending`), else of a copy in this buffer's storage.
    @inlinable
    public mutating func append(_ action: Action, carrying data: UnsafeRawBufferPointer) {
        if let base = data.baseAddress, lendingCount > 0 {
            let address = UInt(bitPattern: base)
            if address >= lendingBase, address - lendingBase + UInt(data.count) <= lendingCount {
                let offset = Int(address - lendingBase)
                actions.append(action)
                ranges.append(.lent(offset..<offset + data.count))
                lentAny = true
                return
            }
        }
        let start = bytes.count
        bytes.append(contentsOf: data)
        actions.append(action)
        ranges.append(.own(start..<bytes.count))
    }

    /// Forgets every action, keeping this buffer's storage and giving the lent one back.
    @inlinable
    public mutating func removeAll() {
        actions.removeAll(keepingCapacity: true)
        ranges.removeAll(keepingCapacity: true)
        bytes.removeAll(keepingCapacity: true)
        lent = []
        lentAny = false
    }

    /// Runs `body`, which opens records in place in `reader`'s buffer, with data actions for bytes
    /// inside that buffer recorded as ranges of it; then keeps the buffer (a reference, not a copy)
    /// so those ranges are handed out as slices of it. Nothing holds the buffer while `body` runs,
    /// so the reader opens records in it without copying it. Lends once per batch: a second
    /// lending before `removeAll()` copies instead.
    mutating func lending<R>(_ reader: inout RecordReader,
                             _ body: (inout RecordReader, inout SessionActions) throws(USPError) -> R) throws(USPError) -> R {
        if lent.isEmpty {
            (lendingBase, lendingCount) = reader.storageAddress
        }
        defer {
            lendingBase = 0
            lendingCount = 0
            // Also when `body` throws: the actions it appended before (data, then `closed`) are
            // still handed out.
            if lent.isEmpty, lentAny { lent = reader.storage }
        }
        return try body(&reader, &self)
    }

    public struct Iterator: IteratorProtocol {
        @usableFromInline let base: SessionActions
        @usableFromInline var index = 0
        @inlinable init(base: SessionActions) { self.base = base }

        @inlinable
        public mutating func next() -> Action? {
            guard index < base.actions.count else { return nil }
            defer { index += 1 }
            switch base.ranges[index] {
            case .none: return base.actions[index]
            case .own(let range): return base.actions[index].attaching(base.bytes[range])
            case .lent(let range): return base.actions[index].attaching(base.lent[range])
            }
        }
    }

    @inlinable
    public func makeIterator() -> Iterator { Iterator(base: self) }
}

/// An action a session hands its shell. Data actions carry their bytes as a slice of the
/// `SessionActions` buffer; `attaching` puts that slice into the action when it is handed out.
public protocol SessionAction {
    /// The same action with `data` as its bytes (only data actions carry any; others return self).
    func attaching(_ data: ArraySlice<UInt8>) -> Self
}
