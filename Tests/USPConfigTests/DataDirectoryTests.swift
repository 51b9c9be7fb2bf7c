import Foundation
import Testing
import USPTestSupport
@testable import USPConfig

@Suite("DataDirectory")
struct DataDirectoryTests {
    @Test func resolution() {
        #expect(DataDirectory(resolving: nil, currentDirectory: "/srv").root == "/srv/usp-data")
        #expect(DataDirectory(resolving: "", currentDirectory: "/srv").root == "/srv/usp-data")
        #expect(DataDirectory(resolving: "data", currentDirectory: "/srv/").root == "/srv/data")
        #expect(DataDirectory(resolving: "./x/./y/", currentDirectory: "/srv").root == "/srv/x/y")
        #expect(DataDirectory(resolving: "/var/lib/uspd/", currentDirectory: "/srv").root == "/var/lib/uspd")
    }

    @Test func pathsFollowTheConfig() {
        let d = DataDirectory(resolving: "/var/lib/uspd", currentDirectory: "/")
        var c = ServerConfig()
        #expect(d.configPath == "/var/lib/uspd/uspd.toml")
        #expect(d.appsDirectory(c) == "/var/lib/uspd/apps.d")
        #expect(d.databasePath(c) == "/var/lib/uspd/usp.sqlite")
        #expect(d.hostKeyPath(c) == "/var/lib/uspd/host_key")
        c.appsDirectory = "/etc/uspd/apps.d"
        c.database = "db/usp.sqlite"
        c.hostKey = "/run/credentials/uspd.service/host_key"
        #expect(d.appsDirectory(c) == "/etc/uspd/apps.d")
        #expect(d.databasePath(c) == "/var/lib/uspd/db/usp.sqlite")
        #expect(d.hostKeyPath(c) == "/run/credentials/uspd.service/host_key")
    }

    @Test func createMakesPrivateDirectories() throws {
        let tmp = TempDirectory()
        let d = DataDirectory(resolving: "data", currentDirectory: tmp.path)
        try d.create()
        var st = stat()
        #expect(stat(d.root, &st) == 0)
        #expect(st.st_mode & 0o777 == 0o700)
        #expect(FileManager.default.fileExists(atPath: d.appsDirectory(ServerConfig())))
        try d.create()  // again: fine
        tmp.write("file", "x")
        let blocked = DataDirectory(resolving: "file", currentDirectory: tmp.path)
        #expect(configError { try blocked.create() }?.description == "\(tmp.file("file")): exists but is not a directory")
        // Parents are created too, with the modes asked for.
        let deep = DataDirectory(resolving: "a/b/c", currentDirectory: tmp.path)
        try deep.create()
        #expect(stat(deep.appsDirectory(ServerConfig()), &st) == 0)
        #expect(st.st_mode & 0o777 == 0o755)
        #expect(stat(deep.root, &st) == 0)
        #expect(st.st_mode & 0o777 == 0o700)
        // Under a file, creation fails with the system's reason.
        let underFile = DataDirectory(resolving: "file/sub", currentDirectory: tmp.path)
        #expect(configError { try underFile.create() }?.description == "\(tmp.file("file")): exists but is not a directory")
    }

    @Test(arguments: [0o600, 0o400, 0o700])
    func privateKeyFilesPass(mode: Int) throws {
        let tmp = TempDirectory()
        let key = tmp.write("host_key", "secret")
        chmod(key, mode_t(mode))
        try DataDirectory.ensureSecurePermissions(path: key)
    }

    @Test(arguments: [(0o644, "0644"), (0o640, "0640"), (0o604, "0604"), (0o660, "0660"), (0o602, "0602"), (0o610, "0610")])
    func openKeyFilesAreRefusedAsSSHDoes(mode: Int, shown: String) {
        let tmp = TempDirectory()
        let key = tmp.write("host_key", "secret")
        chmod(key, mode_t(mode))
        let e = configError { try DataDirectory.ensureSecurePermissions(path: key) }
        #expect(e?.code == .insecurePermissions)
        #expect(e?.description == "\(key): permissions \(shown) are too open: a key file must not be accessible by group or others (chmod 600 \(key))")
    }

    @Test func missingOrOddKeyFiles() {
        let tmp = TempDirectory()
        #expect(configError { try DataDirectory.ensureSecurePermissions(path: tmp.file("none")) }?.description
                == "\(tmp.file("none")): cannot open the key file: No such file or directory")
        #expect(configError { try DataDirectory.ensureSecurePermissions(path: tmp.path) }?.description
                == "\(tmp.path): the key file is not a regular file")
    }
}
