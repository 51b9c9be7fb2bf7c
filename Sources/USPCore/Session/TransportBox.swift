/// A session's transport phase kept behind one reference, copied on write: moving it in and out
/// of the session's phase enum (which every call does) costs one reference count instead of one
/// per buffer, table and string the transport holds, and copying a session still copies it.
final class TransportBox<Transport> {
    var value: Transport
    init(_ value: Transport) { self.value = value }
}

extension TransportBox: @unchecked Sendable where Transport: Sendable {}
