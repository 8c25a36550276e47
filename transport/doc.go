// Package transport is Cask's QUIC layer: the only package that imports
// quic-go. It gives the dist layer authenticated connections between nodes
// (one per peer), streams, path statistics, connection migration, and the
// length-prefixed frame codec all Cask wire messages use.
//
// # Lifecycle
//
// New validates a Config and fills its defaults; it touches nothing. Start
// loads or creates the node's self-signed TLS certificate (kept in
// DataDir/tls/ when DataDir is set), opens the node's socket and listens on
// it. One quic.Transport on that socket serves both the listener and every
// Dial. Close closes the listener, every connection (CodeShutdown), the
// socket, and waits for every goroutine the Transport started; it is safe
// to call twice.
//
// # Socket adapters
//
// A SocketAdapter yields the packet socket QUIC runs on: Config.Adapter for
// the node's socket, and the adapter passed to Conn.Migrate for a new path.
// UDPAdapter opens a plain UDP socket (keeping quic-go's GSO/ECN fast
// paths). Package transport/adapter has the others: adapter.Faulty wraps
// another adapter and injects one-way delay, loss (seeded) and
// blackholing, for the whole socket or per destination address,
// changeable while running; tests use it to kill a path. adapter.Relay is
// a UDP forwarder to dial a peer through; adapter.Relayed opens sockets
// that talk through a relay while the QUIC connection keeps addressing the
// peer, so Transport.DialVia can dial through relay A (still running the
// Authenticator) and Conn.Migrate can move the connection to relay B. A
// connection made by DialVia owns its socket and closes it when it ends.
//
// # Authenticator
//
// Config.Authenticator runs after the QUIC/TLS handshake and before a
// connection is handed out, with the role of this side. For Dial it runs on
// the caller's goroutine; for inbound connections on a goroutine per
// connection, so a stalled peer never blocks others. It may block
// and use streams on the connection, and must return when its ctx is done:
// the ctx ends after Config.HandshakeTimeout (the QUIC handshake and the
// Authenticator share that budget) and the connection is then closed,
// which unblocks its stream calls. Its error closes the connection with
// CodeAuthFailed and is returned, wrapped, by Dial; Accept never yields
// such a connection. Conn.ExportKeyingMaterial gives the TLS exporter value
// it should sign to bind the peer's identity to this connection, and
// Conn.Logger the connection's logger to log through. TLS itself
// proves nothing about identity: certificates are self-signed and not
// verified; ALPN must be "cask/1".
//
// # Admission
//
// An inbound connection is pending from the end of its QUIC handshake
// until its owner calls Conn.Admitted (after its own handshake; the dist
// layer calls it once the dist hello is read) or it ends: while it
// authenticates, waits for Accept, and after. At most
// Config.MaxPendingHandshakes are pending; when full, a newcomer evicts the
// oldest silent connection (no stream opened by the peer) of the source
// with the most pending, or a talking one of a source busier than its own,
// or is refused; the loser is closed with CodeTooManyHandshakes. A peer
// that opens no stream within Config.FirstStreamTimeout while the
// Authenticator runs is closed with CodeHandshakeFailed (admission.go,
// docs/security.md "Handshake floods").
//
// # Peer identity
//
// transport knows nothing of keys or node names: the Authenticator is the
// seam. transport/identity implements it (identity.Authenticator: the
// Ed25519 mutual handshake bound to the TLS exporter value, the key and
// trust store, the cluster secret) and imports transport, never the other
// way round. An Authenticator error with a PeerName method (as
// *identity.AuthError has) is logged with that peer name. See
// docs/security.md.
//
// # Errors
//
// quic-go errors are converted at this boundary. Connection and stream
// errors match, with errors.Is, one of: ErrClosed (closed on this side),
// ErrIdleTimeout (peer silent past IdleTimeout, or the handshake took
// longer than HandshakeTimeout), ErrPeerClosed (the peer closed; a
// *CloseError carries its ErrorCode and reason), ErrHandshake (QUIC/TLS
// handshake failed), ErrTooManyHandshakes. A reset stream gives a
// *StreamError matching ErrStreamReset. Conn.Context is done when the
// connection ends, and context.Cause gives the converted reason. Migration
// errors are ErrMigrationTimeout, ErrMigrationNotAllowed and
// ErrPeerDisableMigration.
//
// # Migration
//
// Only the dialer may migrate (RFC 9000 §9): Conn.Migrate opens a new
// socket, probes the path and switches to it; streams ride through. An
// unanswered probe is repeated after three smoothed RTTs (at least 10 ms),
// then twice as long, and so on (quic-go alone waits 200 ms, and a quic-go
// peer without a spare connection ID leaves a probe unanswered). A
// connection may migrate any number of times with its open files flat.
// quic-go v0.65 ties the quic.Transport of every path a connection has
// sent on to that connection until it ends (closing it, or a read error
// on its socket, destroys the connection), so each path opened by Migrate
// keeps its quic.Transport (two goroutines and a few KiB) until the
// connection ends, but not its socket: a retired path's socket is closed
// and replaced by a silent stand-in (reads block until the connection
// ends, writes are dropped as if lost on the wire). A path is retired at
// once when its probe fails, and when a migration left it, once nothing
// arrived on it for a drain time (three smoothed RTTs plus 25 ms, within
// 100 ms and 2 s), so what the peer sent to the old address before it
// moved still arrives. Migrate abandons a retired path in quic-go first,
// so quic-go never probes it again nor switches back to it; what it may
// still send there (a PATH_RESPONSE, a repeated CONNECTION_CLOSE) is lost
// like any packet to a vanished address, and QUIC recovers. The node's
// shared socket and a DialVia socket are not migration paths: they stay
// open until the node, respectively the connection, ends.
// quic-go v0.65 cannot advertise disable_active_migration; the Cask
// handshake carries that capability and calls
// Conn.SetPeerMigrationDisabled.
//
// # Defaults
//
// ListenAddr 127.0.0.1:0, IdleTimeout 5s, KeepAlivePeriod 1s (or a third
// of an IdleTimeout of 1s or less), HandshakeTimeout 5s, 1000 incoming bidi and uni
// streams, MaxPendingHandshakes 64, FirstStreamTimeout 1s, flow-control windows 1 MiB / 16 MiB
// per stream and 4 MiB / 64 MiB per connection, frames up to
// DefaultMaxFrameSize.
//
// # Frames
//
// Every Cask frame is a uvarint length then that many bytes (a protobuf
// message). ReadFrame enforces a size cap and rejects malformed prefixes;
// AppendFrame and AppendFrameHeader encode.
package transport
