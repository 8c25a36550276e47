package transport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
)

// Conn is one QUIC connection to a peer, handed out by Dial or Accept after
// the Authenticator accepted the peer. All methods are safe for concurrent
// use.
type Conn struct {
	qc       *quic.Conn
	role     Role
	identity Identity // set before the Conn is handed out, then read-only
	logger   *slog.Logger

	ctx    context.Context // done when qc ends; cause is a converted error
	cancel context.CancelCauseFunc

	localAddr  atomic.Pointer[addrBox] // changes on the dialer when it migrates
	remoteAddr net.Addr                // the dialer's view; fixed
	migrations atomic.Int64
	closeOnce  sync.Once

	migrationDisabled     bool // Config.DisableMigration on this node
	peerMigrationDisabled atomic.Bool

	// admitter is the Transport that counts this inbound conn as pending
	// until Admitted; nil on dialed conns.
	admitter *Transport
	// peerOpenedStream: the peer has opened a stream we accepted; a
	// pending conn without one is silent (admission.go).
	peerOpenedStream atomic.Bool

	// Migration state, guarded by migrationMu (also serializes Migrate).
	// The node's shared socket is never in here: only paths opened by
	// Migrate, which the Conn owns. quic-go v0.65 binds every
	// quic.Transport a connection has sent a packet on (even a probe that
	// failed) to that connection until it ends: closing one would destroy
	// the connection. So each path's quic.Transport lives until the Conn
	// ends, while its socket is retired (released, see pathSocket) once
	// the connection is done with the path: at once for a failed attempt;
	// for the path a migration left, when the peer has stopped sending to
	// it (see drainThenRetire).
	migrationMu sync.Mutex
	paths       []*migrationPath
	active      *migrationPath // the path in use, when Migrate opened it
	measuredRTT time.Duration  // see pathRTT
	pathsGone   bool           // the Conn ended and released its paths
}

// Bounds of the drain time: a path a migration left keeps its socket until
// nothing arrived on it for three smoothed RTTs plus the peer's maximum ACK
// delay, within these bounds.
const (
	minPathDrain = 100 * time.Millisecond
	maxPathDrain = 2 * time.Second
)

// pathDrain is the drain time for a smoothed RTT of srtt.
func pathDrain(srtt time.Duration) time.Duration {
	return min(max(3*srtt+25*time.Millisecond, minPathDrain), maxPathDrain)
}

type addrBox struct{ addr net.Addr }

// migrationPath is a path opened by Migrate: its socket (a pathSocket),
// its quic.Transport and the quic.Path on it.
type migrationPath struct {
	pc   net.PacketConn // made by newPathSocket
	tr   *quic.Transport
	path *quic.Path

	mu    sync.Mutex
	drain *time.Timer // runs drainCheck while the path drains
	ended bool        // retired or closed: no more drain checks
}

// drainThenRetire retires the path, which the connection just left, once
// nothing arrived on it for d. The peer keeps sending to the old address
// until it has seen this node's packets from the new one and (quic-go)
// validated it, which takes a round trip or more; retiring the socket
// before would lose everything the peer sends meanwhile, and, when the
// peer cannot validate the new address yet (it needs a spare connection
// ID from this node, which this node issues only when it hears from the
// peer), the connection with it.
func (p *migrationPath) drainThenRetire(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.ended {
		p.drain = time.AfterFunc(d, func() { p.drainCheck(d) })
	}
}

func (p *migrationPath) drainCheck(d time.Duration) {
	quiet := time.Since(socketOf(p.pc).lastReceived())
	p.mu.Lock()
	if p.ended {
		p.mu.Unlock()
		return
	}
	if quiet < d {
		p.drain.Reset(d - quiet)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	p.retire()
}

// end stops the drain checks; it reports whether the path had ended
// already.
func (p *migrationPath) end() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drain != nil {
		p.drain.Stop()
	}
	was := p.ended
	p.ended = true
	return was
}

// retire abandons the path in quic-go (it will neither probe it nor switch
// back to it) and releases its socket; the quic.Transport stays until the
// Conn ends. Safe to call more than once and from any goroutine.
func (p *migrationPath) retire() {
	if p.end() {
		return
	}
	if p.path != nil {
		_ = p.path.Close()
	}
	socketOf(p.pc).retire()
}

// close releases everything of the path, once the connection has ended:
// the socket first, so the Transport's read loop ends, then the
// Transport.
func (p *migrationPath) close() {
	p.end()
	if p.path != nil {
		_ = p.path.Close()
	}
	_ = p.pc.Close()
	_ = p.tr.Close()
}

func newConn(qc *quic.Conn, role Role, cfg *Config) *Conn {
	ctx, cancel := context.WithCancelCause(context.Background())
	c := &Conn{
		qc:                qc,
		role:              role,
		logger:            cfg.Logger.With("remote", qc.RemoteAddr().String(), "role", role.String()),
		ctx:               ctx,
		cancel:            cancel,
		remoteAddr:        qc.RemoteAddr(),
		migrationDisabled: cfg.DisableMigration,
	}
	c.localAddr.Store(&addrBox{qc.LocalAddr()})
	return c
}

// watch waits for the QUIC connection to end, then cancels the Conn's
// context with the converted cause and releases the migration sockets.
func (c *Conn) watch() {
	<-c.qc.Context().Done()
	cause := convertErr(context.Cause(c.qc.Context()))
	if cause == nil || errors.Is(cause, context.Canceled) {
		cause = ErrClosed
	}
	c.cancel(cause)
	c.migrationMu.Lock()
	c.pathsGone = true
	paths := c.paths
	c.paths, c.active = nil, nil
	c.migrationMu.Unlock()
	for _, p := range paths {
		p.close()
	}
}

// Role says whether this node dialed or accepted the connection.
func (c *Conn) Role() Role { return c.role }

// Logger is the connection's logger: the transport's, with the remote
// address and the role. An Authenticator logs about the connection
// through it.
func (c *Conn) Logger() *slog.Logger { return c.logger }

// Identity is the peer identity proven by the Authenticator (zero without
// one).
func (c *Conn) Identity() Identity { return c.identity }

// LocalAddr is the local address of the active path.
func (c *Conn) LocalAddr() net.Addr { return c.localAddr.Load().addr }

// RemoteAddr is the peer's address on the active path. On the acceptor it
// follows the dialer's migrations.
func (c *Conn) RemoteAddr() net.Addr {
	if c.role == RoleAcceptor {
		return c.qc.RemoteAddr()
	}
	return c.remoteAddr
}

// Context is done when the connection is closed for any reason;
// context.Cause gives the reason as one of this package's errors
// (ErrIdleTimeout, *CloseError matching ErrPeerClosed or ErrClosed, ...).
func (c *Conn) Context() context.Context { return c.ctx }

// OpenStream opens a bidirectional stream, waiting for stream credit from
// the peer until ctx is done.
func (c *Conn) OpenStream(ctx context.Context) (*Stream, error) {
	s, err := c.qc.OpenStreamSync(ctx)
	if err != nil {
		return nil, convertErr(err)
	}
	return &Stream{s: s}, nil
}

// AcceptStream waits for the peer's next bidirectional stream.
func (c *Conn) AcceptStream(ctx context.Context) (*Stream, error) {
	s, err := c.qc.AcceptStream(ctx)
	if err != nil {
		return nil, convertErr(err)
	}
	c.peerOpenedStream.Store(true)
	return &Stream{s: s}, nil
}

// OpenUniStream opens a unidirectional stream, waiting for stream credit
// until ctx is done.
func (c *Conn) OpenUniStream(ctx context.Context) (*SendStream, error) {
	s, err := c.qc.OpenUniStreamSync(ctx)
	if err != nil {
		return nil, convertErr(err)
	}
	return &SendStream{s: s}, nil
}

// AcceptUniStream waits for the peer's next unidirectional stream.
func (c *Conn) AcceptUniStream(ctx context.Context) (*ReceiveStream, error) {
	s, err := c.qc.AcceptUniStream(ctx)
	if err != nil {
		return nil, convertErr(err)
	}
	c.peerOpenedStream.Store(true)
	return &ReceiveStream{s: s}, nil
}

// Admitted tells the transport that the owner of this accepted connection
// has finished its own handshake on it (the dist layer calls it once the
// peer's dist hello is read and checked). Until then, or until the
// connection ends, an accepted connection still counts against
// Config.MaxPendingHandshakes and may be evicted to make room for a new
// one during a handshake flood (docs/security.md). It does nothing on a
// dialed connection and after the first call.
func (c *Conn) Admitted() {
	if c.admitter != nil {
		c.admitter.admitted(c)
	}
}

// CloseWithError closes the connection, sending code and reason to the peer
// (which sees a *CloseError matching ErrPeerClosed). It returns once the
// connection is closed. Later calls do nothing.
func (c *Conn) CloseWithError(code ErrorCode, reason string) error {
	c.closeOnce.Do(func() {
		_ = c.qc.CloseWithError(quic.ApplicationErrorCode(code), reason)
	})
	return nil
}

// ExportKeyingMaterial returns TLS exporter output (RFC 8446 §7.5) for this
// connection's TLS session; the Authenticator signs it to bind the peer's
// identity to this very connection.
func (c *Conn) ExportKeyingMaterial(label string, context []byte, length int) ([]byte, error) {
	st := c.qc.ConnectionState()
	return st.TLS.ExportKeyingMaterial(label, context, length)
}

// negotiatedALPN is the ALPN the TLS handshake settled on.
func (c *Conn) negotiatedALPN() string { return c.qc.ConnectionState().TLS.NegotiatedProtocol }

// PathStats are statistics of a connection's active path. After a
// migration the RTT and congestion figures restart on the new path.
type PathStats struct {
	SmoothedRTT, LatestRTT, MinRTT, RTTVariation                                   time.Duration
	CongestionWindow                                                               uint64
	BytesSent, PacketsSent, BytesReceived, PacketsReceived, BytesLost, PacketsLost uint64
	LocalAddr, RemoteAddr                                                          net.Addr
	// Migrations counts successful Migrate calls on this connection.
	Migrations int
}

// Stats returns the current path statistics.
func (c *Conn) Stats() PathStats {
	s := c.qc.ConnectionStats()
	return PathStats{
		SmoothedRTT:      s.SmoothedRTT,
		LatestRTT:        s.LatestRTT,
		MinRTT:           s.MinRTT,
		RTTVariation:     s.MeanDeviation,
		CongestionWindow: s.CongestionWindow,
		BytesSent:        s.BytesSent,
		PacketsSent:      s.PacketsSent,
		BytesReceived:    s.BytesReceived,
		PacketsReceived:  s.PacketsReceived,
		BytesLost:        s.BytesLost,
		PacketsLost:      s.PacketsLost,
		LocalAddr:        c.LocalAddr(),
		RemoteAddr:       c.RemoteAddr(),
		Migrations:       int(c.migrations.Load()),
	}
}

// SetPeerMigrationDisabled records that the peer forbade active migration
// (learned by the Cask handshake, since quic-go v0.65 cannot advertise it).
// From then on Migrate returns ErrPeerDisableMigration.
func (c *Conn) SetPeerMigrationDisabled() { c.peerMigrationDisabled.Store(true) }

// Migrate moves the connection to a new local path (RFC 9000 §9): it opens
// a socket from adapter (nil means a UDP socket on the current local IP, new
// port), probes the path (PATH_CHALLENGE/PATH_RESPONSE) until it validates
// or ctx is done, then switches to it. Streams and their data ride through.
// A connection may migrate any number of times: the socket of a path the
// connection left is released (see the package doc, "Migration").
//
// Errors: ErrMigrationNotAllowed on the acceptor (only the dialer may
// migrate) or when Config.DisableMigration is set; ErrPeerDisableMigration
// when the peer forbade it; ErrMigrationTimeout when the path did not
// validate before ctx's deadline (the old path keeps working); ErrClosed or
// the connection's close cause when it ended meanwhile. Calls are
// serialized.
func (c *Conn) Migrate(ctx context.Context, adapter SocketAdapter) error {
	if c.role != RoleDialer {
		return fmt.Errorf("%w: the connection was accepted, only the dialer can migrate", ErrMigrationNotAllowed)
	}
	if c.migrationDisabled {
		return fmt.Errorf("%w: Config.DisableMigration is set", ErrMigrationNotAllowed)
	}
	if c.peerMigrationDisabled.Load() {
		return ErrPeerDisableMigration
	}
	c.migrationMu.Lock()
	defer c.migrationMu.Unlock()
	if c.pathsGone || c.ctx.Err() != nil {
		return context.Cause(c.ctx)
	}
	if adapter == nil {
		adapter = UDPAdapter{Addr: net.JoinHostPort(hostOf(c.LocalAddr()), "0")}
	}
	sock, err := adapter.Open()
	if err != nil {
		return fmt.Errorf("transport: migrate: open socket: %w", err)
	}
	pc := newPathSocket(sock)
	next := &migrationPath{pc: pc, tr: &quic.Transport{Conn: pc}}
	next.path, err = c.qc.AddPath(next.tr)
	if err != nil {
		next.close() // nothing was sent on it yet
		return c.migrationRefused(err)
	}
	c.paths = append(c.paths, next)

	// Probe until validated, ctx is done, or the connection ends (Probe
	// itself does not watch the connection).
	srtt := c.pathRTT()
	probeCtx, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(c.ctx, func() { cancel(context.Cause(c.ctx)) })
	err = probePath(probeCtx, next.path, probeRetry(srtt))
	stop()
	cancel(nil)
	if err != nil {
		next.retire()
		switch {
		case c.ctx.Err() != nil:
			return context.Cause(c.ctx)
		case errors.Is(ctx.Err(), context.DeadlineExceeded):
			return fmt.Errorf("%w: path from %s not validated", ErrMigrationTimeout, pc.LocalAddr())
		case ctx.Err() != nil:
			return ctx.Err()
		}
		return fmt.Errorf("transport: migrate: probe: %w", convertErr(err))
	}
	if err := next.path.Switch(); err != nil {
		next.retire()
		return fmt.Errorf("transport: migrate: switch: %w", convertErr(err))
	}
	if left := c.active; left != nil {
		left.drainThenRetire(pathDrain(srtt))
	}
	c.active = next
	c.localAddr.Store(&addrBox{pc.LocalAddr()})
	n := c.migrations.Add(1)
	c.logger.Info("transport: connection migrated", "local", pc.LocalAddr().String(), "migrations", n)
	return nil
}

// pathRTT is the smoothed RTT of the path in use. Right after a migration
// quic-go has not measured the new path yet and reports its 100 ms initial
// estimate (with no deviation): then pathRTT is the last one measured, which
// describes the network far better. migrationMu is held.
func (c *Conn) pathRTT() time.Duration {
	s := c.qc.ConnectionStats()
	if s.MeanDeviation == 0 && c.measuredRTT > 0 {
		return c.measuredRTT
	}
	c.measuredRTT = s.SmoothedRTT
	return s.SmoothedRTT
}

// errProbeRetry ends one probing attempt of probePath.
var errProbeRetry = errors.New("transport: probe again")

// minProbeRetry is the shortest wait before probePath probes again.
const minProbeRetry = 10 * time.Millisecond

// probeRetry is how long probePath waits for the first PATH_RESPONSE
// before it probes again, for a smoothed RTT of srtt on the path in use.
func probeRetry(srtt time.Duration) time.Duration { return max(3*srtt, minProbeRetry) }

// probePath probes p until it validates or ctx ends. quic-go repeats an
// unanswered PATH_CHALLENGE only after 200 ms (its initial RTT estimate),
// doubling. A quic-go peer ignores a challenge from a new address while it
// has no spare connection ID of ours for it, until it has moved to the
// path of the previous migration (then it retires one and we issue a new
// one): back-to-back migrations meet that often, and each waited 200 ms.
// So probePath calls Probe again, which sends a new challenge at once,
// after wait, then twice as long, and so on. A response to a challenge
// sent before a new Probe no longer counts, hence the doubling.
func probePath(ctx context.Context, p *quic.Path, wait time.Duration) error {
	for {
		attempt, cancel := context.WithTimeoutCause(ctx, wait, errProbeRetry)
		err := p.Probe(attempt)
		cancel()
		if err == nil || !errors.Is(err, errProbeRetry) || ctx.Err() != nil {
			return err
		}
		wait *= 2
	}
}

// migrationRefused maps quic-go's AddPath refusals, which are plain
// errors.New values, to our sentinels.
func (c *Conn) migrationRefused(err error) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "disabled connection migration"):
		c.peerMigrationDisabled.Store(true)
		return ErrPeerDisableMigration
	case strings.Contains(msg, "cannot initiate connection migration"):
		return ErrMigrationNotAllowed
	}
	return fmt.Errorf("transport: migrate: %w", convertErr(err))
}

// hostOf returns addr's IP as a string, or "" (all interfaces).
func hostOf(addr net.Addr) string {
	if u, ok := addr.(*net.UDPAddr); ok {
		return u.IP.String()
	}
	host, _, err := net.SplitHostPort(addr.String())
	if err != nil {
		return ""
	}
	return host
}
