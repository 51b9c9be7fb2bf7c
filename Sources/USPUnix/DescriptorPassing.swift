#if canImport(Glibc)
import Glibc
#endif

/// Bytes that arrived with the descriptors sent along with them (SCM_RIGHTS). The receiver owns
/// the descriptors: they are close-on-exec and must be closed when no longer needed.
public struct ReceivedMessage: Sendable, Equatable {
    public var bytes: [UInt8]
    public var descriptors: [CInt]
    public init(bytes: [UInt8], descriptors: [CInt]) {
        self.bytes = bytes
        self.descriptors = descriptors
    }

    /// End of file: the peer closed its side and sent nothing more.
    public var isEndOfFile: Bool { bytes.isEmpty && descriptors.isEmpty }
}

/// Sending descriptors over an AF_UNIX socket with sendmsg/recvmsg and SCM_RIGHTS, in the layout
/// of glibc's CMSG_* macros (which Swift does not import): a `cmsghdr` whose data starts at
/// CMSG_ALIGN(sizeof(cmsghdr)), lengths aligned to `size_t`.
///
/// On a SOCK_STREAM socket the descriptors travel with the first byte of the `send`; a `receive`
/// that starts at that byte gets them. Blocking or not is the socket's own mode.
public enum DescriptorPassing {
    /// The kernel's limit of descriptors in one message (SCM_MAX_FD).
    public static let maximumDescriptors = 253

    /// Sends `bytes` (at least one byte: Linux drops ancillary data sent without data on a stream
    /// socket) with `descriptors` attached, in one sendmsg. Returns how many bytes went; the
    /// caller sends any rest with `StreamIO.writeAll`. Never raises SIGPIPE (MSG_NOSIGNAL).
    public static func send(_ socket: CInt, bytes: [UInt8], descriptors: [CInt]) throws(UnixError) -> Int {
        precondition(!bytes.isEmpty, "SCM_RIGHTS needs at least one byte of data on a stream socket")
        precondition(descriptors.count <= maximumDescriptors, "more than SCM_MAX_FD descriptors in one message")
        let dataLength = descriptors.count * MemoryLayout<CInt>.size
        var control = [UInt8](repeating: 0, count: descriptors.isEmpty ? 0 : ControlLayout.space(dataLength))
        var bytes = bytes
        let sent: Int = bytes.withUnsafeMutableBytes { data in
            control.withUnsafeMutableBytes { controlBytes in
                if !descriptors.isEmpty {
                    let header = controlBytes.baseAddress!.assumingMemoryBound(to: cmsghdr.self)
                    header.pointee.cmsg_len = ControlLayout.length(dataLength)
                    header.pointee.cmsg_level = SOL_SOCKET
                    header.pointee.cmsg_type = CInt(SCM_RIGHTS)
                    let payload = UnsafeMutableRawBufferPointer(rebasing: controlBytes[ControlLayout.headerSpace...])
                    descriptors.withUnsafeBytes { payload.copyMemory(from: $0) }
                }
                var vector = iovec(iov_base: data.baseAddress, iov_len: data.count)
                return withUnsafeMutablePointer(to: &vector) { v in
                    var message = msghdr()
                    message.msg_iov = v
                    message.msg_iovlen = 1
                    message.msg_control = descriptors.isEmpty ? nil : controlBytes.baseAddress
                    message.msg_controllen = controlBytes.count
                    while true {
                        let n = sendmsg(socket, &message, CInt(MSG_NOSIGNAL))
                        if n < 0, errno == EINTR { continue }
                        return n
                    }
                }
            }
        }
        guard sent >= 0 else { throw .call("sendmsg") }
        return sent
    }

    /// Receives up to `maxBytes` bytes and up to `maxDescriptors` descriptors (close-on-exec,
    /// MSG_CMSG_CLOEXEC). An empty result is end of file. More descriptors than allowed (the kernel
    /// truncates and closes the excess) closes the ones that came and throws `tooManyDescriptors`.
    public static func receive(_ socket: CInt, maxBytes: Int, maxDescriptors: Int) throws(UnixError) -> ReceivedMessage {
        precondition(maxBytes > 0 && (0...maximumDescriptors).contains(maxDescriptors))
        var buffer = [UInt8](repeating: 0, count: maxBytes)
        // Room for at least one descriptor, so that a surprise descriptor is seen (and closed) here.
        var control = [UInt8](repeating: 0, count: ControlLayout.space(max(maxDescriptors, 1) * MemoryLayout<CInt>.size))
        var flags: CInt = 0
        var controlLength = 0
        let count: Int = buffer.withUnsafeMutableBytes { data in
            control.withUnsafeMutableBytes { controlBytes in
                var vector = iovec(iov_base: data.baseAddress, iov_len: data.count)
                return withUnsafeMutablePointer(to: &vector) { v in
                    var message = msghdr()
                    message.msg_iov = v
                    message.msg_iovlen = 1
                    message.msg_control = controlBytes.baseAddress
                    message.msg_controllen = controlBytes.count
                    while true {
                        let n = recvmsg(socket, &message, CInt(MSG_CMSG_CLOEXEC))
                        if n < 0, errno == EINTR { continue }
                        flags = message.msg_flags
                        controlLength = message.msg_controllen
                        return n
                    }
                }
            }
        }
        guard count >= 0 else { throw .call("recvmsg") }
        let descriptors = ControlLayout.descriptors(in: control, length: controlLength)
        if flags & CInt(MSG_CTRUNC) != 0 || descriptors.count > maxDescriptors {
            for fd in descriptors { close(fd) }
            throw UnixError(.tooManyDescriptors, "recvmsg: more than \(maxDescriptors) descriptor(s) sent; closed them")
        }
        return ReceivedMessage(bytes: Array(buffer[0..<count]), descriptors: descriptors)
    }
}

/// glibc's CMSG_ALIGN, CMSG_SPACE, CMSG_LEN and the CMSG_FIRSTHDR/NXTHDR walk, for Linux.
enum ControlLayout {
    static func align(_ n: Int) -> Int {
        let a = MemoryLayout<Int>.size
        return (n + a - 1) & ~(a - 1)
    }

    static var headerSpace: Int { align(MemoryLayout<cmsghdr>.size) }
    static func space(_ dataLength: Int) -> Int { headerSpace + align(dataLength) }
    static func length(_ dataLength: Int) -> Int { headerSpace + dataLength }

    /// Every SCM_RIGHTS descriptor in the first `length` bytes of `control`.
    static func descriptors(in control: [UInt8], length: Int) -> [CInt] {
        var out: [CInt] = []
        var offset = 0
        control.withUnsafeBytes { raw in
            while offset + MemoryLayout<cmsghdr>.size <= length {
                let header = raw.loadUnaligned(fromByteOffset: offset, as: cmsghdr.self)
                let total = Int(header.cmsg_len)
                guard total >= headerSpace, offset + total <= length else { break }
                if header.cmsg_level == SOL_SOCKET, header.cmsg_type == CInt(SCM_RIGHTS) {
                    let count = (total - headerSpace) / MemoryLayout<CInt>.size
                    for i in 0..<count {
                        out.append(raw.loadUnaligned(fromByteOffset: offset + headerSpace + i * MemoryLayout<CInt>.size, as: CInt.self))
                    }
                }
                offset += align(total)
            }
        }
        return out
    }
}
