import Foundation
import USPStore

/// Where a PostgreSQL store is and how to log in, from a `postgresql://` URL (libpq's form) and a
/// password kept out of it.
///
/// ```
/// postgresql://uspd@db.example.net:5432/usp?sslmode=verify-full
/// postgresql://uspd@/usp?host=/var/run/postgresql          (Unix socket directory, as libpq)
/// ```
///
/// The password never travels in the URL: the URL is shown in logs and in `ps`, and `--database`
/// is a command-line argument. It comes from `password_file` (a file of one line, as a secret is
/// mounted), else from the environment (`USPD_DATABASE_PASSWORD`, then `PGPASSWORD`), else none
/// (peer or trust authentication over the Unix socket).
public struct PostgresLocation: Sendable, Equatable {
    public enum Endpoint: Sendable, Equatable {
        case tcp(host: String, port: Int)
        /// The socket file itself (`DIR/.s.PGSQL.PORT`).
        case unixSocket(path: String)
    }

    public enum TLSMode: String, Sendable, Equatable {
        /// No TLS (loopback, a Unix socket, or a network the operator trusts).
        case disable
        /// TLS with the server's certificate checked against the system's roots and its name.
        case verifyFull = "verify-full"
    }

    public var endpoint: Endpoint
    public var user: String
    public var database: String
    public var tls: TLSMode
    public var password: String?

    /// The URL without a password, for messages.
    public var displayURL: String {
        switch endpoint {
        case .tcp(let host, let port):
            let h = host.contains(":") ? "[\(host)]" : host
            return "postgresql://\(user)@\(h):\(port)/\(database)" + (tls == .disable ? "" : "?sslmode=\(tls.rawValue)")
        case .unixSocket(let path):
            let directory = (path as NSString).deletingLastPathComponent
            return "postgresql://\(user)@/\(database)?host=\(directory)"
        }
    }

    /// Whether `text` names a PostgreSQL store rather than a file.
    public static func isURL(_ text: String) -> Bool { StoreRules.isDatabaseURL(text) }

    /// Parses `url`; the password is looked up as described above.
    /// - Throws: `.invalidArgument` naming what is wrong: a password in the URL, an unknown
    ///   parameter or `sslmode`, a bad port, no user or database, an unreadable password file.
    public static func parse(_ url: String, passwordFile: String? = nil,
                             environment: [String: String] = ProcessInfo.processInfo.environment) throws(StoreError) -> PostgresLocation {
        func bad(_ s: String) -> StoreError { StoreError(.invalidArgument, path: "", "database URL \(redacted(url)): \(s)") }
        guard let schemeEnd = url.range(of: "://"), isURL(url) else { throw bad("does not start with postgresql://") }
        var rest = String(url[schemeEnd.upperBound...])
        var query: [(String, String)] = []
        if let q = rest.firstIndex(of: "?") {
            for pair in rest[rest.index(after: q)...].split(separator: "&") {
                let parts = pair.split(separator: "=", maxSplits: 1).map(String.init)
                guard parts.count == 2, let k = parts[0].removingPercentEncoding, let v = parts[1].removingPercentEncoding else {
                    throw bad("parameter \"\(pair)\" is not NAME=VALUE")
                }
                query.append((k, v))
            }
            rest = String(rest[..<q])
        }
        var database = ""
        if let slash = rest.firstIndex(of: "/") {
            database = String(rest[rest.index(after: slash)...]).removingPercentEncoding ?? ""
            rest = String(rest[..<slash])
        }
        var user = ""
        if let at = rest.lastIndex(of: "@") {
            let userInfo = String(rest[..<at])
            if userInfo.contains(":") {
                throw bad("holds a password; put it in password_file or USPD_DATABASE_PASSWORD instead (a URL is shown in logs and in ps)")
            }
            user = userInfo.removingPercentEncoding ?? userInfo
            rest = String(rest[rest.index(after: at)...])
        }
        var host = rest, port = 5432
        if host.hasPrefix("[") {
            guard let close = host.firstIndex(of: "]") else { throw bad("unclosed [ in the host") }
            let after = host[host.index(after: close)...]
            if after.hasPrefix(":") {
                guard let p = Int(after.dropFirst()), (1...65535).contains(p) else { throw bad("port \"\(after.dropFirst())\" is not 1-65535") }
                port = p
            } else if !after.isEmpty {
                throw bad("unexpected \"\(after)\" after the host")
            }
            host = String(host[host.index(after: host.startIndex)..<close])
        } else if let colon = host.lastIndex(of: ":") {
            let p = host[host.index(after: colon)...]
            guard let n = Int(p), (1...65535).contains(n) else { throw bad("port \"\(p)\" is not 1-65535") }
            port = n
            host = String(host[..<colon])
        }
        var tls = TLSMode.disable
        var socketDirectory: String?
        for (k, v) in query {
            switch k {
            case "sslmode":
                switch v {
                case "disable": tls = .disable
                case "verify-full": tls = .verifyFull
                default: throw bad("sslmode \"\(v)\" is not disable or verify-full (require and verify-ca do not check the server's name)")
                }
            case "host":
                guard v.hasPrefix("/") else { throw bad("host parameter \"\(v)\" is not a socket directory") }
                socketDirectory = v
            case "port":
                guard let n = Int(v), (1...65535).contains(n) else { throw bad("port \"\(v)\" is not 1-65535") }
                port = n
            case "user": user = v
            case "dbname": database = v
            case "password": throw bad("holds a password; put it in password_file or USPD_DATABASE_PASSWORD instead")
            default: throw bad("unknown parameter \"\(k)\" (known: sslmode, host, port, user, dbname)")
            }
        }
        if host.hasPrefix("/") || host.hasPrefix("%2F") || host.hasPrefix("%2f") {
            socketDirectory = host.removingPercentEncoding
            host = ""
        }
        if user.isEmpty { user = environment["PGUSER"] ?? "" }
        guard !user.isEmpty else { throw bad("names no user (postgresql://USER@HOST/DATABASE)") }
        guard !database.isEmpty else { throw bad("names no database (postgresql://USER@HOST/DATABASE)") }
        let endpoint: Endpoint
        if let socketDirectory {
            guard host.isEmpty else { throw bad("names both host \(host) and the socket directory \(socketDirectory)") }
            endpoint = .unixSocket(path: "\(socketDirectory)/.s.PGSQL.\(port)")
            guard tls == .disable else { throw bad("sslmode \(tls.rawValue) over a Unix socket") }
        } else {
            guard !host.isEmpty else { throw bad("names no host (or ?host=/socket/directory)") }
            endpoint = .tcp(host: host, port: port)
        }
        var password: String?
        if let passwordFile {
            guard let data = FileManager.default.contents(atPath: passwordFile) else {
                throw StoreError(.invalidArgument, path: passwordFile, "cannot read the database password file")
            }
            var text = String(decoding: data, as: UTF8.self)
            while text.hasSuffix("\n") || text.hasSuffix("\r") { text.removeLast() }
            guard !text.isEmpty, !text.contains("\n") else {
                throw StoreError(.invalidArgument, path: passwordFile, "the database password file must hold one non-empty line")
            }
            password = text
        } else {
            password = environment["USPD_DATABASE_PASSWORD"] ?? environment["PGPASSWORD"]
        }
        return PostgresLocation(endpoint: endpoint, user: user, database: database, tls: tls, password: password)
    }

    /// `url` with the password part of its user info and any `password=` parameter replaced by
    /// `***`, for an error message.
    static func redacted(_ url: String) -> String {
        var text = url
        if let schemeEnd = text.range(of: "://") {
            let rest = text[schemeEnd.upperBound...]
            if let at = rest.firstIndex(of: "@"), let colon = rest[..<at].firstIndex(of: ":") {
                text = String(text[..<colon]) + ":***" + String(rest[at...])
            }
        }
        if let q = text.firstIndex(of: "?") {
            let parameters = text[text.index(after: q)...].split(separator: "&", omittingEmptySubsequences: false).map { p in
                p.lowercased().hasPrefix("password=") ? "password=***" : String(p)
            }
            text = String(text[...q]) + parameters.joined(separator: "&")
        }
        return text
    }
}
