import FoundationEssentials

extension ClientConfig {
    /// The configuration `usp` reads: with `file` nil, `HOME/config` if it exists (else the
    /// empty configuration); `-F none`: the empty configuration; `-F FILE`: that file, which
    /// must exist. A file another user owns or that group or others may write is refused, as ssh
    /// refuses such a ~/.ssh/config.
    public static func load(home: ClientHome, file: String? = nil) throws(USPClientError) -> ClientConfig {
        if file == "none" { return ClientConfig() }
        let path = file ?? home.configPath
        if file == nil, !FileIO.exists(path) { return ClientConfig(path: path) }
        let text = try FileIO.readText(path, trustedFile: true, what: "the client configuration")
        return try ClientConfig(parsing: text, path: path)
    }
}

/// A file in `HOME/tokens/`: its saved login, or why it could not be read.
public struct SavedLoginFile: Sendable {
    public var path: String
    public var login: SavedLogin?
    public var problem: String?
}

extension ClientHome {
    /// Every saved login, by file name; a file that is not one is listed with its problem.
    public func savedLogins() throws(USPClientError) -> [SavedLoginFile] {
        guard FileIO.exists(tokensDirectory) else { return [] }
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: tokensDirectory) } catch {
            throw USPClientError(.localFile, "cannot list \(tokensDirectory): \(error)")
        }
        return names.filter { $0.hasSuffix(".json") }.sorted().map { name in
            let path = tokensDirectory + "/" + name
            do throws(USPClientError) {
                let bytes = try FileIO.read(path, privateFile: true, what: "the saved login")
                guard let login = SavedLogin(json: bytes) else {
                    return SavedLoginFile(path: path, problem: "not a saved login")
                }
                return SavedLoginFile(path: path, login: login)
            } catch {
                return SavedLoginFile(path: path, problem: error.message)
            }
        }
    }

    /// Deletes one file of `savedLogins()`; true if it was there.
    @discardableResult
    public func removeSavedLogin(at path: String) -> Bool {
        FileIO.remove(path)
    }
}
