import Foundation
import Testing
import USPCore
import USPTestSupport

/// How the daemon ends a session whose client closed its side of the TCP connection
/// (docs/PROTOCOL.md §8.3): inside a record it still answers with a CLOSE `record_truncated`
/// before closing; between records there is no one to tell, so it closes without a word.
@Suite struct ConnectionEndTests {
    @Test func aConnectionEndingInsideARecordIsAnsweredWithClose() async throws {
        try await withDaemon(try TestDaemon()) { d in
            let client = try d.menuClient()
            // The first 10 bytes of a record (its header is longer), then the client's FIN.
            try client.socket.send([UInt8](repeating: 0x5a, count: 10))
            shutdown(client.socket.fd, CInt(SHUT_WR))
            try client.pump(timeout: 5) { $0.notes.contains { if case .closed = $0 { true } else { false } } }
            #expect(client.log.notes.last == .closed(USPError.Code.recordTruncated.name),
                    "the server's CLOSE names the truncation: \(client.log.notes)")
            #expect(client.socket.readToEnd(timeout: 5).closed, "then the server closes")
        }
    }

    @Test func aConnectionEndingBetweenRecordsIsClosedWithoutAWord() async throws {
        try await withDaemon(try TestDaemon()) { d in
            let client = try d.menuClient()
            shutdown(client.socket.fd, CInt(SHUT_WR))
            let rest = client.socket.readToEnd(timeout: 5)
            #expect(rest.closed)
            #expect(rest.bytes.isEmpty, "nothing is sent to a peer that left between records: \(rest.bytes.count) bytes")
        }
    }
}
