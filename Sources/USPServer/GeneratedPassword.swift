import USPCore

/// A password uspd makes up (the first admin's, `uspd user add --generate-password`): 18 random
/// bytes as base64url, 24 characters, 144 bits.
public enum GeneratedPassword {
    public static func make() -> String {
        Base64URL.encode(SystemRandomSource().bytes(18))
    }
}
