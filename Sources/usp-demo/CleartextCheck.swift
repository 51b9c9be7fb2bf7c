/// Part 4: everything the client sent and received, over every connection, searched for the
/// words a passive observer would love to read. None may appear: all of it was encrypted.
extension DemoRun {
    func checkNoCleartext(secrets: [String]) throws {
        narrator.section("4. Nothing readable on the wire")
        narrator.step("captured \(tap.sent.count) B sent and \(tap.received.count) B received over \(tap.connections) connections")
        let words = DemoCatalog.entries.map(\.name) + [Self.user, "password"]
        let needles = words + [password, SecretNotesApplication.text.trimmingWhitespace, Self.echoText, "usp1"] + secrets
        let found = tap.cleartextFound(needles)
        try expect(found.isEmpty, "cleartext on the wire: \(found.map { $0.abbreviated(16).debugDescription }.joined(separator: ", "))")
        narrator.step("absent: " + words.map(\.debugDescription).joined(separator: ", "))
        narrator.step("absent: the password, the notes, the echo text, \(secrets.count) token secrets, any \"usp1\" token prefix")
    }
}
