import USPCore

/// What an application asks of its stream.
enum AppOutput: Equatable {
    case write([UInt8])
    /// Half-close once everything written so far is sent.
    case finish
}

/// A toy application on the far end of a stream. It is told what happens on its stream and
/// answers with output; the server connection does the sending.
protocol DemoApplication: Sendable {
    func opened() -> [AppOutput]
    func received(_ data: [UInt8]) -> [AppOutput]
    func peerFinished() -> [AppOutput]
}

/// Sends every byte back; finishes when the client does.
struct EchoApplication: DemoApplication {
    func opened() -> [AppOutput] { [] }
    func received(_ data: [UInt8]) -> [AppOutput] { [.write(data)] }
    func peerFinished() -> [AppOutput] { [.finish] }
}

/// Writes the current UTC time and finishes.
struct TimeApplication: DemoApplication {
    func opened() -> [AppOutput] { [.write(Array((currentTimeText() + "\n").utf8)), .finish] }
    func received(_ data: [UInt8]) -> [AppOutput] { [] }
    func peerFinished() -> [AppOutput] { [] }
}

/// Writes a fixed text, only for users who logged in, and finishes.
struct SecretNotesApplication: DemoApplication {
    static let text = "The cake is in the second drawer. Tell no one.\n"
    func opened() -> [AppOutput] { [.write(Array(Self.text.utf8)), .finish] }
    func received(_ data: [UInt8]) -> [AppOutput] { [] }
    func peerFinished() -> [AppOutput] { [] }
}

/// The applications the demo server offers, with their menu entries.
enum DemoCatalog {
    struct Entry: Sendable {
        let index: ServiceIndex
        let offer: ApplicationOffer
        /// Listed (and granted) only after login.
        let requiresLogin: Bool
        let application: any DemoApplication
        var name: String { offer.name }
    }

    static let entries: [Entry] = [
        Entry(index: 1, offer: ApplicationOffer(name: "echo", description: "sends your bytes back", expectedRequestBody: [:]),
              requiresLogin: false, application: EchoApplication()),
        Entry(index: 2, offer: ApplicationOffer(name: "time", description: "the server's clock", expectedRequestBody: [:]),
              requiresLogin: false, application: TimeApplication()),
        Entry(index: 3, offer: ApplicationOffer(name: "secret-notes", description: "notes for logged-in users", expectedRequestBody: [:]),
              requiresLogin: true, application: SecretNotesApplication()),
    ]

    static func application(named name: String) -> (any DemoApplication)? {
        entries.first { $0.name == name }?.application
    }
}
