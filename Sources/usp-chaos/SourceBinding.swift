import Glibc
import NIOCore
import NIOPosix

/// How attacker connections leave from a chosen 127.x.y.z: bound to the address with port 0 and
/// IP_BIND_ADDRESS_NO_PORT, so the kernel picks the port at connect per (source, destination)
/// pair, and one source address can hold as many connections as the port range allows.
enum SourceBinding {
    /// IP_BIND_ADDRESS_NO_PORT (linux/in.h), which Glibc's module does not export.
    static let bindAddressNoPort: Int32 = 24

    /// A client bootstrap on `loop` from `source`, or nil if `source` is not an IP address.
    static func bootstrap(on loop: any EventLoop, from source: String) -> ClientBootstrap? {
        guard let local = try? SocketAddress(ipAddress: source, port: 0) else { return nil }
        return ClientBootstrap(group: loop)
            .connectTimeout(.seconds(3))
            .channelOption(ChannelOptions.socket(.init(IPPROTO_IP), .init(bindAddressNoPort)), value: 1)
            .channelOption(ChannelOptions.tcpOption(.tcp_nodelay), value: 1)
            .bind(to: local)
    }
}
