import Glibc

// usp-demo: USPCore's sessions over real TCP on 127.0.0.1, narrated step by step.
// Exit status 0 when every step did what the protocol promises, 1 with a one-line error otherwise.

signal(SIGPIPE, SIG_IGN)
do {
    let options = try DemoOptions(arguments: CommandLine.arguments)
    if options.help {
        print(DemoOptions.usage)
        exit(0)
    }
    let narrator = Narrator(quiet: options.quiet)
    let summary = try DemoRun(narrator: narrator).run()
    narrator.line()
    narrator.summary(summary)
    exit(0)
} catch {
    let line = Array("usp-demo: error: \(error)\n".utf8)
    _ = line.withUnsafeBytes { write(STDERR_FILENO, $0.baseAddress, $0.count) }
    exit(1)
}
