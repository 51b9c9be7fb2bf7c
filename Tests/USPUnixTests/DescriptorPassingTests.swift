import Foundation
import Testing
import USPUnix

@Suite struct DescriptorPassingTests {
    @Test func bytesAndADescriptorArriveTogetherAndTheDescriptorWorks() throws {
        let control = try SocketPair.make()
        defer { control.close() }
        let carried = try SocketPair.make()
        defer { close(carried.first) }

        let sent = try DescriptorPassing.send(control.first, bytes: Array("meta".utf8), descriptors: [carried.second])
        #expect(sent == 4)
        close(carried.second)
        let got = try DescriptorPassing.receive(control.second, maxBytes: 64, maxDescriptors: 4)
        #expect(got.bytes == Array("meta".utf8))
        #expect(got.descriptors.count == 1)
        let fd = try #require(got.descriptors.first)
        defer { close(fd) }
        #expect(try CloseOnExec.isSet(fd))

        // The received descriptor is the other end of `carried`: bytes go through, and half-close is EOF.
        try StreamIO.writeAll(fd, Array("ping".utf8))
        #expect(try StreamIO.readExactly(carried.first, 4) == Array("ping".utf8))
        shutdown(fd, CInt(SHUT_WR))
        var byte: UInt8 = 0
        #expect(read(carried.first, &byte, 1) == 0)
    }

    @Test func severalDescriptorsInOneMessage() throws {
        let control = try SocketPair.make()
        defer { control.close() }
        let a = try SocketPair.make(), b = try SocketPair.make()
        defer { a.close(); b.close() }
        _ = try DescriptorPassing.send(control.first, bytes: [1], descriptors: [a.first, b.first])
        let got = try DescriptorPassing.receive(control.second, maxBytes: 8, maxDescriptors: 2)
        #expect(got.bytes == [1])
        #expect(got.descriptors.count == 2)
        got.descriptors.forEach { close($0) }
    }

    @Test func moreDescriptorsThanAllowedAreClosedAndReported() throws {
        let control = try SocketPair.make()
        defer { control.close() }
        let a = try SocketPair.make(), b = try SocketPair.make()
        defer { a.close(); b.close() }
        _ = try DescriptorPassing.send(control.first, bytes: [7], descriptors: [a.first, b.first])
        #expect(throws: UnixError(.tooManyDescriptors, "")) {
            try DescriptorPassing.receive(control.second, maxBytes: 8, maxDescriptors: 1)
        }
        // A receiver that wants none still notices (and closes) a surprise descriptor.
        _ = try DescriptorPassing.send(control.first, bytes: [8], descriptors: [a.first])
        #expect(throws: UnixError(.tooManyDescriptors, "")) {
            try DescriptorPassing.receive(control.second, maxBytes: 8, maxDescriptors: 0)
        }
    }

    @Test func plainBytesAndEndOfFile() throws {
        let control = try SocketPair.make()
        defer { close(control.second) }
        _ = try DescriptorPassing.send(control.first, bytes: Array("hi".utf8), descriptors: [])
        close(control.first)
        #expect(try DescriptorPassing.receive(control.second, maxBytes: 8, maxDescriptors: 1) == ReceivedMessage(bytes: Array("hi".utf8), descriptors: []))
        #expect(try DescriptorPassing.receive(control.second, maxBytes: 8, maxDescriptors: 1).isEndOfFile)
    }

    @Test func sendingToAClosedPeerIsAnErrorNotASignal() throws {
        let control = try SocketPair.make()
        close(control.second)
        defer { close(control.first) }
        #expect(throws: UnixError.call("sendmsg", errno: EPIPE)) {
            try DescriptorPassing.send(control.first, bytes: [1], descriptors: [])
        }
    }
}
