/// What went wrong, as a stable snake_case name (`unknown_key`, `timed_out`), for programs and
/// logs. `Owner` is the error type the code belongs to, so that codes of different modules never
/// compare; each module declares its codes as static members of `ErrorCode<ItsError>`, and
/// `ErrorCode("name")` makes one that arrived from elsewhere (a response, another module's code).
public struct ErrorCode<Owner>: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: String

    public init(_ rawValue: String) { self.rawValue = rawValue }

    public var description: String { rawValue }
}
