/// Command-line options, parsed from `CommandLine.arguments` by hand.
struct DemoOptions {
    /// Print only the final summary line.
    var quiet = false
    /// Print the usage and exit.
    var help = false

    static let usage = "usage: usp-demo [--quiet]"

    init(arguments: [String]) throws(DemoError) {
        for argument in arguments.dropFirst() {
            switch argument {
            case "--quiet", "-q": quiet = true
            case "--help", "-h": help = true
            default: throw DemoError("unknown option \(argument); \(Self.usage)")
            }
        }
    }
}
