import Foundation

/// The applications of the hand-off tests: the Python scripts in Python/ and the Swift example.
enum HandoffPeers {
    /// python3's real path (a pyenv shim needs more environment than uspd gives an exec'd command).
    static let python: String? = {
        guard let r = try? Harness.run("/usr/bin/env", ["python3", "-c", "import sys; print(sys.executable)"]), r.status == 0 else { return nil }
        let path = r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        return path.isEmpty ? nil : path
    }()

    static func script(_ name: String) -> String {
        Harness.packageRoot.appendingPathComponent("Tests/USPIntegrationTests/Python/\(name)").path
    }

    /// The Python `unix` application on `socket`, once it listens; `mode` is ok, refuse or close.
    static func pythonApp(socket: String, mode: String = "ok") throws -> RunningProcess {
        let python = try requirePython()
        let p = try RunningProcess("handoff_app.py", executable: python, arguments: [script("handoff_app.py"), socket, mode])
        _ = try p.waitForOutput { $0.contains("ready") }
        return p
    }

    /// usp-example-upper listening on `socket`.
    static func exampleApp(socket: String) throws -> RunningProcess {
        let p = try RunningProcess("usp-example-upper", executable: try Harness.executable("usp-example-upper"), arguments: ["--socket", socket])
        _ = try p.waitForOutput { $0.contains("listening on") }
        return p
    }

    /// Both running applications, each on a socket in a new temporary directory (`label` names
    /// it), behind a daemon that has them as its two `unix` applications: `upper` (the Swift
    /// example; relay-free if `upperRelayFree`) and `py` (the Python one, with `pyBody` as its
    /// expected request body). `body` gets the daemon and `upper`'s process; both applications
    /// stop when it returns.
    static func withUpperAndPy(directory label: String, visibility: String, upperRelayFree: Bool = false, pyBody: [String: String] = [:],
                               config: String, _ body: (DaemonFixture, RunningProcess) throws -> Void) throws {
        let dir = try Harness.temporaryDirectory(label)
        let upperSocket = dir.appendingPathComponent("upper.sock").path
        let pySocket = dir.appendingPathComponent("py.sock").path
        let upper = try exampleApp(socket: upperSocket)
        defer { upper.stop() }
        let py = try pythonApp(socket: pySocket)
        defer { py.stop() }
        let daemon = try DaemonFixture(apps: [
            "upper.toml": unixApp("upper", socket: upperSocket, visibility: visibility, relayFree: upperRelayFree),
            "py.toml": unixApp("py", socket: pySocket, visibility: visibility, body: pyBody),
        ], config: config)
        try body(daemon, upper)
    }

    static func requirePython() throws -> String {
        guard let python else { throw HarnessError("python3 is not installed") }
        return python
    }
}

/// A `usp connect` whose stdin the test writes and closes, to hold several sessions open at once.
final class InteractiveClient {
    let process: RunningProcess
    private let input = Pipe()

    /// `uri`: another way to the daemon (a proxy), instead of `daemon.uri`.
    init(_ daemon: DaemonFixture, application: String, fields: [String] = [], uri: String? = nil) throws {
        process = try RunningProcess("usp connect \(application)", executable: try Harness.executable("usp"),
                                     arguments: ["--home", daemon.home.path, "connect", uri ?? daemon.uri, application] + fields.flatMap { ["--field", $0] },
                                     stdin: input.fileHandleForReading)
        try input.fileHandleForReading.close()
    }

    func send(_ text: String) { input.fileHandleForWriting.write(Data(text.utf8)) }

    func waitFor(_ text: String) throws { _ = try process.waitForOutput { $0.contains(text) } }

    /// Closes stdin (a FIN to the application) and waits for the exit status.
    func finish() throws -> Int32 {
        try input.fileHandleForWriting.close()
        return try process.wait(timeout: 20)
    }
}
