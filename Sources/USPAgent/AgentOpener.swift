import USPClient
import USPCore

/// How the agent opens the USP stream a program asked for, with the agent's own home: its
/// identity key, known_servers and saved logins, which the program never sees.
struct AgentOpener: Sendable {
    let home: ClientHome
    let options: USPConnectionOptions
    let log: AgentLog

    /// A dedicated connection: begun by name with `fields` as the request body, or, with
    /// `textFields`, with a token from the menu (which types the fields). Failures keep the
    /// client library's code and message (the server's error text).
    func open(_ request: AgentRequest.Open) async throws(AgentError) -> USPStream {
        do {
            if let text = request.textFields {
                return try await withTextFields(request, text)
            }
            return try await DedicatedBegin.byName(request.application, request: request.fields, server: request.server, home: home,
                                                   options: options, onLoginExpired: { e in
                log.record("login_removed", ["server": .string(request.server.hostPort), "message": .string(e.message)])
            })
        } catch let e as USPClientError {
            throw AgentError(AgentError.Code(e.code.rawValue), e.message)
        } catch {
            throw AgentError(.systemCall, "\(request.server.hostPort): \(error)")
        }
    }

    private func withTextFields(_ request: AgentRequest.Open, _ text: [String: String]) async throws -> USPStream {
        var o = options
        o.authorizationToken = try home.loadLogin(for: request.server)?.token
        let menu = try await USPConnection.connect(to: request.server, home: home, options: o)
        let token: String
        do {
            token = try await menu.requestApplication(name: request.application, textFields: text)
        } catch {
            await menu.close()
            throw error
        }
        await menu.close()
        return try await USPConnection.connectDedicated(to: request.server, home: home, token: token, options: options)
    }
}
