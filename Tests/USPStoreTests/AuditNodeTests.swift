import Foundation
import Testing
import USPTestSupport
@testable import USPStore

/// Every audit row names the uspd node that wrote it (`node_name`), on both backends, so that a
/// fleet's one trail says which node saw each event.
@Suite struct AuditNodeTests {
    @Test(arguments: StoreBackend.all) func everyRowNamesTheNodeThatWroteIt(_ backend: StoreBackend) throws {
        guard let opened = try backend.open(node: "node-a") else { return }
        let nodeB = try opened.another(node: "node-b")
        let unnamed = try opened.another()
        try opened.store.appendAudit(AuditEvent(time: at(1), kind: .connectionOpened, session: "s-a"))
        try nodeB.commit([.audit(AuditEvent(time: at(2), kind: .connectionOpened, session: "s-b"))], durable: true)
        // A row that names its node already (copied from elsewhere) keeps it.
        var copied = AuditEvent(time: at(3), kind: .connectionClosed, session: "s-c")
        copied.node = "old-host"
        try nodeB.appendAudit([copied])
        try unnamed.appendAudit(AuditEvent(time: at(4), kind: .connectionClosed, session: "s-d"))
        let rows = try opened.store.audit(identity: nil, since: nil, limit: nil)
        let nodes = Dictionary(uniqueKeysWithValues: rows.map { ($0.session ?? "?", $0.node ?? "none") })
        #expect(nodes == ["s-a": "node-a", "s-b": "node-b", "s-c": "old-host", "s-d": "none"])
    }
}
