// Package dist is Cask's distribution layer: it lets actors of one
// protoactor-go actor system send to, ask and watch actors on other nodes
// with the ordinary actor.Context API, over one QUIC connection per peer.
//
// # Pieces
//
// The words, used the same way in code, docs and logs (docs/architecture.md
// has the glossary): a peer is a remote node; a connection is one QUIC
// connection to it; a session is the dist state shared with the peer
// (sequence numbers, unacknowledged frames, type tables, watches), which
// outlives a lost connection for Config.SessionGrace (session.go holds a
// connection's part of it, sessionstate.go the part that outlives it);
// the controller is the actor that owns one peer's session; the endpoint
// is the protoactor Process behind every PID of that peer.
//
// A Manager per node (the dist layer) registers a protoactor address
// resolver: every PID whose Address is another node's name (name@host)
// resolves to that peer's endpoint; any other address that is not this
// node's (nonode, x@y@z) resolves to a shared Process that dead-letters
// with ErrBadNodeName. An endpoint and its controller are freed when the
// peer needs neither (its connect failed and its reconnect delay ran out,
// or its session ended, and no message, watch, pin or request waits; a
// failure count outlives them in the manager actor for a while, for a
// bounded number of peers); a PID that still caches a freed endpoint
// forwards through it to the live one. The Manager's actor, the manager
// actor ("dist", Manager.PID), supervises one controller per peer; a
// controller that fails is stopped, its connection closed and the peer
// reported down, never the node.
//
// The controller dials through the discovery chain (static map,
// Config.Resolvers, directory of endpoint files, learned addresses, DNS;
// connect errors name the source of each address tried, SourcedAddr),
// runs the dist handshake, settles simultaneous connects, resumes a
// session whose connection was lost, and turns a session's end into
// Terminated and NodeDown (controller.endSession, the one place a session
// ends). Both sides of a handshake
// learn the peer's address once its identity is proved (LearnedAddrs,
// AdvertisedAddr; membership adds what its messages carry). After a
// failed connect attempt the controller backs off (ReconnectBackoffMin
// doubling to ReconnectBackoffMax, ±20 % jitter); until the next attempt
// starts or a session comes up the peer is unreachable and sends to it
// are dead letters at once with ErrUnreachable and the attempt's error.
// Disconnect closes a session on purpose (NodeDown{disconnected}). A
// session has a control stream and a pool of lazily opened
// unidirectional data streams.
//
// Tagged user streams (streams.go) ride the same connection with
// credit-based flow control of their own (streams_credit.go): a goroutine
// per stream reads it off the connection into a window-sized buffer, and
// writers wait for StreamCredit grants on the control stream, so unread
// user streams never hold the connection's flow-control window that actor
// traffic needs.
//
// The package's files follow a message: endpoint.go (the Process a send
// enters), outbound.go (framing and stream writers), then transport, then
// inbound.go (readers and delivery) on the peer; wire.go is the frame
// format. session.go, handshake.go, controller.go, manager_actor.go and
// manager.go hold the lifecycle; each file opens with who owns its state.
//
// # Sessions
//
// Every data stream frame has a sequence number implied by its position
// (counted per stream over the session); the receiver acknowledges
// cumulatively (SessionAck on the control stream, from a timer armed by
// the first frame since the last acknowledgement, ackDelay 5 ms), and the
// sender keeps what is not acknowledged, at most Config.SessionBuffer
// bytes per data stream (senders to it block past it). When a connection is lost (idle timeout,
// reset, dead path) the session waits Config.SessionGrace (default 15 s)
// for a new one: monitors get NodeUnreachable at once, sends queue,
// both sides reconnect with the reconnect backoff, and a connection whose
// dist handshake names the session (session ids and per-stream receive
// positions in DistHello/DistWelcome) resumes it: each writer resends
// what the peer lacks, on a stream whose header gives its first sequence
// number, and the receiver drops what it had; monitors get NodeReachable.
// The session ends when the grace window runs out, the peer turns out
// to be a new incarnation, on Disconnect, Stop, a goodbye or a protocol
// error: watches end with Terminated{AddressTerminated}, monitors get
// NodeDown, and every message the peer did not acknowledge is a dead
// letter on this node (ErrSessionEnded), counted in SessionStats. A
// message delivered whose acknowledgement was lost with the connection
// is then both delivered and a dead letter; nothing vanishes. User
// streams end with ErrConnectionLost when their connection goes. A peer
// without CAPABILITY_SESSIONS (an older build) gets neither
// acknowledgements nor resumption. See docs/dist.md, "Sessions".
//
// # Metrics
//
// With Config.MeterProvider set, the Manager reports OpenTelemetry
// instruments (metrics.go, docs/observability.md): per peer, messages and
// bytes sent and received, reconnects, path SRTT and congestion window,
// pending queue depth; dead letters by reason; migrations and their
// duration. The data path only adds to atomic counters kept per peer for
// the Manager's life, read by asynchronous instruments when the reader
// collects; with no provider (and no Config.CountTraffic) there are no
// counters and the path pays a nil check.
//
// # Peer snapshots
//
// Manager.PeerInfo returns, without asking an actor, a snapshot of every
// peer the node holds an endpoint for: its state (PeerConnected,
// PeerClosing, PeerConnecting, PeerUnreachable, PeerIdle), the session's
// start, role and peer incarnation, the path statistics, the queue depth,
// and the traffic counters when they are kept (peerinfo.go). Every
// migration this node runs ends with a PeerMigrated on the actor
// system's EventStream. actors.Node.DebugHandler builds its page from
// these.
//
// # Data path
//
// Sending to a remote PID encodes the message on the sender's goroutine
// and appends the frame to the data stream chosen by the target actor, so
// every message to one actor travels on one QUIC stream and arrives in the
// order sent (the per-pair order Erlang promises, and more: protoactor's
// Process seam does not tell which actor is sending, so the receiver is
// the key). A writer goroutine per stream writes everything queued since
// its last write in one call (coalescing). Each stream has its own type
// table: a protobuf type name crosses once per stream, later frames carry
// a small id. A reader goroutine per inbound stream decodes frames and
// posts them straight to the target's mailbox.
//
// While a session opens, sends wait in a bounded queue (PendingLimit);
// overflow, connect failure and Stop turn them into dead letters. While
// the peer is unreachable they are not queued: each is a dead letter at
// once (ErrUnreachable), checked only when there is no session.
//
// # Semantics
//
//   - Send, Request, RequestFuture, Respond, Forward, Stop and Poison work
//     across nodes. Forward keeps the original sender.
//   - Watch on a remote PID delivers Terminated when the actor stops
//     (Stopped), when it never existed (NotFound), and when the session
//     ends (AddressTerminated), not when a connection is lost and the
//     session resumed. Watches of local actors by remote watchers are
//     removed when the session ends.
//   - Links (links.go): Link and Unlink join two actors, at least one of
//     them local; TrapExits props get *Exited instead of being stopped;
//     SpawnLink and SpawnMonitor put a link or a watch in place before a
//     remotely spawned actor's first message. Exit reasons normal,
//     shutdown, abnormal, noconnection (the session ended: its grace window ran out, or the peer restarted), noproc. An
//     exit signal travels as a system envelope on its target's data
//     stream, after the messages sent to it before. The link table is
//     mutex-guarded; the link watcher actor ("dist.links") turns the
//     Terminated of linked local actors into exit signals; exit reasons
//     come from protoactor's SupervisorEvent (stop directive), exit
//     signals, Stop, and the receiver middleware of link-aware actors.
//   - MonitorNode delivers NodeUp, NodeUnreachable, NodeReachable and
//     NodeDown{Reason} to a watcher PID, in the order they happened.
//   - A restarted node is a new incarnation: its anonymous PID ids start
//     from a sequence derived from the incarnation, so PIDs of the old
//     incarnation resolve to nothing and messages to them are dead
//     letters; monitors see NodeDown{restarted} when the new incarnation
//     replaces a live session or a session waiting for a new connection.
//   - Simultaneous connect: when both nodes dial each other, the
//     connection dialed by the node with the smaller name wins on both
//     sides. Queued messages belong to the endpoint, not to a connection,
//     so nothing is lost.
//   - Remote spawn of kinds registered with RegisterKind, by any admitted
//     peer unless AllowSpawnBy names the ones that may.
//   - At most MaxPeers peers have a session or a connect attempt at once:
//     past it a new peer's dist hello is refused (REJECT_REASON_TOO_MANY_
//     PEERS, which its dialer sees as ErrTooManyPeers with ErrRejected)
//     before a controller is made for it, and a connect to a new peer
//     fails with ErrTooManyPeers. Peers with a session are unaffected.
//   - A session idle for ReapIdleAfter, older than ReapMinAge, pinned by
//     neither side and carrying no watch or link is closed with a goodbye
//     exchange that loses nothing in flight; it reopens on demand.
//   - Only protobuf messages cross nodes. A non-protobuf message, a type
//     the receiver does not know, a payload that does not decode and a
//     message over MaxMessageSize each become a dead letter whose Message
//     is *UndeliveredMessage with the reason (ErrNotProtobuf,
//     ErrUnknownType, ErrDecode, ErrMessageTooLarge); the connection stays
//     up. A request that hits one of these fails at once (protoactor
//     answers the requester with DeadLetterResponse). Only a malformed
//     frame closes a connection, and only that one, with
//     transport.CodeProtocolViolation.
//
// # Migration and path statistics
//
// MigratePeer, sent to the dist manager, moves the QUIC connection to a
// peer onto a new local path (fresh socket, given LocalAddr, or a socket
// adapter such as adapter.Relayed). The manager forwards it to the
// peer's controller, which runs the migration on a goroutine counted by
// the Manager and keeps serving its mailbox; the requester gets
// *MigrateResult once the path is validated and in use, or the attempt
// failed (ErrTimeout, ErrPeerDisableMigration, ErrMigrationNotAllowed
// when this node disabled migration or the peer cannot take a handover,
// ErrNotConnected, ErrNoConn). A connection may migrate any number of
// times (transport retires the sockets of paths it left).
// Where QUIC path migration cannot serve (the accepting side; a path not
// validated within half the timeout, as a dead path with a full
// congestion window; quic-go's limits) the controller hands the session
// over to a new connection it dials from the requested socket, and
// answers once the peer resumed the session on it (the hello says it is a
// handover, so the peer replaces its live connection with it whichever
// side dialed that one; a plain resuming hello meeting a live connection
// follows the simultaneous-connect rule).
// Migrations to one peer are queued and run in order; different peers
// migrate concurrently. A peer without the migration capability in its
// dist handshake is marked on the connection, which then refuses to
// migrate. GetPathStats answers *PathStatsResult with the connection's
// transport.PathStats at once. SetConnectOptions makes later connects to
// a peer dial from a socket adapter (transport.DialVia), e.g. a relay.
// See docs/migration.md and docs/path-stats.md.
//
// # User streams and membership
//
// RegisterAcceptor and OpenStream give tagged byte streams on the peer's
// connection (bidirectional QUIC streams with a tag preamble and an
// accept/refuse answer); the acceptor gets *StreamOpened. An open stream
// pins its session on both sides; streams ride through migration and fail
// with ErrConnectionLost when their connection goes, even when the session
// resumes on a new one (and on a handover). See docs/streams.md.
// Membership messages travel on the control stream: SendMembership out,
// MembershipReceived in (to the handler set with SetMembershipHandler),
// checked against the session's peer.
//
// # Messages and goroutines
//
// NodeUp, NodeUnreachable, NodeReachable and NodeDown are sent by the
// dist manager actor, in the order the controller saw the events.
// ConnectResult and SpawnResult answer Connect and Spawn sent (or
// requested) to the dist manager. *Exited is posted to a trapping actor's
// mailbox, and a non-trapping one is stopped, by whoever learnt of the
// exit: the link watcher actor (a local partner exited), a session reader
// (the peer's exit signal, in stream order) or a controller (the session
// ended). Inbound messages are
// posted to mailboxes from a stream's reader goroutine; a sender never
// blocks unless a data stream has more than WriteBufferLimit bytes queued
// (back-pressure, like Erlang's busy distribution port).
package dist
