extension StringProtocol {
    /// The text without the characters at either end for which `drop` is true (what
    /// Foundation's `trimmingCharacters(in:)` does, without linking Foundation into the client).
    public func trimming(where drop: (Character) -> Bool) -> SubSequence {
        var s = self[...]
        while let c = s.first, drop(c) { s = s.dropFirst() }
        while let c = s.last, drop(c) { s = s.dropLast() }
        return s
    }
}
