/// `usp connect` without the agent: one application stream bridged to standard input and output,
/// as ssh's ProxyCommand wants it.
public enum StdioApplicationSession {
    /// Opens `application` on `server` and copies between its stream and stdin/stdout until the
    /// server finishes the stream. `input` is already reading stdin: its first bytes (waited for
    /// at most `earlyWait`) travel in the handshake. `notice` hears what a person should know on
    /// the way (a saved login removed, a server key added to known_servers).
    ///
    /// Without `textFields` the application is begun by name on one dedicated connection, with
    /// the saved login and the first bytes in message 1. Fields are typed by the menu's
    /// expected_request_body, so with them a menu connection fetches a token first.
    ///
    /// With `applicationToken` (a token secret, such as one a broker obtained for this machine)
    /// the connection begins with that token: no login, no menu; `application` is only a name
    /// for messages.
    public static func run(_ application: String, server: ServerURI, home: ClientHome, options: USPConnectionOptions,
                           textFields: [String: String], applicationToken: String? = nil, input: FDReader, earlyWait: Duration,
                           notice: (String) -> Void) async throws {
        let stream: USPStream
        var ended = false
        var closing: Task<Void, Never>?
        if let applicationToken {
            let first: [UInt8]
            (first, ended) = input.takeAvailable(upTo: USPConnection.earlyDataBudget(.ik), waitingAtMost: earlyWait)
            do {
                stream = try await USPConnection.connectDedicated(to: server, home: home, token: applicationToken, initialData: first, options: options)
            } catch let e as USPClientError {
                throw ErrorText.givenToken(e, server: server)
            }
        } else if textFields.isEmpty {
            stream = try await DedicatedBegin.byName(application, server: server, home: home, options: options, initialData: { budget in
                let (first, atEnd) = input.takeAvailable(upTo: budget, waitingAtMost: earlyWait)
                ended = atEnd
                return first
            }, onLoginExpired: { e in notice(USPConnection.savedLoginRemoved(e)) })
        } else {
            let menu = try await USPConnection.connectForMenu(to: server, home: home, options: options, notice: notice)
            let token = try await menu.requestApplication(name: application, textFields: textFields)
            closing = Task { await menu.close() }
            let first: [UInt8]
            (first, ended) = input.takeAvailable(upTo: USPConnection.earlyDataBudget(.ik), waitingAtMost: earlyWait)
            stream = try await USPConnection.connectDedicated(to: server, home: home, token: token, initialData: first, options: options)
        }
        do {
            // Pipes, sockets and terminals go through the event loop; files through a thread.
            if try await !StdioPipeBridge.run(stream: stream, input: input, inputEnded: ended) {
                try await StdioBridge.run(stream: stream, input: input, inputEnded: ended)
            }
        } catch {
            await stream.close()
            throw error
        }
        await stream.close()
        await closing?.value
    }
}
