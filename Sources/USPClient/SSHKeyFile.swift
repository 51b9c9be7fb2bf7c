import Crypto
import FoundationEssentials
import USPCore

/// OpenSSH Ed25519 keys, so that `usp login --ssh-key ~/.ssh/id_ed25519` logs in with the key a
/// user already has (method `publickey`: an Ed25519 signature over the handshake hash).
///
/// Reads the `openssh-key-v1` private key format (`-----BEGIN OPENSSH PRIVATE KEY-----`) without
/// a passphrase. Every refusal names the file and what is wrong with it.
public enum SSHKeyFile {
    /// The signing key in an unencrypted OpenSSH Ed25519 private key file.
    public static func privateKey(at path: String) throws(USPClientError) -> Curve25519.Signing.PrivateKey {
        try privateKey(text: try FileIO.readText(path, what: "the SSH key"), path: path)
    }

    static func privateKey(text: String, path: String) throws(USPClientError) -> Curve25519.Signing.PrivateKey {
        let begin = "-----BEGIN OPENSSH PRIVATE KEY-----", end = "-----END OPENSSH PRIVATE KEY-----"
        guard let b = text.firstRange(of: begin), let e = text.firstRange(of: end), b.upperBound <= e.lowerBound else {
            throw USPClientError(.localFile, "\(path) is not an OpenSSH private key (no \(begin) block; PEM/PKCS#8 keys: convert with ssh-keygen -p -f \(path))")
        }
        let body = text[b.upperBound..<e.lowerBound].filter { !$0.isWhitespace }
        guard let data = Data(base64Encoded: String(body)) else { throw USPClientError(.localFile, "\(path): the key block is not valid base64") }
        var r = SSHWireReader(Array(data), path: path)
        let magic = Array("openssh-key-v1".utf8) + [0]
        guard try r.take(magic.count) == magic else { throw USPClientError(.localFile, "\(path): not an openssh-key-v1 key") }
        let cipher = try r.string(), kdf = try r.string()
        _ = try r.bytes()   // kdf options
        guard cipher == "none", kdf == "none" else {
            throw USPClientError(.localFile, "\(path) is protected by a passphrase (\(cipher)); usp cannot use encrypted keys yet: use an unencrypted copy kept private, or usp keygen and --key")
        }
        guard try r.uint32() == 1 else { throw USPClientError(.localFile, "\(path) holds more than one key") }
        _ = try r.bytes()   // the public key blob; the private section repeats it
        var p = SSHWireReader(try r.bytes(), path: path)
        guard try p.uint32() == (try p.uint32()) else { throw USPClientError(.localFile, "\(path): the private section's check words differ (corrupt key)") }
        let type = try p.string()
        guard type == "ssh-ed25519" else { throw USPClientError(.localFile, "\(path) is an \(type) key; usp signs with Ed25519 keys only (ssh-keygen -t ed25519)") }
        let publicKey = try p.bytes(), secret = try p.bytes()
        guard publicKey.count == 32, secret.count == 64, Array(secret[32...]) == publicKey else {
            throw USPClientError(.localFile, "\(path): malformed Ed25519 key (lengths \(publicKey.count)/\(secret.count))")
        }
        do {
            let key = try Curve25519.Signing.PrivateKey(rawRepresentation: secret[0..<32])
            guard Array(key.publicKey.rawRepresentation) == publicKey else {
                throw USPClientError(.localFile, "\(path): the public key does not match the private key (corrupt key)")
            }
            return key
        } catch let e as USPClientError {
            throw e
        } catch {
            throw USPClientError(.localFile, "\(path): \(error)")
        }
    }
}

/// SSH wire encoding (RFC 4251 §5): uint32 and length-prefixed strings.
struct SSHWireReader {
    private let data: [UInt8]
    private var offset = 0
    let path: String
    init(_ data: [UInt8], path: String) {
        self.data = data
        self.path = path
    }

    mutating func take(_ n: Int) throws(USPClientError) -> [UInt8] {
        guard n >= 0, data.count - offset >= n else { throw USPClientError(.localFile, "\(path): the key is truncated") }
        defer { offset += n }
        return Array(data[offset..<offset + n])
    }

    mutating func uint32() throws(USPClientError) -> UInt32 {
        try take(4).reduce(0) { $0 << 8 | UInt32($1) }
    }

    mutating func bytes() throws(USPClientError) -> [UInt8] {
        try take(Int(try uint32()))
    }

    mutating func string() throws(USPClientError) -> String {
        String(decoding: try bytes(), as: UTF8.self)
    }
}
