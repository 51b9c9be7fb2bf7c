/// A failed demo step: one line for a person, printed as the demo's last word.
struct DemoError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Fails the demo unless `condition` holds.
func expect(_ condition: Bool, _ message: @autoclosure () -> String) throws(DemoError) {
    if !condition { throw DemoError(message()) }
}
