/// `SHA256:<base64>` fingerprints, as OpenSSH prints them.
public enum Fingerprint {
    public static func of(_ key: [UInt8]) -> String {
        "SHA256:" + Base64URL.standardUnpadded(SHA256Digest.of(key))
    }
}
