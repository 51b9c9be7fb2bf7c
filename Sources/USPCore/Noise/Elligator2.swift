import CUSPCrypto

/// Elligator 2 on Curve25519 (docs/PROTOCOL.md §3.2.2): how USP writes an ephemeral public key so
/// that it reads as 32 uniformly random bytes. The arithmetic is in CUSPCrypto (`usp_elligator.c`);
/// X25519 itself stays swift-crypto's.
public enum Elligator2 {
    public static let representativeLength = 32

    /// The direct map: a representative (any 32 bytes; the top two bits are ignored) to the
    /// Montgomery u-coordinate of a point on the curve. Every input decodes, so a receiver never
    /// learns anything from a failed decode: there is none.
    public static func point(from representative: some Collection<UInt8>) -> [UInt8] {
        precondition(representative.count == representativeLength, "a representative is 32 bytes")
        let input = Array(representative)
        var u = [UInt8](repeating: 0, count: 32)
        input.withUnsafeBufferPointer { r in
            u.withUnsafeMutableBufferPointer { out in usp_elligator_map(out.baseAddress, r.baseAddress) }
        }
        return u
    }

    /// The inverse map: the representative of the point with u-coordinate `point`, or nil when it
    /// has none (about half of all points). Bit 0 of `tweak` picks one of the two representatives,
    /// bits 6 and 7 fill the two top bits.
    public static func representative(of point: [UInt8], tweak: UInt8) -> [UInt8]? {
        precondition(point.count == 32, "a u-coordinate is 32 bytes")
        var r = [UInt8](repeating: 0, count: representativeLength)
        let found = point.withUnsafeBufferPointer { u in
            r.withUnsafeMutableBufferPointer { out in usp_elligator_rev(out.baseAddress, u.baseAddress, tweak) }
        }
        return found == 1 ? r : nil
    }

    /// Hides a public key made by X25519 from a private key: adds the low-order point `torsion & 7`
    /// (which no X25519 result can see, since private scalars are multiples of 8) so that the point is
    /// uniform over the whole curve, then maps it back to a representative. Nil when that point has
    /// no representative; the caller then draws a new key.
    public static func hide(publicKey: [UInt8], torsion: UInt8, tweak: UInt8) -> [UInt8]? {
        precondition(publicKey.count == 32, "a public key is 32 bytes")
        var r = [UInt8](repeating: 0, count: representativeLength)
        let found = publicKey.withUnsafeBufferPointer { u in
            r.withUnsafeMutableBufferPointer { out in usp_elligator_hide(out.baseAddress, u.baseAddress, torsion, tweak) }
        }
        return found == 1 ? r : nil
    }
}

extension KeyPair {
    /// A key pair whose public key has an Elligator 2 representative, drawn as Monocypher and obfs4
    /// draw them: a fresh private key each try, until the (low-order-shifted) public key has a
    /// representative. Half of all keys do, so this takes two tries on average. Drawing anew each
    /// time, rather than stepping from the last key, keeps the accepted keys uniform.
    public static func generateHidden(using random: some RandomSource) -> KeyPair {
        while true {
            let candidate = generate(using: random)
            let choice = random.bytes(2)
            if let representative = Elligator2.hide(publicKey: candidate.publicKey, torsion: choice[0], tweak: choice[1]) {
                return candidate.withRepresentative(representative)
            }
        }
    }
}
