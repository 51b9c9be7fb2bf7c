import Crypto
import _CryptoExtras
import Foundation

/// scrypt password hashes in the form `scrypt$N$r$p$<salt base64>$<hash base64>`
/// (standard base64 with padding; N, r and p in decimal), for example
///
/// ```
/// scrypt$16384$8$1$3q2+7w0A...==$Tm90IGEgcmVhbCBoYXNo...=
/// ```
///
/// - New hashes use N = 2^14, r = 8, p = 1 (16 MiB of memory), a 16-byte random salt and a
///   32-byte output, through `_CryptoExtras`' `KDF.Scrypt` (BoringSSL's `EVP_PBE_scrypt`).
/// - **Cost, measured** on this project's 2-core x86_64 Linux machine (Swift 6.3.1, swift-crypto
///   4.5.2): one `hash` or `verify` at the default parameters takes about **23 ms** in a release
///   build (median of 11 runs, 22–31 ms). In a debug build it takes about 130 ms (0.5 s while
///   the machine is busy building), because SwiftPM compiles BoringSSL's C code without
///   optimisation there; measure logins on release builds.
///   23 ms is the work an attacker spends per guess per core (about 43 guesses a second), before
///   the daemon's login delays (uspd.toml `login_delay_base`). OWASP's current scrypt advice is
///   N = 2^17 (128 MiB, about 8× the time); pass `Parameters` to `hash` to raise it, and
///   `needsRehash` finds hashes to upgrade at the next login.
/// - Passwords are normalised to Unicode NFC before hashing (as RFC 8265's OpaqueString profile
///   does), so the same password typed on systems that compose characters differently matches.
/// - The empty password is refused by `hash` and never matches in `verify`.
/// - `verify` compares the derived key with a constant-time loop. It refuses parameters beyond
///   N = 2^20, r = 16, p = 4 or 256 MiB, so a damaged or hostile hash string cannot make the
///   daemon allocate gigabytes.
public enum PasswordHash {
    /// scrypt cost parameters.
    public struct Parameters: Hashable, Sendable {
        /// CPU/memory cost, a power of two.
        public var n: Int
        /// Block size.
        public var r: Int
        /// Parallelism.
        public var p: Int

        public init(n: Int, r: Int, p: Int) {
            self.n = n
            self.r = r
            self.p = p
        }

        /// N = 2^14, r = 8, p = 1.
        public static let `default` = Parameters(n: 1 << 14, r: 8, p: 1)

        /// Memory scrypt needs, bytes (128·N·r for V, plus 128·r·p for B).
        public var memoryBytes: Int { 128 * n * r + 128 * r * p }

        /// Nil when acceptable; otherwise what is wrong.
        func problem() -> String? {
            if n < 2 || n > 1 << 20 || n & (n - 1) != 0 { return "N must be a power of two from 2 to 2^20, got \(n)" }
            if r < 1 || r > 16 { return "r must be 1…16, got \(r)" }
            if p < 1 || p > 4 { return "p must be 1…4, got \(p)" }
            if memoryBytes > 256 << 20 { return "parameters need \(memoryBytes >> 20) MiB, more than 256 MiB" }
            return nil
        }
    }

    /// Salt length of new hashes, bytes.
    public static let saltByteCount = 16
    /// Output length of new hashes, bytes.
    public static let outputByteCount = 32

    /// Hashes `password` with a fresh random salt.
    /// - Throws: `StoreError(.passwordHash)` for an empty password or unacceptable parameters.
    public static func hash(password: String, parameters: Parameters = .default) throws(StoreError) -> String {
        var salt = [UInt8](repeating: 0, count: saltByteCount)
        var rng = SystemRandomNumberGenerator()
        for i in salt.indices { salt[i] = rng.next() }
        return try hash(password: password, salt: salt, parameters: parameters)
    }

    /// Hashes with a given salt (for tests and known-answer checks; production code uses `hash(password:)`).
    public static func hash(password: String, salt: [UInt8], parameters: Parameters = .default) throws(StoreError) -> String {
        if let problem = parameters.problem() { throw StoreError(.passwordHash, path: "", "scrypt \(problem)") }
        guard salt.count >= 8, salt.count <= 64 else {
            throw StoreError(.passwordHash, path: "", "scrypt salt must be 8…64 bytes, got \(salt.count)")
        }
        let bytes = passwordBytes(password)
        guard !bytes.isEmpty else { throw StoreError(.passwordHash, path: "", "the empty password cannot be hashed") }
        let derived = try derive(bytes, salt: salt, parameters: parameters, count: outputByteCount)
        return "scrypt$\(parameters.n)$\(parameters.r)$\(parameters.p)$\(Data(salt).base64EncodedString())$\(Data(derived).base64EncodedString())"
    }

    /// Whether `password` matches `hash`.
    /// - Throws: `StoreError(.passwordHash)` when `hash` is malformed (the message says how), so a
    ///   damaged database row is reported rather than read as "wrong password".
    public static func verify(password: String, hash: String) throws(StoreError) -> Bool {
        let parsed = try parse(hash)
        let bytes = passwordBytes(password)
        // The KDF cannot take an empty input (swift-crypto force-unwraps its base address), and the
        // empty password was never hashed, so it cannot match.
        guard !bytes.isEmpty else { return false }
        let derived = try derive(bytes, salt: parsed.salt, parameters: parsed.parameters, count: parsed.hash.count)
        return constantTimeEqual(derived, parsed.hash)
    }

    /// Spends the time of one `verify` at the default parameters and returns false: call it when
    /// the user does not exist, so the answer time does not reveal which names exist.
    public static func verifyAgainstDummy(password: String) -> Bool {
        let bytes = passwordBytes(password)
        _ = try? derive(bytes.isEmpty ? [0] : bytes, salt: [UInt8](repeating: 0, count: saltByteCount),
                        parameters: .default, count: outputByteCount)
        return false
    }

    /// Whether a stored hash uses other parameters than `parameters` (rehash it at the next login).
    public static func needsRehash(_ hash: String, parameters: Parameters = .default) -> Bool {
        guard let parsed = try? parse(hash) else { return true }
        return parsed.parameters != parameters || parsed.hash.count != outputByteCount
    }

    /// Checks the form of a stored hash without a password.
    public static func validate(_ hash: String) throws(StoreError) {
        _ = try parse(hash)
    }

    // MARK: - Internals

    struct Parsed {
        var parameters: Parameters
        var salt: [UInt8]
        var hash: [UInt8]
    }

    static func parse(_ text: String) throws(StoreError) -> Parsed {
        func fail(_ why: String) -> StoreError {
            StoreError(.passwordHash, path: "", "malformed password hash: \(why)")
        }
        let parts = text.split(separator: "$", omittingEmptySubsequences: false)
        guard parts.count == 6 else {
            throw fail("expected 6 fields scrypt$N$r$p$salt$hash separated by \"$\", got \(parts.count)")
        }
        guard parts[0] == "scrypt" else { throw fail("unknown scheme \"\(parts[0].prefix(20))\", expected \"scrypt\"") }
        func number(_ s: Substring, _ name: String) throws(StoreError) -> Int {
            guard !s.isEmpty, s.count <= 8, s.allSatisfy({ $0.isASCII && $0.isNumber }), !(s.count > 1 && s.first == "0"),
                  let v = Int(s) else {
                throw fail("\(name) is not a decimal number: \"\(s.prefix(20))\"")
            }
            return v
        }
        let parameters = Parameters(n: try number(parts[1], "N"), r: try number(parts[2], "r"), p: try number(parts[3], "p"))
        if let problem = parameters.problem() { throw fail(problem) }
        func base64(_ s: Substring, _ name: String) throws(StoreError) -> [UInt8] {
            guard let d = Data(base64Encoded: String(s)), d.base64EncodedString() == s else {
                throw fail("\(name) is not canonical base64")
            }
            return [UInt8](d)
        }
        let salt = try base64(parts[4], "salt")
        guard salt.count >= 8, salt.count <= 64 else { throw fail("salt must be 8…64 bytes, got \(salt.count)") }
        let hash = try base64(parts[5], "hash")
        guard hash.count >= 16, hash.count <= 64 else { throw fail("hash must be 16…64 bytes, got \(hash.count)") }
        return Parsed(parameters: parameters, salt: salt, hash: hash)
    }

    static func passwordBytes(_ password: String) -> [UInt8] {
        Array(password.precomposedStringWithCanonicalMapping.utf8)
    }

    static func derive(_ password: [UInt8], salt: [UInt8], parameters: Parameters, count: Int) throws(StoreError) -> [UInt8] {
        precondition(!password.isEmpty && !salt.isEmpty, "KDF.Scrypt force-unwraps the buffers' base addresses")
        do {
            let key = try KDF.Scrypt.deriveKey(from: password, salt: salt, outputByteCount: count,
                                               rounds: parameters.n, blockSize: parameters.r, parallelism: parameters.p)
            return key.withUnsafeBytes { Array($0) }
        } catch {
            throw StoreError(.passwordHash, path: "", "scrypt failed: \(error)")
        }
    }

    /// Time depends only on the lengths, which are public (they are in the hash string).
    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var diff: UInt8 = 0
        for i in a.indices { diff |= a[i] ^ b[i] }
        return diff == 0
    }
}
