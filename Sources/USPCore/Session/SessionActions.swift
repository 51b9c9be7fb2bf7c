/// What a session asks of its I/O shell, in order, in a buffer the shell owns and reuses.
///
/// Every session call that can have consequences (`receive`, `endOfInput`, `close`, a stream's
/// `finish`, …) appends its actions here instead of calling back, so the shell acts on them after
/// the call returns, when the session is free to be called again (an application that writes
/// while it handles data calls the session from inside the shell's loop, not from inside the
/// session). Stream bytes are copied once into the buffer's own storage, which is kept across
/// `removeAll()`: in steady state the data path allocates nothing here.
///
/// Iterate to act; a data action's `ArraySlice` shares the buffer's storage, so let it go (copy
/// it into the shell's own buffer) before calling `removeAll()` and reusing the buffer.
public struct SessionActions<Action: SessionAction>: Sequence {
    @usableFromInline var actions: [Action] = []
    /// Per action, the range of `bytes` it carries (nil for actions without data).
    @usableFromInline var ranges: [Range<Int>?] = []
    @usableFromInline var bytes: [UInt8] = []

    public init() {}

    public var count: Int { actions.count }
    public var isEmpty: Bool { actions.isEmpty }

    @inlinable
    public mutating func append(_ action: Action) {
        actions.append(action)
        ranges.append(nil)
    }

    /// Appends `action` with a copy of `data`, handed out as its slice when iterated.
    @inlinable
    public mutating func append(_ action: Action, carrying data: UnsafeRawBufferPointer) {
        let start = bytes.count
        bytes.append(contentsOf: data)
        actions.append(action)
        ranges.append(start..<bytes.count)
    }

    /// Forgets every action, keeping the storage for the next call.
    @inlinable
    public mutating func removeAll() {
        actions.removeAll(keepingCapacity: true)
        ranges.removeAll(keepingCapacity: true)
        bytes.removeAll(keepingCapacity: true)
    }

    public struct Iterator: IteratorProtocol {
        @usableFromInline let base: SessionActions
        @usableFromInline var index = 0
        @inlinable init(base: SessionActions) { self.base = base }

        @inlinable
        public mutating func next() -> Action? {
            guard index < base.actions.count else { return nil }
            defer { index += 1 }
            guard let range = base.ranges[index] else { return base.actions[index] }
            return base.actions[index].attaching(base.bytes[range])
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
