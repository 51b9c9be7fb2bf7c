import Foundation

/// One node's latest report of its live sessions (`FleetDirectory`).
public struct NodeReport: Hashable, Sendable {
    public var node: String
    /// The node's answer to `uspd sessions`, as JSON text.
    public var report: String
    public var at: Date

    public init(node: String, report: String, at: Date) {
        self.node = node
        self.report = report
        self.at = at
    }
}

/// Where the nodes of a fleet report their live sessions, so that `uspd sessions --fleet` on any
/// node lists every node's. Sessions stay each node's own; only this report is shared. PostgreSQL
/// keeps it; a single SQLite daemon has nothing to share.
public protocol FleetDirectory: Sendable {
    /// Replaces `node`'s report with `report` (JSON text), made at `at`.
    func reportNode(_ node: String, report: String, at: Date) throws(StoreError)
    /// Deletes `node`'s report (the node stops).
    func withdrawNode(_ node: String) throws(StoreError)
    /// Every node's latest report, by node name.
    func nodeReports() throws(StoreError) -> [NodeReport]
}
