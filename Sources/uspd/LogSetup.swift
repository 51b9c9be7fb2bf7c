import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// Logs go to stderr through swift-log: text by default, one JSON object per line with
/// `--log-format json` (swift-log ships no JSON handler, so this is a small one).
enum LogSetup {
    enum Format: String, CaseIterable, Sendable { case text, json }

    static func bootstrap(verbosity: Int, configured: String?, format: Format) -> Logger.Level {
        var level = configured.flatMap { Logger.Level(rawValue: $0) } ?? .info
        if verbosity >= 1 { level = .debug }
        if verbosity >= 2 { level = .trace }
        let chosen = level
        LoggingSystem.bootstrap { label in
            var handler: any LogHandler
            switch format {
            case .text: handler = StreamLogHandler.standardError(label: label)
            case .json: handler = JSONLogHandler(label: label)
            }
            handler.logLevel = chosen
            return handler
        }
        return level
    }
}

/// One JSON object per line on stderr: time, level, label, message and metadata.
struct JSONLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var object: [String: Any] = [
            "time": ISO8601DateFormatter().string(from: Date()),
            "level": event.level.rawValue,
            "label": label,
            "message": "\(event.message)",
        ]
        var merged = metadata
        if let extra = event.metadata { merged.merge(extra) { $1 } }
        for (k, v) in merged { object[k] = "\(v)" }
        guard var data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) else { return }
        data.append(0x0A)
        FileHandle.standardError.write(data)
    }
}
