/// Levenshtein distance between two short names (configuration keys, keywords), for
/// "did you mean" suggestions.
public func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a.unicodeScalars), b = Array(b.unicodeScalars)
    if a.isEmpty { return b.count }
    if b.isEmpty { return a.count }
    var previous = Array(0...b.count)
    var current = [Int](repeating: 0, count: b.count + 1)
    for i in 1...a.count {
        current[0] = i
        for j in 1...b.count {
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        swap(&previous, &current)
    }
    return previous[b.count]
}

/// The name of `candidates` nearest to `name` (ignoring case when `ignoringCase`), if it is
/// within `maxDistance` edits: what an error's "(did you mean "…"?)" names.
public func nearestName(to name: String, among candidates: some Sequence<String>, maxDistance: Int = 2,
                        ignoringCase: Bool = false) -> String? {
    let key = ignoringCase ? name.lowercased() : name
    var best: (name: String, distance: Int)?
    for candidate in candidates {
        let d = editDistance(ignoringCase ? candidate.lowercased() : candidate, key)
        if d <= maxDistance, d < (best?.distance ?? Int.max) { best = (candidate, d) }
    }
    return best?.name
}
