import USPCore

/// A dedicated connection begun by name with the home's saved login, as `usp connect` and the
/// agent open streams: the saved login selects the menu the name is looked up on.
public enum DedicatedBegin {
    /// Begins `name` with `request`. A saved login the server no longer accepts is forgotten
    /// (`onLoginExpired` hears why) and the begin is tried again without it. An unknown
    /// application is explained from the menu ("no application named … (available: …)").
    /// `initialData` is asked once for the first bytes, given the early-data budget.
    public static func byName(_ name: String, request: [String: JSONValue] = [:], server: ServerURI, home: ClientHome,
                              options: USPConnectionOptions, initialData: (Int) -> [UInt8] = { _ in [] },
                              onLoginExpired: (USPClientError) -> Void = { _ in }) async throws -> USPStream {
        var o = options
        let saved = options.anonymous ? nil : try home.loadLogin(for: server)
        o.authorizationToken = saved?.token
        let budget = USPConnection.earlyDataBudget(.ik, application: .init(name: name, request: request), authorizationToken: saved != nil)
        let first = initialData(budget)
        do {
            do {
                return try await USPConnection.connectDedicated(to: server, home: home, application: name, request: request,
                                                                initialData: first, options: o)
            } catch let e as USPClientError where e.code == .loginExpired && saved != nil {
                home.removeLogin(for: server)
                onLoginExpired(e)
                o.authorizationToken = nil
                return try await USPConnection.connectDedicated(to: server, home: home, application: name, request: request,
                                                                initialData: first, options: o)
            }
        } catch let e as USPClientError where e.wireCode == .unknownApplication || e.wireCode == .authorizationMissing {
            // Only on this error path: the menu says what there is, for a better message.
            try await explainUnknown(name, server: server, home: home, options: o)
            throw e
        }
    }

    /// Throws the menu's "no application named … (available: …)" if `name` is not on it.
    static func explainUnknown(_ name: String, server: ServerURI, home: ClientHome, options: USPConnectionOptions) async throws {
        guard let menu = try? await USPConnection.connect(to: server, home: home, options: options) else { return }
        do {
            _ = try await menu.offer(named: name)
        } catch {
            await menu.close()
            throw error
        }
        await menu.close()
    }
}
