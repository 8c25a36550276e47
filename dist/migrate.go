// Connection migration requests (MigratePeer), and handovers.
//
// The manager actor routes a request to the peer's controller, which
// queues it and runs one migration at a time on a goroutine counted by the
// Manager, answering the requester from that goroutine; or, where QUIC
// path migration cannot serve, hands the session over to a new connection
// it dials (startHandover) and answers when the peer resumed the session
// on it (onHandoverDialed).
//
// Ownership: the migration queue belongs to the controller (Receive only);
// the running migration's goroutine owns nothing but its reply.

package dist

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/cask-p2p/cask/proto/caskpb"
	"github.com/cask-p2p/cask/transport"
)

// DefaultMigrationTimeout bounds one migration when MigratePeer.Timeout is
// zero: the new path must validate within it.
const DefaultMigrationTimeout = 5 * time.Second

// maxQueuedMigrations bounds the migration requests one controller holds
// while an earlier one runs.
const maxQueuedMigrations = 1024

// migrationReplyMargin is added to a migration's timeout when waiting for
// its answer, so the controller's ErrTimeout, not the wait, ends it.
const migrationReplyMargin = time.Second

// Migration errors, for errors.Is. The errors callers see are wrapped in a
// *PeerError (op "migrate"); transport's own error stays in the chain.
var (
	// ErrPeerDisableMigration: the peer forbade migration (its
	// DisableMigration setting, advertised in the dist handshake, or
	// quic-go's disable_active_migration). Terminal for this connection:
	// do not retry until the session goes down and up again.
	ErrPeerDisableMigration = errors.New("dist: peer disabled migration")
	// ErrTimeout: the new path did not validate (PATH_CHALLENGE /
	// PATH_RESPONSE) within the timeout. The old path keeps working;
	// retrying, perhaps with a larger timeout, is fine.
	ErrTimeout = errors.New("dist: migration timed out")
	// ErrMigrationNotAllowed: this node may not migrate the session: its
	// DisableMigration is set, or it accepted the connection from a peer
	// that cannot resume a session on a new connection (an older build),
	// so no handover can replace QUIC path migration, which only the
	// dialing side may do (RFC 9000 §9).
	ErrMigrationNotAllowed = errors.New("dist: migration not allowed on this side")
)

// MigratePeer asks the dist manager to move the QUIC connection to Node
// onto a new local path (RFC 9000 §9). The sender gets *MigrateResult once
// the new path is validated and in use, or the attempt failed: never
// before, and at the latest shortly after Timeout. The reply is sent from
// a goroutine, not the controller, so a slow path never blocks the
// controller's mailbox; migrations to one peer run one after the other,
// migrations to different peers at the same time.
//
// The new path is a fresh UDP socket on the current local IP (new port)
// by default, a socket on LocalAddr when set, or a socket opened by
// Adapter (a relay, for instance). Setting both LocalAddr and Adapter is
// an error. In-flight messages, watches and user streams ride through.
// A connection may migrate any number of times.
//
// Where QUIC path migration cannot serve, the session is handed over to a
// new connection dialed from that socket instead, and the answer comes
// once the new connection is authenticated and the peer resumed the
// session on it: at once on the accepting side (QUIC lets only the
// dialing side migrate), and on the dialing side when the new path did
// not validate in half the Timeout (a dead path with a full congestion
// window cannot be probed).
// Nothing in flight is lost; user streams end with ErrConnectionLost.
type MigratePeer struct {
	Node string
	// Timeout bounds path validation, counted from when the controller
	// receives the request (time queued behind another migration counts).
	// Zero means DefaultMigrationTimeout.
	Timeout time.Duration
	// LocalAddr is the local address of the new path, "ip" or "ip:port"
	// (port 0 or none: any free port), e.g. a new interface's address.
	LocalAddr string
	// Adapter opens the new path's socket, e.g. adapter.Relayed.
	Adapter transport.SocketAdapter
}

// MigrateResult answers MigratePeer. Err is nil on success, otherwise a
// *PeerError matching one of ErrNotConnected, ErrNoConn,
// ErrPeerDisableMigration, ErrTimeout, ErrMigrationNotAllowed,
// ErrStopped, ErrBadNodeName or ErrSelf (or, when
// the new socket could not be opened, the socket error).
type MigrateResult struct {
	Node string
	Err  error
}

// MigrateOption sets a field of a MigratePeer request; see
// Manager.MigratePeer.
type MigrateOption func(*MigratePeer)

// MigrationTimeout sets MigratePeer.Timeout.
func MigrationTimeout(d time.Duration) MigrateOption {
	return func(m *MigratePeer) { m.Timeout = d }
}

// MigrationLocalAddr sets MigratePeer.LocalAddr.
func MigrationLocalAddr(addr string) MigrateOption {
	return func(m *MigratePeer) { m.LocalAddr = addr }
}

// MigrationAdapter sets MigratePeer.Adapter.
func MigrationAdapter(a transport.SocketAdapter) MigrateOption {
	return func(m *MigratePeer) { m.Adapter = a }
}

// MigratePeer sends a MigratePeer request for node and waits for its
// answer (see MigratePeer for what happens). When ctx ends before the
// timeout would, the timeout is shortened to ctx's deadline.
func (m *Manager) MigratePeer(ctx context.Context, node string, opts ...MigrateOption) error {
	req := &MigratePeer{Node: node}
	for _, o := range opts {
		o(req)
	}
	if err := m.checkPeer(node); err != nil {
		return peerErr("migrate", node, err)
	}
	if req.Timeout <= 0 {
		req.Timeout = DefaultMigrationTimeout
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < req.Timeout {
		req.Timeout = time.Until(dl)
		if req.Timeout <= 0 {
			return peerErr("migrate", node, context.DeadlineExceeded)
		}
	}
	rctx, cancel := context.WithTimeout(ctx, req.Timeout+migrationReplyMargin)
	defer cancel()
	res, err := m.request(rctx, req)
	if err != nil {
		return peerErr("migrate", node, err)
	}
	return res.(*MigrateResult).Err
}

// migrationQueue is a controller's migration state: at most one
// migration runs; the others wait in order.
type migrationQueue struct {
	running bool
	waiting []*pendingMigration
}

type pendingMigration struct {
	req      *MigratePeer
	replyTo  *actor.PID
	deadline time.Time
}

// migrateDone tells the controller that its running migration finished
// (the requester already has its answer).
type migrateDone struct{}

// onMigratePeer queues a migration request and starts it when none runs.
func (c *controller) onMigratePeer(req *MigratePeer, replyTo *actor.PID) {
	timeout := req.Timeout
	if timeout <= 0 {
		timeout = DefaultMigrationTimeout
	}
	p := &pendingMigration{req: req, replyTo: replyTo, deadline: time.Now().Add(timeout)}
	if req.LocalAddr != "" && req.Adapter != nil {
		c.answerMigration(p, errors.New("dist: MigratePeer: set LocalAddr or Adapter, not both"))
		return
	}
	if len(c.migrations.waiting) >= maxQueuedMigrations {
		c.answerMigration(p, fmt.Errorf("%w: %d migrations already queued", ErrQueueFull, len(c.migrations.waiting)))
		return
	}
	c.migrations.waiting = append(c.migrations.waiting, p)
	c.startMigration()
}

// onMigrateDone starts the next queued migration, if any.
func (c *controller) onMigrateDone() {
	c.migrations.running = false
	c.startMigration()
}

// startMigration runs the first queued migration that passes its checks,
// unless one runs already. On the dialing side Migrate runs on a goroutine
// counted by the Manager's WaitGroup; it answers the requester itself, then
// posts migrateDone to this controller, or, when the new path could not be
// probed in the first half of the timeout (or the connection reached
// quic-go's limits), posts handoverNeeded instead. On the accepting side,
// which QUIC does not let migrate, the migration is a handover at once
// (startHandover).
func (c *controller) startMigration() {
	for !c.migrations.running && len(c.migrations.waiting) > 0 {
		p := c.migrations.waiting[0]
		c.migrations.waiting[0] = nil
		c.migrations.waiting = c.migrations.waiting[1:]
		if err := c.migrationCheck(); err != nil {
			c.answerMigration(p, err)
			continue
		}
		if time.Until(p.deadline) <= 0 {
			c.answerMigration(p, fmt.Errorf("%w: waited in the queue behind other migrations", ErrTimeout))
			continue
		}
		c.migrations.running = true
		if c.sess.role != transport.RoleDialer {
			c.startHandover(p, nil)
			return
		}
		adapter := migrationAdapter(p.req)
		canHandOver := c.st.sequenced
		conn, m, peer, self := c.sess.conn, c.m, c.peer, c.self
		m.log.Info("migrating connection", c.log("from", addrString(conn.LocalAddr()), "local_addr", p.req.LocalAddr,
			"timeout", time.Until(p.deadline).Round(time.Millisecond))...)
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			start, from := time.Now(), addrString(conn.LocalAddr())
			probeBy := p.deadline
			if canHandOver {
				// Half the time for the probe, half for a handover.
				probeBy = start.Add(p.deadline.Sub(start) / 2)
			}
			ctx, cancel := context.WithDeadline(m.ctx, probeBy)
			err := conn.Migrate(ctx, adapter)
			cancel()
			if canHandOver && m.ctx.Err() == nil &&
				errors.Is(err, transport.ErrMigrationTimeout) {
				m.log.Info("path migration failed, handing the session over to a new connection", "peer", peer, "err", err)
				m.system.Root.Send(self, &handoverNeeded{p: p, cause: err, start: start})
				return
			}
			err = migrationError(err, m.ctx.Err() != nil, probeBy.Sub(start))
			m.metrics.migrated(peer, time.Since(start), err)
			m.peerMigrated(peer, from, addrString(conn.LocalAddr()), start, time.Since(start), err)
			if err != nil {
				m.log.Warn("migration failed", "peer", peer, "err", err, "took", time.Since(start).Round(time.Microsecond))
			} else {
				m.log.Info("connection migrated", "peer", peer, "local", addrString(conn.LocalAddr()),
					"took", time.Since(start).Round(time.Microsecond))
			}
			if p.replyTo != nil {
				m.system.Root.Send(p.replyTo, &MigrateResult{Node: peer, Err: peerErr("migrate", peer, err)})
			}
			m.system.Root.Send(self, &migrateDone{})
		}()
	}
}

// migrationAdapter is the socket adapter a request names: its Adapter, a
// socket on its LocalAddr, or nil (a fresh socket on the current local IP).
func migrationAdapter(req *MigratePeer) transport.SocketAdapter {
	if req.LocalAddr != "" {
		return transport.UDPAdapter{Addr: withPort(req.LocalAddr)}
	}
	return req.Adapter
}

// Handover messages: the running migration must hand the session over
// (handoverNeeded, from the migration goroutine), and the new
// connection's dial ended (handoverDialed).
type (
	handoverNeeded struct {
		p     *pendingMigration
		cause error // the failed path migration, nil on the accepting side
		start time.Time
	}
	handoverDialed struct {
		seq   uint64
		p     *pendingMigration
		cause error
		start time.Time
		res   *dialResult
	}
)

// startHandover moves the session to a new connection that this node dials
// from the requested socket (a fresh one on the current local IP by
// default): the running migration when QUIC path migration cannot serve
// (this node accepted the connection; the path could not be probed; the
// connection reached quic-go's limits). The hello resumes the session; the
// old connection carries messages until the new one is authenticated and
// the peer resumed the session (onHandoverDialed).
func (c *controller) startHandover(p *pendingMigration, cause error) {
	var err error
	switch {
	case c.shutting || c.m.stopping.Load():
		err = ErrStopped
	case c.st == nil:
		err = ErrNotConnected
	case !c.st.sequenced:
		err = fmt.Errorf("%w: %s cannot resume a session on a new connection", ErrMigrationNotAllowed, c.peer)
	}
	if err != nil {
		c.answerMigration(p, err)
		c.onMigrateDone()
		return
	}
	start := time.Now()
	adapter := migrationAdapter(p.req)
	if adapter == nil {
		local := c.m.tr.Addr()
		if c.sess != nil {
			local = c.sess.conn.LocalAddr()
		}
		adapter = transport.UDPAdapter{Addr: net.JoinHostPort(hostOf(local), "0")}
	}
	offer := c.resumeOffer()
	offer.handover = true
	c.handoverSeq++
	c.handingOver = true
	seq, m, peer, self := c.handoverSeq, c.m, c.peer, c.self
	m.log.Info("handing the session over to a new connection", c.log("local_addr", p.req.LocalAddr,
		"timeout", time.Until(p.deadline).Round(time.Millisecond))...)
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		ctx, cancel := context.WithDeadline(m.ctx, p.deadline)
		res := m.dial(ctx, peer, offer, adapter)
		cancel()
		res.offer = offer
		m.system.Root.Send(self, &handoverDialed{seq: seq, p: p, cause: cause, start: start, res: res})
	}()
}

// onHandoverDialed settles a handover: the new connection replaces the old
// one when the peer resumed the session, and the requester is answered.
func (c *controller) onHandoverDialed(msg *handoverDialed) {
	r, p := msg.res, msg.p
	if msg.seq != c.handoverSeq {
		if r.conn != nil {
			r.conn.CloseWithError(transport.CodeDuplicate, "stale handover")
		}
		return
	}
	c.handingOver = false
	answer := func(err error) {
		c.m.metrics.migrated(c.peer, time.Since(msg.start), err)
		c.answerMigration(p, err)
		c.onMigrateDone()
	}
	if r.err != nil {
		if r.conn != nil {
			r.conn.CloseWithError(transport.CodeHandshakeFailed, "handshake rejected")
		}
		c.m.log.Warn("handover failed", c.log("err", r.err)...)
		answer(handoverError(msg.cause, r.err, p.deadline.Sub(msg.start)))
		if c.sess == nil && c.st != nil {
			// The old connection ended meanwhile: reconnect as after
			// any loss.
			c.connectionLost(nil, c.lostReason, c.lostErr)
		}
		return
	}
	w := r.welcome
	inc := Incarnation(w.GetIncarnation())
	if c.shutting || c.m.stopping.Load() || c.st == nil || c.st != r.offer.state {
		r.conn.CloseWithError(transport.CodeDuplicate, "session changed during the handover")
		answer(fmt.Errorf("%w: the session ended during the handover", ErrNoConn))
		if c.sess == nil && c.st != nil {
			c.connectionLost(nil, c.lostReason, c.lostErr)
		}
		return
	}
	resumed := w.GetResumed() && w.GetSessionId() == c.st.remoteID && inc == c.st.peerInc
	if old := c.sess; old != nil {
		c.dropConnection(old)
		old.closeWith(errors.New("handed over to a new connection"), ReasonConnectionLost, transport.CodeDuplicate)
	}
	if c.state == stateDialing {
		c.dialCancel()
		c.dialSeq++
		c.state = stateIdle
	}
	resumed = c.adopt(resumed, r.offer.localID, w.GetSessionId(), inc, w.GetCapabilities(), w.GetReceived())
	s := newSession(c.m, c.ep, c.st, r.conn, r.controlStream, r.controlReader, w.GetCapabilities(), w.GetMaxMessageSize())
	c.establish(s, resumed)
	if !resumed {
		answer(fmt.Errorf("%w: the peer did not resume the session on the new connection", ErrSessionEnded))
		return
	}
	c.m.log.Info("session handed over", c.log("local", addrString(r.conn.LocalAddr()),
		"took", time.Since(msg.start).Round(time.Microsecond))...)
	answer(nil)
}

// handoverError is the error of a failed handover: the path migration's
// failure first, if there was one, then the new connection's.
func handoverError(cause, dialErr error, timeout time.Duration) error {
	extra := fmt.Sprintf("within %v; a new connection did not come up either: %s", timeout.Round(time.Millisecond), bare(dialErr.Error()))
	switch {
	case cause != nil && errors.Is(cause, transport.ErrMigrationTimeout):
		return translate(ErrTimeout, cause, transport.ErrMigrationTimeout, extra)
	case errors.Is(dialErr, context.DeadlineExceeded):
		return translate(ErrTimeout, dialErr, nil, fmt.Sprintf("(new connection not up within %v)", timeout.Round(time.Millisecond)))
	}
	return fmt.Errorf("%w: handover: %w", ErrTimeout, dialErr)
}

// hostOf is the IP of a UDP address, as a string.
func hostOf(a net.Addr) string {
	if u, ok := a.(*net.UDPAddr); ok {
		return u.IP.String()
	}
	if h, _, err := net.SplitHostPort(addrString(a)); err == nil {
		return h
	}
	return ""
}

// failMigrations answers every queued migration with err (the running
// one answers for itself).
func (c *controller) failMigrations(err error) {
	for _, p := range c.migrations.waiting {
		c.answerMigration(p, err)
	}
	c.migrations.waiting = nil
}

func (c *controller) answerMigration(p *pendingMigration, err error) {
	if p.replyTo != nil {
		c.m.system.Root.Send(p.replyTo, &MigrateResult{Node: c.peer, Err: peerErr("migrate", c.peer, err)})
	}
}

// migrationCheck is sessionCheck plus the checks that need no I/O: not
// when this node or the peer forbade migration, and on the accepting side
// only when the session can be handed over to a new connection.
func (c *controller) migrationCheck() error {
	if err := c.sessionCheck(); err != nil {
		return err
	}
	if !peerAllowsMigration(c.sess.caps) {
		return fmt.Errorf("%w: advertised in the dist handshake", ErrPeerDisableMigration)
	}
	if c.m.cfg.DisableMigration {
		return fmt.Errorf("%w: this node's DisableMigration is set", ErrMigrationNotAllowed)
	}
	if c.sess.role != transport.RoleDialer && !c.st.sequenced {
		return fmt.Errorf("%w: %s dialed this connection and cannot resume a session on a new one", ErrMigrationNotAllowed, c.peer)
	}
	return nil
}

// noteMigrationCapability tells the connection when the peer forbade
// migration in the dist handshake (quic-go cannot carry it), so
// transport refuses it too.
func noteMigrationCapability(s *session) {
	if !peerAllowsMigration(s.caps) {
		s.conn.SetPeerMigrationDisabled()
	}
}

func peerAllowsMigration(caps uint64) bool {
	return caps&(1<<caskpb.Capability_CAPABILITY_MIGRATION) != 0
}

// migrationError translates transport's migration errors into this
// package's sentinels (once: see translate). timeout is the migration's
// bound, named in the message when the path did not validate in time.
func migrationError(err error, stopped bool, timeout time.Duration) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, transport.ErrMigrationTimeout):
		return translate(ErrTimeout, err, transport.ErrMigrationTimeout, fmt.Sprintf("within %v", timeout.Round(time.Millisecond)))
	case errors.Is(err, transport.ErrPeerDisableMigration):
		return translate(ErrPeerDisableMigration, err, transport.ErrPeerDisableMigration, "")
	case errors.Is(err, transport.ErrMigrationNotAllowed):
		return translate(ErrMigrationNotAllowed, err, transport.ErrMigrationNotAllowed, "")
	case stopped:
		return translate(ErrStopped, err, nil, "")
	case errors.Is(err, transport.ErrClosed), errors.Is(err, transport.ErrIdleTimeout),
		errors.Is(err, transport.ErrPeerClosed), errors.Is(err, transport.ErrHandshake):
		return translate(ErrNoConn, err, nil, "")
	}
	return err
}

// withPort adds port 0 to an address given without one.
func withPort(addr string) string {
	if _, _, err := net.SplitHostPort(addr); err == nil {
		return addr
	}
	return net.JoinHostPort(addr, "0")
}
