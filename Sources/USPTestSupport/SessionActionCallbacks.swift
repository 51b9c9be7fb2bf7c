import USPCore

// Test sugar over the sessions' action buffers: each call takes a fresh buffer, makes the real
// call, then hands every action to `onEvent` in order. Tests read better with a closure per call;
// the shells use the buffers directly.

extension ServerSession {
    public mutating func receive(_ bytes: some Collection<UInt8>, now: Timestamp, delegate: some ServerSessionDelegate,
                                 onEvent: (ServerAction) -> Void) {
        var actions = ServerActions()
        receive(bytes, now: now, delegate: delegate, into: &actions)
        actions.forEach(onEvent)
    }

    public mutating func receive(_ bytes: UnsafeRawBufferPointer, now: Timestamp, delegate: some ServerSessionDelegate,
                                 onEvent: (ServerAction) -> Void) {
        var actions = ServerActions()
        receive(bytes, now: now, delegate: delegate, into: &actions)
        actions.forEach(onEvent)
    }

    public mutating func endOfInput(onEvent: (ServerAction) -> Void) {
        var actions = ServerActions()
        endOfInput(into: &actions)
        actions.forEach(onEvent)
    }

    public mutating func handshakeDeadlinePassed(onEvent: (ServerAction) -> Void) {
        var actions = ServerActions()
        handshakeDeadlinePassed(into: &actions)
        actions.forEach(onEvent)
    }

    public mutating func completeAuthentication(_ outcome: Result<AuthorizationGrant, USPError>, now: Timestamp,
                                                delegate: some ServerSessionDelegate, onEvent: (ServerAction) -> Void) {
        var actions = ServerActions()
        completeAuthentication(outcome, now: now, delegate: delegate, into: &actions)
        actions.forEach(onEvent)
    }

    public mutating func finish(stream: UInt32, onEvent: (ServerAction) -> Void) throws(USPError) {
        var actions = ServerActions()
        defer { actions.forEach(onEvent) }
        try finish(stream: stream, into: &actions)
    }

    public mutating func reset(stream: UInt32, code: USPError.Code, onEvent: (ServerAction) -> Void) throws(USPError) {
        var actions = ServerActions()
        defer { actions.forEach(onEvent) }
        try reset(stream: stream, code: code, into: &actions)
    }

    public mutating func revoke(tokenIDs: Set<TokenProof.TokenID>, onEvent: (ServerAction) -> Void) throws(USPError) {
        var actions = ServerActions()
        defer { actions.forEach(onEvent) }
        try revoke(tokenIDs: tokenIDs, into: &actions)
    }

    public mutating func close(code: USPError.Code = .ok, onEvent: (ServerAction) -> Void) {
        var actions = ServerActions()
        close(code: code, into: &actions)
        actions.forEach(onEvent)
    }

    public mutating func tick(onEvent: (ServerAction) -> Void) throws(USPError) {
        var actions = ServerActions()
        defer { actions.forEach(onEvent) }
        try tick(into: &actions)
    }

    public mutating func stopShaping(onEvent: (ServerAction) -> Void) throws(USPError) {
        var actions = ServerActions()
        defer { actions.forEach(onEvent) }
        try stopShaping(into: &actions)
    }

    public mutating func handoffAcknowledged(onEvent: (ServerAction) -> Void) {
        var actions = ServerActions()
        handoffAcknowledged(into: &actions)
        actions.forEach(onEvent)
    }
}

extension ClientSession {
    public mutating func receive(_ bytes: some Collection<UInt8>, now: Timestamp, delegate: some ClientSessionDelegate,
                                 onEvent: (ClientAction) -> Void) {
        var actions = ClientActions()
        receive(bytes, now: now, delegate: delegate, into: &actions)
        actions.forEach(onEvent)
    }

    public mutating func endOfInput(onEvent: (ClientAction) -> Void) {
        var actions = ClientActions()
        endOfInput(into: &actions)
        actions.forEach(onEvent)
    }

    public mutating func finish(stream: UInt32, onEvent: (ClientAction) -> Void) throws(USPError) {
        var actions = ClientActions()
        defer { actions.forEach(onEvent) }
        try finish(stream: stream, into: &actions)
    }

    public mutating func reset(stream: UInt32, code: USPError.Code, onEvent: (ClientAction) -> Void) throws(USPError) {
        var actions = ClientActions()
        defer { actions.forEach(onEvent) }
        try reset(stream: stream, code: code, into: &actions)
    }

    public mutating func tick(onEvent: (ClientAction) -> Void) throws(USPError) {
        var actions = ClientActions()
        defer { actions.forEach(onEvent) }
        try tick(into: &actions)
    }

    public mutating func close(code: USPError.Code = .ok, onEvent: (ClientAction) -> Void) {
        var actions = ClientActions()
        close(code: code, into: &actions)
        actions.forEach(onEvent)
    }
}

extension DedicatedStreamSession {
    public mutating func resume(onEvent: (Action) -> Void) {
        var actions = Actions()
        resume(into: &actions)
        actions.forEach(onEvent)
    }

    public mutating func receive(_ bytes: some Collection<UInt8>, onEvent: (Action) -> Void) {
        var actions = Actions()
        receive(bytes, into: &actions)
        actions.forEach(onEvent)
    }

    public mutating func endOfInput(onEvent: (Action) -> Void) {
        var actions = Actions()
        endOfInput(into: &actions)
        actions.forEach(onEvent)
    }

    public mutating func finish(onEvent: (Action) -> Void) throws(USPError) {
        var actions = Actions()
        defer { actions.forEach(onEvent) }
        try finish(into: &actions)
    }

    public mutating func reset(code: USPError.Code, onEvent: (Action) -> Void) throws(USPError) {
        var actions = Actions()
        defer { actions.forEach(onEvent) }
        try reset(code: code, into: &actions)
    }

    public mutating func close(code: USPError.Code = .ok, onEvent: (Action) -> Void) {
        var actions = Actions()
        close(code: code, into: &actions)
        actions.forEach(onEvent)
    }
}
