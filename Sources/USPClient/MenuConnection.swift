extension USPConnection {
    /// A connection for the menu, with the home's saved login unless `useSavedLogin` is false. A
    /// saved login the server no longer accepts is forgotten and the connection made again
    /// without it. `notice` hears, one line for a person each, that the server's key was added to
    /// known_servers and that a saved login was removed.
    public static func connectForMenu(to server: ServerURI, home: ClientHome, options: USPConnectionOptions, useSavedLogin: Bool = true,
                                      notice: (String) -> Void) async throws -> USPConnection {
        var o = options
        // --anonymous shows nothing of who the user is: not the identity key, not the saved login.
        let saved = useSavedLogin && !options.anonymous ? try home.loadLogin(for: server) : nil
        o.authorizationToken = saved?.token
        do {
            let c = try await connect(to: server, home: home, options: o)
            if c.recordedServerKey {
                notice("added \(server.hostPort) (\(c.serverFingerprint)) to \(home.knownServersPath)")
            }
            return c
        } catch let e as USPClientError where e.code == .loginExpired && saved != nil {
            home.removeLogin(for: server)
            notice(savedLoginRemoved(e))
            o.authorizationToken = nil
            return try await connect(to: server, home: home, options: o)
        }
    }

    /// The notice that a saved login was forgotten because the server refused it with `error`.
    public static func savedLoginRemoved(_ error: USPClientError) -> String {
        "warning: \(error.message); the saved login was removed"
    }
}
