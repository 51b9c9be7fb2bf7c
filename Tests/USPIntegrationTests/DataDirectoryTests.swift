import Foundation
import Testing

/// Where uspd keeps its state: `--data-dir`, else `USPD_DATA_DIR`, else `STATE_DIRECTORY`, else
/// ./usp-data; never the client's `USP_HOME`.
@Suite struct DataDirectoryTests {
    @Test func uspdNeverUsesTheClientsHome() throws {
        let uspd = try Harness.executable("uspd")
        let base = try Harness.temporaryDirectory("homes")
        let client = base.appendingPathComponent("client"), server = base.appendingPathComponent("server")
        let state = base.appendingPathComponent("state")
        let exists = { (url: URL, name: String) in FileManager.default.fileExists(atPath: url.appendingPathComponent(name).path) }

        let first = try Harness.run(uspd, ["init"], environment: ["USP_HOME": client.path, "USPD_DATA_DIR": server.path])
        #expect(first.status == 0, "\(first.stderr)")
        #expect(exists(server, "host_key"))
        #expect(!FileManager.default.fileExists(atPath: client.path), "nothing in the client's home")

        let second = try Harness.run(uspd, ["init"], environment: ["USP_HOME": client.path, "STATE_DIRECTORY": state.path])
        #expect(second.status == 0, "\(second.stderr)")
        #expect(exists(state, "host_key"))
        #expect(!FileManager.default.fileExists(atPath: client.path))

        let uri = try Harness.run(uspd, ["uri"], environment: ["USP_HOME": client.path, "USPD_DATA_DIR": server.path])
        #expect(uri.status == 0 && uri.stdout.hasPrefix("usp://"), "\(uri.stderr)")
    }
}
