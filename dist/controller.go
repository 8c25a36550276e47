// The controller: the actor that owns one peer's session.
//
// One controller per peer, a child of the manager actor. It dials on
// demand, settles simultaneous connects, establishes a session on the
// endpoint, keeps the session (sessionstate.go) through a lost connection
// for SessionGrace and resumes it on a new one (connectionLost, adopt),
// ends it in one place (endSession: Terminated, NodeDown, dead letters),
// serves migration and handovers (migrate.go), path statistics
// (pathstats.go) and remote spawn (spawn.go), reaps an idle session, and
// retires itself and its endpoint when the peer needs neither
// (retireIfUnused).
//
// Ownership: every field of controller is touched only from Receive. Work
// that blocks (dial, handshake, migration, handover dial, graceful close,
// dead-lettering an ended session) runs on goroutines that report back
// with messages or touch only what they were handed.

package dist

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/cask-p2p/cask/proto/caskpb"
	"github.com/cask-p2p/cask/transport"
	"github.com/cask-p2p/cask/transport/identity"
)

// Messages a controller receives from its goroutines (dial, handshake,
// session readers, timers) and from the manager actor, besides the public
// request messages (Connect, Spawn, SendMembership, MigratePeer,
// GetPathStats). Each names the session it is about, so news about a
// session that was already replaced is recognised and dropped.
type (
	ensureConnected struct{ node string }
	inboundHello    struct {
		conn          *transport.Conn
		controlStream *transport.Stream
		controlReader *bufio.Reader
		hello         *caskpb.DistHello
	}
	sessionClosed struct {
		s      *session
		err    error
		reason NodeDownReason
	}
	peerGoodbye struct {
		s      *session
		reason NodeDownReason
	}
	spawnRequest struct {
		s   *session
		req *caskpb.SpawnRequest
	}
	spawnResponse struct {
		s    *session
		resp *caskpb.SpawnResponse
	}
	reapTick  struct{}
	dupRedial struct{ seq uint64 }
	// graceExpired: the SessionGrace timer armed with seq fired.
	graceExpired struct{ seq uint64 }
	// backoffTick: the reconnect backoff timer armed with seq fired.
	backoffTick struct{ seq uint64 }
)

// backoffPhase is where a controller is in its reconnect backoff.
type backoffPhase int

const (
	// backoffNone: no failed attempt is being remembered.
	backoffNone backoffPhase = iota
	// backoffWaiting: the last attempt failed and its delay runs; the
	// endpoint is unreachable (sends fail at once) and nothing dials but
	// an explicit Connect or Spawn.
	backoffWaiting
	// backoffRemembering: the delay ran out with nothing to send; the
	// next send dials at once, and the failure count is kept for as long
	// as the last delay again (at least minRemember, or
	// ReconnectBackoffMax if that is shorter), so a peer that
	// stays down is not dialed afresh from the first delay each time.
	// A controller that nothing else keeps retires instead and leaves
	// the count with the manager actor (failureMemory), which hands it
	// to the peer's next controller: a flood of names that never
	// resolve holds a controller and an endpoint each only while their
	// first delay runs.
	backoffRemembering
)

type ctrlState int

const (
	stateIdle ctrlState = iota
	stateDialing
	stateConnected
)

// controller is the actor that owns the session to one peer: it dials,
// decides which connection wins a simultaneous connect, attaches the
// session to the endpoint, turns a lost connection into Terminated and
// NodeDown, answers remote spawns and reaps the session when idle. All
// its state is touched only from Receive.
type controller struct {
	m    *Manager
	ep   *endpoint
	peer string
	self *actor.PID

	state ctrlState
	// sess is the current connection's part of the session; st the part
	// that outlives it (sessionstate.go), nil when there is no session.
	// While the connection is lost st lives on for SessionGrace without
	// sess (unreachable: NodeUnreachable was published).
	sess        *session
	st          *sessionState
	graceTimer  *time.Timer
	graceSeq    uint64
	unreachable bool
	lostReason  NodeDownReason
	lostErr     error
	dialSeq     uint64
	dialCancel  context.CancelFunc
	dupRedials  int
	knownInc    Incarnation

	waiters   []*actor.PID // Connect requests waiting for the session
	spawnSeq  uint64
	spawns    map[uint64]*spawnInFlight // request id → what waits for the answer
	spawnWait []*pendingSpawn
	// control frames (membership) waiting for the session
	pendingControl []*caskpb.Control

	migrations migrationQueue // MigratePeer requests (migrate.go)
	// handoverSeq numbers handovers, so a stale one's result is dropped.
	handoverSeq uint64
	// handingOver: a handover's dial runs; the old connection's end
	// then waits for it instead of being reported unreachable.
	handingOver bool

	// Reconnect backoff: failures in a row, the current phase, its timer
	// (messages carry backoffSeq so a stopped timer's tick is ignored)
	// and the last delay drawn.
	failures     int
	backoff      backoffPhase
	backoffTimer *time.Timer
	backoffSeq   uint64
	lastDelay    time.Duration

	reapTimer    *time.Timer
	lastActivity uint64
	idleSince    time.Time
	shutting     bool
	// holdsSlot: this controller counts against Config.MaxPeers
	// (Manager.peerSlots). It holds a slot exactly while it is not idle;
	// Receive releases it at the end of any message that left it idle.
	holdsSlot bool
	// retired: the endpoint is retired and the manager actor was told;
	// requests still routed here go back to the manager actor, which
	// hands them to a fresh controller.
	retired bool
}

func newController(m *Manager, ep *endpoint) *controller {
	return &controller{m: m, ep: ep, peer: ep.name, spawns: make(map[uint64]*spawnInFlight)}
}

func (c *controller) Receive(ctx actor.Context) {
	c.receive(ctx)
	if c.state == stateIdle {
		c.releaseSlot()
	}
}

func (c *controller) receive(ctx actor.Context) {
	if c.retired {
		switch ctx.Message().(type) {
		case *ensureConnected, *Connect, *Spawn, *SendMembership, *inboundHello, *MigratePeer, *GetPathStats, *Disconnect:
			// Routed here before the manager actor learnt of the
			// retirement; it now has no controller for the peer.
			ctx.Forward(c.m.pid)
			return
		}
	}
	switch msg := ctx.Message().(type) {
	case *actor.Started:
		c.self = ctx.Self()
		c.armReaper()
	case *ensureConnected:
		if c.backoff == backoffWaiting {
			return // the backoff tick dials if anything waits by then
		}
		c.ensureDial()
	case *Connect:
		if c.state == stateConnected {
			ctx.Respond(&ConnectResult{Node: c.peer})
			return
		}
		if ctx.Sender() != nil {
			c.waiters = append(c.waiters, ctx.Sender())
		}
		c.ensureDial()
	case *Spawn:
		c.spawnWait = append(c.spawnWait, &pendingSpawn{msg: msg, replyTo: ctx.Sender()})
		if c.state == stateConnected {
			c.flushSpawns()
		} else {
			c.ensureDial()
		}
	case *SendMembership:
		ctl := &caskpb.Control{Body: &caskpb.Control_Membership{Membership: msg.Msg}}
		if c.state == stateConnected {
			if c.sess.sendControl(ctl) == nil {
				return
			}
		}
		if len(c.pendingControl) < maxPendingControl {
			c.pendingControl = append(c.pendingControl, ctl)
		}
		// Membership dials at once, like an explicit Connect: HyParView
		// keeps its own backoff per peer and must hear of a failure
		// (NodeDown) to repair its views, not wait out this one.
		c.ensureDial()
	case *MigratePeer:
		c.onMigratePeer(msg, ctx.Sender())
	case *migrateDone:
		c.onMigrateDone()
	case *handoverNeeded:
		c.startHandover(msg.p, msg.cause)
	case *handoverDialed:
		c.onHandoverDialed(msg)
	case *GetPathStats:
		ctx.Respond(c.pathStats())
	case *Disconnect:
		ctx.Respond(c.disconnect())
	case *backoffTick:
		if msg.seq == c.backoffSeq {
			c.onBackoffTick()
		}
	case *dialResult:
		c.onDialResult(msg)
	case *dupRedial:
		if c.state == stateDialing && msg.seq == c.dialSeq {
			c.state = stateIdle
			c.ensureDial()
		}
	case *inboundHello:
		c.onInbound(msg)
	case *sessionClosed:
		c.m.log.Debug("session closed", "peer", c.peer, "reason", msg.reason, "err", msg.err)
		if msg.s == c.sess {
			if c.resumable(msg.reason) {
				c.connectionLost(msg.s, msg.reason, msg.err)
				return
			}
			c.retire(msg.reason, msg.err)
			if c.ep.hasPending() || len(c.waiters) > 0 || len(c.spawnWait) > 0 || len(c.pendingControl) > 0 {
				c.ensureDial()
			}
			c.retireIfUnused()
		}
	case *graceExpired:
		if msg.seq == c.graceSeq {
			c.onGraceExpired()
		}
	case *peerGoodbye:
		if msg.s == c.sess {
			c.m.log.Debug("peer said goodbye", "peer", c.peer, "reason", msg.reason)
			c.retire(msg.reason, nil)
			c.closeGracefully(msg.s, caskpb.GoodbyeReason_GOODBYE_REASON_UNSPECIFIED, false)
			if c.ep.hasPending() {
				c.ensureDial()
			}
			c.retireIfUnused()
		}
	case *spawnRequest:
		c.onSpawnRequest(msg)
	case *spawnResponse:
		c.onSpawnResponse(msg)
	case *reapTick:
		if c.retired {
			return
		}
		c.reap()
		c.retireIfUnused()
		if !c.retired {
			c.armReaper()
		}
	case *shutdown:
		c.shutting = true
		c.endBackoff()
		if c.dialCancel != nil {
			c.dialCancel()
		}
		if s := c.sess; s != nil {
			c.retire(ReasonShutdown, nil)
			c.closeGracefully(s, caskpb.GoodbyeReason_GOODBYE_REASON_SHUTDOWN, true)
		} else {
			c.endSession(ReasonShutdown, ErrStopped, true)
		}
		c.failWaiting(ErrStopped)
		c.failMigrations(ErrStopped)
		ctx.Respond(&shutdownDone{node: c.peer})
	case *actor.Stopping:
		if c.reapTimer != nil {
			c.reapTimer.Stop()
		}
		c.endBackoff()
		if c.dialCancel != nil {
			c.dialCancel()
		}
		if s := c.sess; s != nil {
			reason := ReasonControllerCrashed
			if c.shutting {
				reason = ReasonShutdown
			}
			c.retire(reason, nil)
			s.closeWith(errors.New("controller stopped"), reason, transport.CodeInternal)
		} else {
			c.endSession(ReasonShutdown, ErrStopped, true)
		}
		c.stopGrace()
		c.failWaiting(ErrStopped)
		c.failMigrations(ErrStopped)
		c.releaseSlot()
	}
}

// acquireSlot takes a MaxPeers slot for this controller unless it holds
// one; false when all are taken.
func (c *controller) acquireSlot() bool {
	if c.holdsSlot {
		return true
	}
	limit := int64(c.m.cfg.MaxPeers)
	for {
		n := c.m.peerSlots.Load()
		if n >= limit {
			return false
		}
		if c.m.peerSlots.CompareAndSwap(n, n+1) {
			c.holdsSlot = true
			return true
		}
	}
}

func (c *controller) releaseSlot() {
	if c.holdsSlot {
		c.holdsSlot = false
		c.m.peerSlots.Add(-1)
	}
}

// tooManyPeers is the error of a connect refused for MaxPeers.
func (c *controller) tooManyPeers() error {
	return fmt.Errorf("%w: %s", ErrTooManyPeers, tooManyPeersDetail(c.m.cfg.MaxPeers))
}

// tooManyPeersDetail explains a MaxPeers refusal, in errors and in the
// dist handshake's reject.
func tooManyPeersDetail(maxPeers int) string {
	return fmt.Sprintf("%d sessions or connects, the most Config.MaxPeers allows", maxPeers)
}

func (c *controller) log(args ...any) []any { return append([]any{"peer", c.peer}, args...) }

// ensureDial starts a connect attempt unless one runs, a session is up,
// or a handover's dial will bring the session its new connection.
func (c *controller) ensureDial() {
	if c.state != stateIdle || c.handingOver {
		return
	}
	if c.shutting || c.m.stopping.Load() {
		c.failWaiting(ErrStopped)
		return
	}
	if !c.acquireSlot() {
		c.connectFailed(c.tooManyPeers())
		return
	}
	if c.backoff != backoffNone {
		// An attempt starts (the delay ran out, or an explicit Connect or
		// Spawn does not wait for it): sends queue for it again. The
		// failure count stays until a session comes up.
		c.stopBackoffTimer()
		c.backoff = backoffNone
		c.ep.setUnreachable(nil)
	}
	c.state = stateDialing
	c.dialSeq++
	seq := c.dialSeq
	ctx, cancel := context.WithTimeout(c.m.ctx, c.m.cfg.ConnectTimeout)
	c.dialCancel = cancel
	offer := c.resumeOffer()
	self, root, m, peer := c.self, c.m.system.Root, c.m, c.peer
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer cancel()
		res := m.dial(ctx, peer, offer, nil)
		res.seq, res.offer = seq, offer
		root.Send(self, res)
	}()
}

// resumeOffer is what the next hello says about the session: resume the
// one that lost its connection, if any, else start one with a new id.
func (c *controller) resumeOffer() *resumeOffer {
	if st := c.st; st != nil && st.sequenced {
		return &resumeOffer{localID: st.localID, remoteID: st.remoteID, state: st}
	}
	return &resumeOffer{localID: newSessionID()}
}

func (c *controller) onDialResult(r *dialResult) {
	if c.state != stateDialing || r.seq != c.dialSeq {
		// Superseded by an inbound connection or a later attempt.
		if r.conn != nil {
			r.conn.CloseWithError(transport.CodeDuplicate, "superseded by another connection")
		}
		return
	}
	if r.err != nil {
		if r.conn != nil {
			r.conn.CloseWithError(transport.CodeHandshakeFailed, "handshake rejected")
		}
		if r.welcome != nil && r.welcome.GetReason() == caskpb.RejectReason_REJECT_REASON_DUPLICATE && c.dupRedials < 3 {
			// The peer is dialing us and its connection wins: wait for
			// it, and dial again if it does not come.
			c.dupRedials++
			seq, self, root := c.dialSeq, c.self, c.m.system.Root
			time.AfterFunc(c.m.cfg.ConnectTimeout/4, func() { root.Send(self, &dupRedial{seq: seq}) })
			return
		}
		c.state = stateIdle
		c.attemptFailed(r.err)
		return
	}
	w := r.welcome
	inc := Incarnation(w.GetIncarnation())
	resumed := r.offer != nil && r.offer.state != nil && r.offer.state == c.st && w.GetResumed() &&
		w.GetSessionId() == c.st.remoteID && inc == c.st.peerInc
	resumed = c.adopt(resumed, r.offer.localID, w.GetSessionId(), inc, w.GetCapabilities(), w.GetReceived())
	c.establish(newSession(c.m, c.ep, c.st, r.conn, r.controlStream, r.controlReader, w.GetCapabilities(), w.GetMaxMessageSize()), resumed)
}

// adopt settles which session a new connection carries: the current one,
// when both sides asked to resume it (resumed) and the peer's positions
// fit, or a new one with the given ids, after ending the current one (the
// peer restarted or no longer has it). It reports whether the current one
// is resumed.
func (c *controller) adopt(resumed bool, localID, remoteID uint64, inc Incarnation, caps uint64, positions []*caskpb.SessionPosition) bool {
	if resumed {
		err := c.st.applyPositions(positions)
		if err == nil {
			return true
		}
		c.m.log.Warn("cannot resume the session", c.log("err", err)...)
	}
	if st := c.st; st != nil {
		reason, err := ReasonConnectionLost, errors.New("the peer did not resume the session")
		if inc != st.peerInc {
			reason, err = ReasonRestarted, fmt.Errorf("peer restarted (incarnation %v → %v)", st.peerInc, inc)
		}
		c.endSession(reason, err, true)
	}
	c.st = newSessionState(c.m, c.peer, localID, remoteID, inc, caps)
	c.m.sessionCounters(c.peer).live.Store(c.st)
	return false
}

// onInbound decides whether to accept an inbound connection. Simultaneous
// connect: when both nodes dial each other, the connection dialed by the
// node with the smaller name wins on both sides, so exactly one survives.
// Messages are queued in the endpoint, not in a connection, so the losing
// attempt loses nothing.
func (c *controller) onInbound(in *inboundHello) {
	h := in.hello
	reject := func(reason caskpb.RejectReason, detail string) {
		c.m.log.Info("rejected inbound connection", c.log("reason", reason, "detail", detail)...)
		c.m.wg.Add(1)
		go func() {
			defer c.m.wg.Done()
			c.m.reject(in.conn, in.controlStream, reason, detail)
		}()
	}
	if c.shutting || c.m.stopping.Load() {
		reject(caskpb.RejectReason_REJECT_REASON_SHUTTING_DOWN, "node is stopping")
		return
	}
	if !c.acquireSlot() {
		reject(caskpb.RejectReason_REJECT_REASON_TOO_MANY_PEERS, tooManyPeersDetail(c.m.cfg.MaxPeers))
		return
	}
	inc := Incarnation(h.GetIncarnation())
	resumes := c.st != nil && c.st.sequenced && h.GetResumeSessionId() == c.st.localID &&
		h.GetSessionId() == c.st.remoteID && inc == c.st.peerInc
	switch c.state {
	case stateConnected:
		old := c.sess
		switch {
		case inc != old.inc:
			c.retire(ReasonRestarted, fmt.Errorf("peer restarted (incarnation %v → %v)", old.inc, Incarnation(h.GetIncarnation())))
			old.closeWith(errors.New("peer restarted"), ReasonRestarted, transport.CodeDuplicate)
		case resumes && h.GetHandover(), old.role == transport.RoleAcceptor, c.m.name >= c.peer:
			// The peer hands the session over to a new connection, or
			// dialed again because it gave up on the old one. The
			// session lives on if the new connection resumes it
			// (below).
			c.dropConnection(old)
			old.closeWith(errors.New("replaced by a new connection from the peer"), ReasonConnectionLost, transport.CodeDuplicate)
		default:
			reject(caskpb.RejectReason_REJECT_REASON_DUPLICATE, "a connection dialed by "+c.m.name+" is up")
			return
		}
	case stateDialing:
		if c.m.name < c.peer {
			reject(caskpb.RejectReason_REJECT_REASON_DUPLICATE, c.m.name+" is dialing and its connection wins")
			return
		}
		c.dialCancel()
		c.dialSeq++ // the running attempt's result is now stale
		c.state = stateIdle
	}
	resumed := resumes && c.st != nil // c.st is gone if the old connection's end ended it
	var localID uint64
	if !c.m.withoutSessions {
		localID = newSessionID()
	}
	resumed = c.adopt(resumed, localID, h.GetSessionId(), inc, h.GetCapabilities(), h.GetReceived())
	s := newSession(c.m, c.ep, c.st, in.conn, in.controlStream, in.controlReader, h.GetCapabilities(), h.GetMaxMessageSize())
	c.m.writeWelcome(s, h, resumed)
	c.establish(s, resumed)
}

func (c *controller) establish(s *session, resumed bool) {
	if c.knownInc != 0 && c.knownInc != s.inc {
		c.m.log.Info("peer is a new incarnation", c.log("old", c.knownInc, "new", s.inc)...)
	}
	c.knownInc = s.inc
	if ctr := c.ep.counters; ctr != nil {
		ctr.sessions.Add(1)
	}
	c.stopGrace()
	c.endBackoff()
	c.failures = 0
	c.state = stateConnected
	c.sess = s
	c.dupRedials = 0
	c.dialCancel = nil
	c.lastActivity, c.idleSince = 0, time.Now()
	noteMigrationCapability(s)
	s.run(c.self)
	if c.ep.pins.Load() > 0 {
		_ = s.sendControl(&caskpb.Control{Body: &caskpb.Control_SessionPin{SessionPin: &caskpb.SessionPin{Pinned: true}}})
	}
	if resumed {
		// What the peer has not acknowledged goes out first, before
		// anything queued meanwhile (attach): once the previous
		// connection's writers put what they held in the rings, every
		// stream with frames to resend gets its writer started.
		s.startResend()
	}
	c.ep.attach(s)
	sc := c.m.sessionCounters(c.peer)
	if resumed {
		sc.resumptions.Add(1)
		c.m.log.Info("session resumed", c.log("role", s.role, "remote", addrString(s.conn.RemoteAddr()))...)
		if c.unreachable {
			c.unreachable = false
			c.event(&NodeReachable{Node: c.peer})
		}
	} else {
		sc.sessions.Add(1)
		c.m.log.Info("session up", c.log("role", s.role, "remote", addrString(s.conn.RemoteAddr()))...)
		c.event(&NodeUp{Node: c.peer, Incarnation: s.inc})
	}
	for _, w := range c.waiters {
		c.m.system.Root.Send(w, &ConnectResult{Node: c.peer})
	}
	c.waiters = nil
	c.flushSpawns()
	for _, ctl := range c.pendingControl {
		_ = s.sendControl(ctl)
	}
	c.pendingControl = nil
}

// retire ends the session with its connection: senders stop using it and
// endSession ends the rest.
func (c *controller) retire(reason NodeDownReason, err error) {
	if s := c.sess; s != nil {
		c.dropConnection(s)
	}
	c.endSession(reason, err, false)
}

// dropConnection detaches the current connection from the endpoint (sends
// queue until the next one), closes its data writers and fails the remote
// spawns that waited on it; the session itself (c.st) is untouched. Once
// it returns no sender appends to the connection's streams any more, so a
// new connection's writers may take over the session's sequence numbers
// (the connection may have begun closing on its own goroutine, which
// closes the writers too, but not necessarily yet).
func (c *controller) dropConnection(s *session) {
	c.sess = nil
	s.retired.Store(true)
	c.state = stateIdle
	c.ep.detach(s)
	for _, w := range s.writers {
		w.close()
	}
	for id, f := range c.spawns {
		if f.replyTo != nil {
			c.m.system.Root.Send(f.replyTo, &SpawnResult{Err: peerErr("spawn", c.peer, ErrConnectionLost)})
		}
		delete(c.spawns, id)
	}
}

// resumable reports whether a connection that closed for reason leaves a
// session waiting for a new connection (Config.SessionGrace).
func (c *controller) resumable(reason NodeDownReason) bool {
	return reason == ReasonConnectionLost && c.st != nil && c.st.sequenced && c.m.cfg.SessionGrace > 0 &&
		!c.shutting && !c.m.stopping.Load()
}

// connectionLost keeps the session of a lost connection for SessionGrace:
// monitors hear NodeUnreachable, sends queue, and the controller
// reconnects at once (then with the reconnect backoff).
func (c *controller) connectionLost(s *session, reason NodeDownReason, err error) {
	if s != nil {
		c.dropConnection(s)
	}
	c.lostReason, c.lostErr = reason, err
	if c.handingOver {
		// The handover's new connection is on its way (or its failure
		// calls this again).
		c.m.log.Info("connection ended during a handover", c.log("err", err)...)
		c.armGrace()
		return
	}
	c.m.log.Info("connection lost, session kept", c.log("grace", c.m.cfg.SessionGrace, "err", err)...)
	if !c.unreachable {
		c.unreachable = true
		c.event(&NodeUnreachable{Node: c.peer, Err: err})
	}
	c.armGrace()
	c.ensureDial()
}

func (c *controller) armGrace() {
	c.stopGrace()
	seq, self, root := c.graceSeq, c.self, c.m.system.Root
	c.graceTimer = time.AfterFunc(c.m.cfg.SessionGrace, func() { root.Send(self, &graceExpired{seq: seq}) })
}

func (c *controller) stopGrace() {
	if c.graceTimer != nil {
		c.graceTimer.Stop()
		c.graceTimer = nil
	}
	c.graceSeq++
}

// onGraceExpired ends a session that found no new connection within
// SessionGrace.
func (c *controller) onGraceExpired() {
	c.graceTimer = nil
	if c.st == nil || c.sess != nil {
		return
	}
	if c.state == stateDialing {
		// Its hello offered to resume the session that now ends.
		c.dialCancel()
		c.dialSeq++
		c.state = stateIdle
	}
	err := fmt.Errorf("no new connection within the session grace window (%v): %w", c.m.cfg.SessionGrace, c.lostErr)
	if c.lostErr == nil {
		err = fmt.Errorf("no new connection within the session grace window (%v)", c.m.cfg.SessionGrace)
	}
	c.endSession(c.lostReason, err, true)
	c.retireIfUnused()
}

// endSession is where a session ends, whatever the cause (grace window
// over, peer restarted, Disconnect, Stop, an unresumable close): watches
// across it end (Terminated{AddressTerminated} to local watchers, Unwatch
// to local watchees), monitors get NodeDown, and every message the peer
// did not acknowledge is a dead letter (ErrSessionEnded with the reason),
// counted in SessionStats. With queued, messages waiting in the endpoint
// for a new connection are too. Anything else that must happen when a
// session ends belongs here.
func (c *controller) endSession(reason NodeDownReason, err error, queued bool) {
	st := c.st
	if st == nil {
		return
	}
	c.st = nil
	c.stopGrace()
	c.unreachable = false
	out, in := c.ep.takeWatches()
	c.endWatches(out, in)
	// Links across the session end with an exit signal to the local
	// partner: noconnection, or shutdown after the peer's goodbye.
	c.m.links.sessionEnded(c.peer, reason)
	if err != nil {
		c.m.log.Info("session down", c.log("reason", reason, "err", err)...)
	} else {
		c.m.log.Info("session down", c.log("reason", reason)...)
	}
	c.event(&NodeDown{Node: c.peer, Reason: reason, Err: err})
	sc := c.m.sessionCounters(c.peer)
	sc.live.CompareAndSwap(st, nil)
	why := &sessionEndedError{reason: reason, cause: err}
	if queued {
		_, n := c.ep.failPending(why)
		sc.deadLettered.Add(uint64(n))
	}
	if !st.sequenced {
		return
	}
	last, m := st.lastConn, c.m
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		if last != nil {
			<-last.done // its writers put what they held in the rings
		}
		if n := st.deadLetterUndelivered(why); n > 0 {
			sc.deadLettered.Add(uint64(n))
			m.log.Info("messages not acknowledged when the session ended are dead letters",
				"peer", st.peer, "count", n, "reason", reason)
		}
	}()
}

// event publishes a node event (NodeUp, NodeUnreachable, NodeReachable,
// NodeDown) to monitors, through the manager actor, in order.
func (c *controller) event(msg any) {
	c.m.system.Root.Send(c.m.pid, &nodeEvent{node: c.peer, msg: msg})
}

func (c *controller) endWatches(out, in map[string]map[string]*actor.PID) {
	reg := c.m.system.ProcessRegistry
	for remoteID, watchers := range out {
		who := &actor.PID{Address: c.peer, Id: remoteID}
		for _, w := range watchers {
			if p, ok := reg.GetLocal(w.Id); ok {
				p.SendSystemMessage(w, &actor.Terminated{Who: who, Why: actor.TerminatedReason_AddressTerminated})
			}
		}
	}
	for localID, watchers := range in {
		if p, ok := reg.GetLocal(localID); ok {
			target := &actor.PID{Address: c.m.name, Id: localID}
			for _, w := range watchers {
				p.SendSystemMessage(target, &actor.Unwatch{Watcher: w})
			}
		}
	}
}

// connectFailed settles everything that waited for the session.
func (c *controller) connectFailed(err error) {
	err = peerErr("connect", c.peer, err)
	if ae := (*identity.AuthError)(nil); errors.As(err, &ae) {
		// The identity layer logged it, at most once a minute per peer.
		c.m.log.Debug("connect failed", c.log("err", err)...)
	} else {
		c.m.log.Warn("connect failed", c.log("err", err)...)
	}
	c.failWaiting(err)
	c.event(&NodeDown{Node: c.peer, Reason: ReasonConnectFailed, Err: err})
}

// attemptFailed handles a failed connect attempt: it draws the next
// backoff delay, marks the endpoint unreachable until the delay runs
// out (so sends fail at once instead of waiting for an attempt), and
// settles what waited for this attempt with its error. The controller
// and its endpoint are not retired while the backoff lasts, so the
// knowledge survives; see backoffPhase.
func (c *controller) attemptFailed(err error) {
	c.failures++
	c.lastDelay = reconnectDelay(c.failures, c.m.cfg.ReconnectBackoffMin, c.m.cfg.ReconnectBackoffMax, rand.Float64())
	if c.st != nil && !c.shutting && !c.m.stopping.Load() {
		// A session waits for a new connection: sends keep queueing and
		// nothing is reported down until its grace window runs out; only
		// who waited for this attempt hears of it.
		c.m.log.Debug("reconnect failed, session kept", c.log("err", err, "retry_in", c.lastDelay)...)
		c.answerWaiters(peerErr("connect", c.peer, err))
		c.backoff = backoffWaiting
		c.armBackoff(c.lastDelay)
		return
	}
	if !c.shutting && !c.m.stopping.Load() {
		c.ep.setUnreachable(&unreachableError{connectErr: peerErr("connect", c.peer, err), retryIn: c.lastDelay})
		c.backoff = backoffWaiting
		c.armBackoff(c.lastDelay)
	}
	c.connectFailed(err)
	c.retireIfUnused()
}

// onBackoffTick ends a phase of the backoff: a delay that ran out makes
// the peer reachable again and dials at once if anything waits (a
// membership frame, a message queued by an endpoint, a Connect), else
// remembers the failure count for as long as the last delay; the end of
// that forgets it and retires the controller if nothing needs it.
func (c *controller) onBackoffTick() {
	c.backoffTimer = nil
	switch c.backoff {
	case backoffWaiting:
		c.ep.setUnreachable(nil)
		c.backoff = backoffRemembering
		if c.st != nil || c.ep.hasPending() || len(c.waiters) > 0 || len(c.spawnWait) > 0 || len(c.pendingControl) > 0 {
			c.ensureDial()
			return
		}
		remember := max(c.lastDelay, min(minRemember, c.m.cfg.ReconnectBackoffMax))
		c.backoff = backoffNone
		if c.retireUnused(rememberedFailures{failures: c.failures, forgetAt: time.Now().Add(remember)}) {
			return
		}
		c.backoff = backoffRemembering
		c.armBackoff(remember)
	case backoffRemembering:
		c.backoff = backoffNone
		c.failures = 0
		c.retireIfUnused()
	}
}

// minRemember is the shortest time a failure count is remembered after
// its delay ran out. With short delays (tens of milliseconds) a sender
// that pauses a little longer (a busy machine) would otherwise find the
// count forgotten and dial afresh from the first delay.
const minRemember = time.Second

func (c *controller) armBackoff(d time.Duration) {
	c.stopBackoffTimer()
	c.backoffSeq++
	seq, self, root := c.backoffSeq, c.self, c.m.system.Root
	c.backoffTimer = time.AfterFunc(d, func() { root.Send(self, &backoffTick{seq: seq}) })
}

func (c *controller) stopBackoffTimer() {
	if c.backoffTimer != nil {
		c.backoffTimer.Stop()
		c.backoffTimer = nil
	}
	c.backoffSeq++
}

// endBackoff forgets the backoff phase (not the failure count) and makes
// the endpoint reachable.
func (c *controller) endBackoff() {
	c.stopBackoffTimer()
	if c.backoff != backoffNone {
		c.backoff = backoffNone
		c.ep.setUnreachable(nil)
	}
}

// reconnectDelay is the backoff after the failures-th failed connect
// attempt in a row: lo·ReconnectBackoffFactor^(failures-1), capped at hi,
// moved by ±ReconnectBackoffJitter as u goes from 0 to 1 (u is uniform in
// [0, 1)), and never above hi.
func reconnectDelay(failures int, lo, hi time.Duration, u float64) time.Duration {
	d := lo
	for i := 1; i < failures && d < hi; i++ {
		d *= ReconnectBackoffFactor
	}
	d = min(d, hi)
	d = time.Duration(float64(d) * (1 + ReconnectBackoffJitter*(2*u-1)))
	return min(d, hi)
}

// disconnect closes the session on purpose (Disconnect) and forgets the
// reconnect backoff.
func (c *controller) disconnect() *DisconnectResult {
	c.endBackoff()
	c.failures = 0
	s := c.sess
	if s == nil && c.st != nil {
		// The session waits for a new connection: end it now.
		if c.state == stateDialing {
			c.dialCancel()
			c.dialSeq++
			c.state = stateIdle
		}
		c.endSession(ReasonDisconnected, nil, true)
		c.retireIfUnused()
		return &DisconnectResult{Node: c.peer}
	}
	if s == nil || c.state != stateConnected {
		c.retireIfUnused()
		return &DisconnectResult{Node: c.peer, Err: peerErr("disconnect", c.peer, ErrNotConnected)}
	}
	c.retire(ReasonDisconnected, nil)
	c.closeGracefully(s, caskpb.GoodbyeReason_GOODBYE_REASON_UNSPECIFIED, true)
	if c.ep.hasPending() || len(c.waiters) > 0 || len(c.spawnWait) > 0 || len(c.pendingControl) > 0 {
		c.ensureDial()
	}
	c.retireIfUnused()
	return &DisconnectResult{Node: c.peer}
}

func (c *controller) failWaiting(err error) {
	out, _ := c.ep.failPending(err)
	c.endWatches(out, nil)
	c.answerWaiters(err)
	c.pendingControl = nil
}

// answerWaiters answers the Connect and Spawn requests waiting for a
// session with err.
func (c *controller) answerWaiters(err error) {
	for _, w := range c.waiters {
		c.m.system.Root.Send(w, &ConnectResult{Node: c.peer, Err: err})
	}
	c.waiters = nil
	for _, p := range c.spawnWait {
		if p.replyTo != nil {
			c.m.system.Root.Send(p.replyTo, &SpawnResult{Err: err})
		}
	}
	c.spawnWait = nil
}

// retireIfUnused retires the endpoint and then this controller when the
// peer needs neither: no session or connect attempt, nobody waiting here
// (Connect, Spawn, membership frames, migrations, spawns in flight) and,
// checked by the endpoint under its lock, nothing queued, no watch and no
// pin. So a name that never resolved, or a peer gone idle, costs nothing
// until the next send, which makes a fresh endpoint and controller. The
// manager actor is told and stops this controller after the messages
// already routed here (forwarded back to it, see Receive).
func (c *controller) retireIfUnused() {
	c.retireUnused(rememberedFailures{})
}

// retireUnused is retireIfUnused, handing remember (a failure count) to
// the manager actor for the peer's next controller; it reports whether
// the controller retired.
func (c *controller) retireUnused(remember rememberedFailures) bool {
	if c.retired || c.shutting || c.state != stateIdle || c.sess != nil || c.st != nil || c.backoff != backoffNone ||
		len(c.waiters) > 0 || len(c.spawnWait) > 0 || len(c.pendingControl) > 0 || len(c.spawns) > 0 ||
		c.migrations.running || len(c.migrations.waiting) > 0 {
		return false
	}
	if !c.ep.tryRetire(c.self) {
		return false
	}
	c.retired = true
	if c.reapTimer != nil {
		c.reapTimer.Stop()
	}
	c.m.system.Root.Send(c.m.pid, &controllerRetired{node: c.peer, pid: c.self, remember: remember})
	return true
}

// maxPendingControl bounds control frames queued while connecting.
const maxPendingControl = 1024

// closeGracefully runs the goodbye exchange on s in the background, then
// closes the connection: at once when this side started the goodbye,
// otherwise when the peer closes it or the grace period ends.
func (c *controller) closeGracefully(s *session, reason caskpb.GoodbyeReason, initiator bool) {
	m := c.m
	m.closes.Add(1)
	go func() {
		defer m.closes.Done()
		s.goodbye(reason)
		code, why := transport.CodeShutdown, ReasonShutdown
		if reason == caskpb.GoodbyeReason_GOODBYE_REASON_IDLE {
			code, why = transport.CodeIdle, ReasonIdle
		}
		if !initiator {
			select {
			case <-s.conn.Context().Done():
			case <-time.After(m.cfg.ShutdownGrace):
			}
		}
		s.closeWith(errors.New("closed after goodbye"), why, code)
	}()
}

func (c *controller) armReaper() {
	if c.m.cfg.ReapIdleAfter < 0 {
		return
	}
	every := c.m.cfg.ReapIdleAfter / 4
	if every < 10*time.Millisecond {
		every = 10 * time.Millisecond
	}
	if every > 10*time.Second {
		every = 10 * time.Second
	}
	self, root := c.self, c.m.system.Root
	c.reapTimer = time.AfterFunc(every, func() { root.Send(self, &reapTick{}) })
}

// reap closes the session when it carried nothing for ReapIdleAfter, is
// older than ReapMinAge, is pinned by neither side and carries no watch.
func (c *controller) reap() {
	s := c.sess
	if s == nil {
		return
	}
	now := time.Now()
	if a := s.activity.Load(); a != c.lastActivity {
		c.lastActivity, c.idleSince = a, now
		return
	}
	if now.Sub(c.idleSince) < c.m.cfg.ReapIdleAfter || now.Sub(s.start) < c.m.cfg.ReapMinAge ||
		c.ep.pins.Load() > 0 || s.remotePinned.Load() || s.hasUserStreams() || c.ep.hasWatches() || c.ep.hasPending() ||
		c.m.links.hasNode(c.peer) {
		return
	}
	c.m.log.Info("reaping idle session", c.log("idle", now.Sub(c.idleSince).Round(time.Millisecond))...)
	c.retire(ReasonIdle, nil)
	c.closeGracefully(s, caskpb.GoodbyeReason_GOODBYE_REASON_IDLE, true)
}

// sessionCheck says why there is no usable session: ErrStopped,
// ErrNotConnected (no session) or ErrNoConn (the session's connection is
// gone or closing); nil when there is one.
func (c *controller) sessionCheck() error {
	switch {
	case c.shutting || c.m.stopping.Load():
		return ErrStopped
	case c.state != stateConnected || c.sess == nil:
		return ErrNotConnected
	case c.sess.conn.Context().Err() != nil:
		return fmt.Errorf("%w: %w", ErrNoConn, context.Cause(c.sess.conn.Context()))
	case c.sess.isClosing():
		return fmt.Errorf("%w: the session is closing", ErrNoConn)
	}
	return nil
}
