import Synchronization
import USPConfig

/// The applications the daemon offers, as an immutable snapshot that a reload replaces whole.
///
/// Menu indices are stable for a snapshot and the same for every caller: public applications
/// first, then the others, each group by name. A stranger therefore sees 1…k without gaps (nothing
/// about hidden applications leaks), and an index means the same application on every menu of the
/// snapshot, which the core relies on when a request carries another identity's token.
public final class ApplicationCatalog: Sendable {
    public struct Entry: Sendable, Hashable {
        public let index: UInt32
        public let definition: ApplicationDefinition
    }

    public struct Snapshot: Sendable {
        public let entries: [Entry]
        private let byName: [String: Entry]

        public init(_ definitions: [ApplicationDefinition]) {
            let ordered = definitions.sorted { a, b in
                let pa = a.visibility == .public, pb = b.visibility == .public
                return pa != pb ? pa : a.name < b.name
            }
            var entries: [Entry] = []
            var byName: [String: Entry] = [:]
            for d in ordered where byName[d.name] == nil {
                let e = Entry(index: UInt32(entries.count + 1), definition: d)
                entries.append(e)
                byName[d.name] = e
            }
            self.entries = entries
            self.byName = byName
        }

        public func application(named name: String) -> Entry? { byName[name] }
    }

    private let current: Mutex<Snapshot>

    public init(_ definitions: [ApplicationDefinition] = []) {
        current = Mutex(Snapshot(definitions))
    }

    public func snapshot() -> Snapshot { current.withLock { $0 } }

    public func application(named name: String) -> ApplicationDefinition? {
        current.withLock { $0.application(named: name)?.definition }
    }

    /// Replaces the applications. Sessions keep the menus they were sent; requests are matched by name.
    public func replace(with definitions: [ApplicationDefinition]) {
        let snapshot = Snapshot(definitions)
        current.withLock { $0 = snapshot }
    }
}
