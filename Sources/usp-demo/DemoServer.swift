import Foundation
import USPCore

/// The demo's USP server: a listener on an ephemeral port and a thread per connection.
final class DemoServer: Sendable {
    let listener: TCPListener
    let staticKey: KeyPair
    let policy: DemoPolicy

    init(host: String, staticKey: KeyPair, policy: DemoPolicy) throws(DemoError) {
        listener = try TCPListener(host: host)
        self.staticKey = staticKey
        self.policy = policy
    }

    var port: UInt16 { listener.port }

    /// `usp://<base64url server key>@host:port`: everything a client needs for IK.
    var uri: String { "usp://\(Base64URL.encode(staticKey.publicKey))@\(listener.host):\(port)" }

    /// Accepts connections on a background thread until the process exits.
    func start() {
        let thread = Thread { [self] in
            while let socket = try? listener.accept() {
                let connection = Thread { [self] in
                    var served = ServerConnection(socket: socket, staticKey: staticKey, policy: policy)
                    served.run()
                }
                connection.start()
            }
        }
        thread.start()
    }
}
