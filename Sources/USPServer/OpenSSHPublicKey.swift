import Foundation

/// `ssh-ed25519 AAAA… comment` lines (an `id_ed25519.pub` or an authorized_keys entry), so an
/// administrator registers a user's existing SSH key with `uspd user add NAME --key "$(cat key.pub)"`.
enum OpenSSHPublicKey {
    /// The 32-byte Ed25519 key of such a line, or nil if it is not one.
    static func ed25519(line: String) -> [UInt8]? {
        let parts = line.split(separator: " ", omittingEmptySubsequences: true)
        guard parts.count >= 2, parts[0] == "ssh-ed25519", let blob = Data(base64Encoded: String(parts[1])) else { return nil }
        // RFC 4253 §6.6: string "ssh-ed25519", string key (32 bytes); nothing after.
        let b = Array(blob)
        func length(at i: Int) -> Int? {
            guard b.count >= i + 4 else { return nil }
            return b[i..<i + 4].reduce(0) { $0 << 8 | Int($1) }
        }
        guard let n = length(at: 0), n == 11, b.count >= 4 + n, String(decoding: b[4..<4 + n], as: UTF8.self) == "ssh-ed25519",
              let k = length(at: 4 + n), k == 32, b.count == 8 + n + k else { return nil }
        return Array(b[(8 + n)...])
    }
}
