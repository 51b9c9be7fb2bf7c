import USPNIO

/// The stealth server's cap on connections held silently (`max_silent_holds`), shared fairly
/// between source networks as `AdmissionControl` shares connection slots: when it is full, the
/// oldest hold of the network holding the most gives way (it gets its FIN early), or the oldest
/// of the newcomer's own network when that one holds the most. A scan from a few networks can
/// thus only shorten its own holds, never those of a prober somewhere else.
public final class SilentHoldRoom: SilentHoldPool {
    private let control: AdmissionControl

    public init(capacity: Int, prefixLengths: SourcePrefix.Lengths) {
        control = AdmissionControl(maxConnections: capacity, maxStarting: capacity, maxPerSource: nil, prefixLengths: prefixLengths)
    }

    public func enter(peer: String, release: @escaping @Sendable () -> Void) -> (@Sendable () -> Void)? {
        switch control.admit(from: peer, evict: release) {
        case .success(let admission):
            let ticket = admission.ticket
            return { [control] in control.closed(ticket) }
        case .failure:
            return nil
        }
    }

    /// Connections held now.
    public var count: Int { control.total }
    /// Holds ended early to make room since start.
    public var released: Int { control.evictions }
}
