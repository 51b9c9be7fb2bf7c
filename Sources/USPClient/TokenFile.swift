import Glibc
import USPCore

/// An application token handed from a broker to the machine it was brokered for, in a file:
/// `usp broker --output FILE` writes it, `usp connect --token-file FILE` reads it. The token is
/// a credential until it expires, so the file is written with mode 600.
public enum TokenFile {
    /// Writes `text` (the bare token, or `usp broker --json`'s object) and a newline to `path`,
    /// atomically, with mode 600.
    public static func write(_ text: String, to path: String) throws(USPClientError) {
        try FileIO.writeText(path, text + "\n", mode: 0o600, what: "the token file")
    }

    /// The token text in `path`: its first non-empty line (a byte-order mark dropped), or that
    /// line's `"token"` when it is the JSON object `usp broker --json` writes. `warn` hears it
    /// when group or others may read the file.
    public static func read(_ path: String, warn: (String) -> Void) throws(USPClientError) -> String {
        var content = try FileIO.readText(path, what: "the token file")
        var st = stat()
        if stat(path, &st) == 0, st.st_mode & 0o077 != 0 {
            warn("warning: --token-file \(path) may be read by other users (mode \(FileIO.octal(st.st_mode & 0o777))); chmod 600 it")
        }
        if content.hasPrefix("\u{FEFF}") { content.removeFirst() }
        let line = content.split(whereSeparator: \.isNewline).first.map(String.init) ?? ""
        if line.hasPrefix("{"), case .object(let o)? = try? JSONValue.parse(Array(line.utf8)), case .string(let token)? = o["token"] {
            return token
        }
        return line
    }
}
