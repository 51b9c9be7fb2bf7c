import Foundation
import Testing
@testable import USPClient

/// OpenSSH Ed25519 private keys for `usp login --ssh-key`: the real format read, and every
/// broken or unsupported file refused with its path and the reason.
@Suite struct SSHKeyFileTests {
    @Test func refusesWhatIsNotAnUnencryptedEd25519Key() {
        func refusal(_ text: String) -> String? {
            do { _ = try SSHKeyFile.privateKey(text: text, path: "/k"); return nil } catch { return error.message }
        }
        #expect(refusal("hello")?.contains("not an OpenSSH private key") == true)
        #expect(refusal("-----BEGIN OPENSSH PRIVATE KEY-----\n!!!\n-----END OPENSSH PRIVATE KEY-----")?.contains("not valid base64") == true)
        let notV1 = Data("something-else\u{0}".utf8).base64EncodedString()
        #expect(refusal("-----BEGIN OPENSSH PRIVATE KEY-----\n\(notV1)\n-----END OPENSSH PRIVATE KEY-----")?.contains("openssh-key-v1") == true)
        let truncated = Data("openssh-key-v1\u{0}\u{0}\u{0}".utf8).base64EncodedString()
        #expect(refusal("-----BEGIN OPENSSH PRIVATE KEY-----\n\(truncated)\n-----END OPENSSH PRIVATE KEY-----")?.contains("truncated") == true)
    }

    @Test func readsAKeyFromSSHKeygenAndRefusesRSA() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("usp-sshkey-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/ssh-keygen") else {
            print("SKIP: /usr/bin/ssh-keygen not installed")
            return
        }
        func keygen(_ type: String, _ name: String) throws -> String {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/ssh-keygen")
            p.arguments = ["-q", "-t", type, "-N", "", "-f", dir.appendingPathComponent(name).path]
            try p.run()
            p.waitUntilExit()
            return dir.appendingPathComponent(name).path
        }
        let ed = try keygen("ed25519", "ed")
        let key = try SSHKeyFile.privateKey(at: ed)
        let pub = try String(contentsOfFile: ed + ".pub", encoding: .utf8)
        let blob = try #require(Data(base64Encoded: String(pub.split(separator: " ")[1])))
        #expect(Array(blob.suffix(32)) == Array(key.publicKey.rawRepresentation))
        let rsa = try keygen("rsa", "rsa")
        #expect(throws: USPClientError.self) { _ = try SSHKeyFile.privateKey(at: rsa) }
        do { _ = try SSHKeyFile.privateKey(at: rsa) } catch { #expect(error.message.contains("ssh-rsa") && error.message.contains(rsa)) }
        do { _ = try SSHKeyFile.privateKey(at: dir.appendingPathComponent("missing").path) } catch { #expect(error.message.contains("cannot read")) }
    }
}
