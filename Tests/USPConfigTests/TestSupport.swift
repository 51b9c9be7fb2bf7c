import Foundation
import Testing
@testable import USPConfig

/// The error `body` throws, or nil (recording an issue) when it throws nothing.
func configError<T>(_ body: () throws -> T, sourceLocation: SourceLocation = #_sourceLocation) -> ConfigError? {
    do {
        let value = try body()
        Issue.record("expected a ConfigError, got \(value)", sourceLocation: sourceLocation)
        return nil
    } catch let error as ConfigError {
        return error
    } catch {
        Issue.record("expected a ConfigError, got \(error)", sourceLocation: sourceLocation)
        return nil
    }
}

/// A minimal valid application file with `extra` lines appended at the top level (before [launch]).
func app(_ extra: String = "", name: String = "ssh") -> String {
    """
    name = "\(name)"
    \(extra)
    [launch]
    tcp = "127.0.0.1:22"

    """
}
