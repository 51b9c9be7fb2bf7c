/// `withUnsafeBytes` for typed throws: the standard library's versions rethrow `any Error`.
@inline(__always)
func withBytes<R>(_ array: [UInt8], _ body: (UnsafeRawBufferPointer) throws(USPError) -> R) throws(USPError) -> R {
    var result: Result<R, USPError>?
    array.withUnsafeBytes { b in
        do throws(USPError) { result = .success(try body(b)) } catch { result = .failure(error) }
    }
    return try result!.get()
}

@inline(__always)
func withMutableBytes<R>(_ array: inout [UInt8], _ body: (UnsafeMutableRawBufferPointer) throws(USPError) -> R) throws(USPError) -> R {
    var result: Result<R, USPError>?
    array.withUnsafeMutableBytes { b in
        do throws(USPError) { result = .success(try body(b)) } catch { result = .failure(error) }
    }
    return try result!.get()
}
