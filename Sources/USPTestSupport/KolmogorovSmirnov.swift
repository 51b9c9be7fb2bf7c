import Foundation

/// The two-sample Kolmogorov–Smirnov test: do two samples come from the same distribution?
public enum KolmogorovSmirnov {
    public struct Result: Sendable {
        /// The largest gap between the two empirical distribution functions.
        public let statistic: Double
        /// The asymptotic p-value (Kolmogorov's distribution with Stephens' small-sample correction):
        /// the chance of a gap at least this large if both samples came from one distribution.
        public let pValue: Double
    }

    public static func test(_ a: [Double], _ b: [Double]) -> Result {
        precondition(!a.isEmpty && !b.isEmpty, "two non-empty samples")
        let x = a.sorted(), y = b.sorted()
        var i = 0, j = 0
        var d = 0.0
        while i < x.count && j < y.count {
            let v = min(x[i], y[j])
            while i < x.count && x[i] <= v { i += 1 }
            while j < y.count && y[j] <= v { j += 1 }
            d = max(d, abs(Double(i) / Double(x.count) - Double(j) / Double(y.count)))
        }
        let n = Double(x.count * y.count) / Double(x.count + y.count)
        let lambda = (n.squareRoot() + 0.12 + 0.11 / n.squareRoot()) * d
        return Result(statistic: d, pValue: q(lambda))
    }

    /// Q_KS(λ) = 2 Σ_{k≥1} (−1)^{k−1} e^{−2k²λ²}.
    static func q(_ lambda: Double) -> Double {
        if lambda < 0.2 { return 1 }
        var sum = 0.0
        for k in 1...100 {
            let term = exp(-2 * Double(k * k) * lambda * lambda)
            sum += (k % 2 == 1 ? 1 : -1) * term
            if term < 1e-12 { break }
        }
        return min(1, max(0, 2 * sum))
    }
}
