// The manager actor (named "dist"): it supervises the controllers, keeps
// the node monitors and the reconnect failure counts of retired
// controllers (failureMemory).
//
// It routes public requests (Connect, Spawn, SendMembership, MigratePeer,
// GetPathStats, Disconnect) and inbound handshakes to the peer's controller, spawning
// the controller where the request may open a session, and publishes
// NodeUp and NodeDown to monitors in the order controllers report them.
//
// Ownership: the controller map, the remembered failure counts
// (failureMemory), the monitor tables and the shutdown bookkeeping are
// touched only from Receive.

package dist

import (
	"maps"
	"slices"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/cask-p2p/cask/proto/caskpb"
)

// Messages the manager actor receives from Manager and its controllers.
type (
	// nodeEvent carries one of NodeUp, NodeUnreachable, NodeReachable,
	// NodeDown, with the node it is about.
	nodeEvent struct {
		node string
		msg  any
	}
	shutdown     struct{}
	shutdownDone struct{ node string }
	// controllerRetired: the controller retired its endpoint
	// (controller.retireIfUnused) and waits to be stopped.
	controllerRetired struct {
		node string
		pid  *actor.PID
		// remember: the failure count the manager actor keeps for the
		// next controller of node (failures 0: none).
		remember rememberedFailures
	}
	// pidReleased is sent to a stopped controller's own PID, to a dead
	// letter: see releasePID.
	pidReleased struct{}
)

// IgnoreDeadLetterLogging keeps pidReleased out of protoactor's dead
// letter log.
func (*pidReleased) IgnoreDeadLetterLogging() {}

// managerActor is the dist manager: it owns the controller map and the
// node monitors. Controllers are its children, stopped (never restarted)
// when they fail.
type managerActor struct {
	m           *Manager
	controllers map[string]*actor.PID
	byPID       map[string]string // controller PID id → node
	monitors    map[string]map[string]*actor.PID
	watched     map[string]int // monitor PID key → monitors it holds
	// sessions: each node's session as the events published so far tell
	// it (up since NodeUp, gone at NodeDown). A new monitor hears this
	// state, not the endpoint's, so that an event still on its way to
	// the manager reaches it once: never both as the current state and
	// as the event.
	sessions  map[string]*publishedSession
	acceptors map[string]bool // stream acceptor PIDs being watched
	stopping  bool
	// Stop waits until every controller has begun its goodbye.
	shutdownReply   *actor.PID
	shutdownPending map[string]bool
	// MaxPeers refusals of new peers: logged at most once per
	// tooManyPeersLogInterval, with the count since the last line.
	tooManyLogged     time.Time
	tooManySuppressed int
	// remembered: failure counts of peers whose controller retired in
	// its backoff's remembering phase, handed to their next controller.
	remembered failureMemory
}

// tooManyPeersLogInterval spaces the log lines about inbound peers refused
// for MaxPeers.
const tooManyPeersLogInterval = time.Minute

func newManagerActor(m *Manager) *managerActor {
	return &managerActor{
		m:           m,
		controllers: make(map[string]*actor.PID),
		byPID:       make(map[string]string),
		monitors:    make(map[string]map[string]*actor.PID),
		watched:     make(map[string]int),
		acceptors:   make(map[string]bool),
		sessions:    make(map[string]*publishedSession),
	}
}

// publishedSession is a session as monitors have heard of it.
type publishedSession struct {
	inc         Incarnation
	unreachable *NodeUnreachable // the connection is lost, the session lives on
}

func (a *managerActor) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *ensureConnected:
		if c := a.controller(ctx, msg.node); c != nil {
			ctx.Send(c, msg)
		}
	case *Connect:
		if err := a.m.checkPeer(msg.Node); err != nil && !a.stopping {
			ctx.Respond(&ConnectResult{Node: msg.Node, Err: peerErr("connect", msg.Node, err)})
			return
		}
		if c := a.controller(ctx, msg.Node); c != nil {
			ctx.Forward(c)
		} else {
			ctx.Respond(&ConnectResult{Node: msg.Node, Err: peerErr("connect", msg.Node, ErrStopped)})
		}
	case *Spawn:
		err := a.m.checkPeer(msg.Node)
		if err == nil {
			err = a.m.checkSpawnOptions(msg)
		}
		if err != nil {
			ctx.Respond(&SpawnResult{Err: peerErr("spawn", msg.Node, err)})
			return
		}
		if c := a.controller(ctx, msg.Node); c != nil {
			ctx.Forward(c)
		} else {
			ctx.Respond(&SpawnResult{Err: peerErr("spawn", msg.Node, ErrStopped)})
		}
	case *MigratePeer:
		a.routeToController(ctx, msg.Node, func(err error) any {
			return &MigrateResult{Node: msg.Node, Err: peerErr("migrate", msg.Node, err)}
		})
	case *Disconnect:
		a.routeToController(ctx, msg.Node, func(err error) any {
			return &DisconnectResult{Node: msg.Node, Err: peerErr("disconnect", msg.Node, err)}
		})
	case *GetPathStats:
		a.routeToController(ctx, msg.Node, func(err error) any {
			return &PathStatsResult{Node: msg.Node, Err: peerErr("path stats", msg.Node, err)}
		})
	case *SendMembership:
		if a.m.checkPeer(msg.Node) != nil || msg.Msg == nil {
			return
		}
		if c := a.controller(ctx, msg.Node); c != nil {
			ctx.Send(c, msg)
		}
	case *inboundHello:
		if _, known := a.controllers[msg.hello.GetNode()]; !known && a.m.peerSlots.Load() >= int64(a.m.cfg.MaxPeers) {
			// Refused before a controller exists for the new peer: a
			// flood of new names costs no controller each.
			a.refuseTooManyPeers(msg)
			return
		}
		c := a.controller(ctx, msg.hello.GetNode())
		if c == nil {
			go a.m.reject(msg.conn, msg.controlStream, caskpb.RejectReason_REJECT_REASON_SHUTTING_DOWN, "node is stopping")
			return
		}
		ctx.Send(c, msg)
	case *nodeEvent:
		a.publish(ctx, msg)
	case *MonitorNode:
		a.monitor(ctx, msg)
	case *DemonitorNode:
		if msg.Watcher == nil {
			return
		}
		if set := a.monitors[msg.Node]; set != nil {
			if _, ok := set[msg.Watcher.String()]; ok {
				delete(set, msg.Watcher.String())
				a.unwatchMonitor(ctx, msg.Watcher)
			}
		}
	case *watchAcceptor:
		a.acceptors[msg.pid.String()] = true
		ctx.Watch(msg.pid)
	case *Pin:
		a.m.Pin(msg.Node)
	case *Unpin:
		a.m.Unpin(msg.Node)
	case *shutdown:
		a.stopping = true
		a.shutdownReply = ctx.Sender()
		a.shutdownPending = make(map[string]bool)
		for node, c := range a.controllers {
			a.shutdownPending[node] = true
			ctx.Request(c, msg)
		}
		a.shutdownProgress(ctx, "")
	case *shutdownDone:
		a.shutdownProgress(ctx, msg.node)
	case *controllerRetired:
		if c := a.controllers[msg.node]; c != nil && c.Id == msg.pid.Id {
			delete(a.controllers, msg.node)
		}
		if msg.remember.failures > 0 && a.controllers[msg.node] == nil {
			a.remembered.put(msg.node, msg.remember, time.Now())
		}
		// A user message: it stops the controller after whatever was
		// routed to it before, which it forwards back here.
		ctx.Poison(msg.pid)
	case *actor.Terminated:
		key := msg.Who.String()
		if a.acceptors[key] {
			delete(a.acceptors, key)
			a.m.acceptorDied(msg.Who)
		}
		if node, ok := a.byPID[msg.Who.Id]; ok {
			delete(a.byPID, msg.Who.Id)
			if cur := a.controllers[node]; cur == nil || cur.Id == msg.Who.Id {
				// not a retired controller's end after its successor
				// started
				a.shutdownProgress(ctx, node)
			}
			if a.controllers[node] != nil && a.controllers[node].Id == msg.Who.Id {
				delete(a.controllers, node)
			}
			releasePID(ctx, msg.Who)
			return
		}
		for node, set := range a.monitors {
			delete(set, key)
			if len(set) == 0 {
				delete(a.monitors, node)
			}
		}
		delete(a.watched, key)
	}
}

// releasePID drops the process that pid, a stopped controller's own PID,
// caches (protoactor keeps it in the PID until a send through that PID
// finds it dead), so that nothing still holding the PID keeps the
// stopped controller, its mailbox and its endpoint alive. Protoactor's
// children set is such a holder: it shrinks without clearing the slots
// it frees, so up to as many stopped controllers' PIDs as were ever
// alive at once stay in it. The send is one dead letter, with no sender
// and a private message type, so no subscriber counts it, and protoactor
// does not log it (IgnoreDeadLetterLogging).
func releasePID(ctx actor.Context, pid *actor.PID) {
	ctx.Send(pid, &pidReleased{})
}

// refuseTooManyPeers rejects the dist hello of a new peer because
// Config.MaxPeers slots are taken.
func (a *managerActor) refuseTooManyPeers(msg *inboundHello) {
	if now := time.Now(); now.Sub(a.tooManyLogged) >= tooManyPeersLogInterval {
		a.m.log.Warn("rejected inbound connection: too many peers", "peer", msg.hello.GetNode(),
			"max_peers", a.m.cfg.MaxPeers, "suppressed", a.tooManySuppressed)
		a.tooManyLogged, a.tooManySuppressed = now, 0
	} else {
		a.tooManySuppressed++
	}
	m := a.m
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		m.reject(msg.conn, msg.controlStream, caskpb.RejectReason_REJECT_REASON_TOO_MANY_PEERS, tooManyPeersDetail(m.cfg.MaxPeers))
	}()
}

// controller returns the controller for node, spawning it if needed; nil
// while stopping.
func (a *managerActor) controller(ctx actor.Context, node string) *actor.PID {
	if c, ok := a.controllers[node]; ok {
		return c
	}
	if a.stopping || a.m.stopping.Load() {
		return nil
	}
	failures := a.remembered.take(node, time.Now())
	// Under the endpoint's lock, so that it is not retired (for want of a
	// controller) while this one starts.
	var c *actor.PID
	a.m.withLive(node, func(ep *endpoint) {
		c = ctx.Spawn(actor.PropsFromProducer(func() actor.Actor {
			ctrl := newController(a.m, ep)
			ctrl.failures = failures
			return ctrl
		}))
		ep.controllerPID.Store(c)
	})
	ctx.Watch(c)
	a.controllers[node] = c
	a.byPID[c.Id] = node
	return c
}

// shutdownProgress notes that node's controller is done with shutdown and
// answers the Stop request once none is left.
func (a *managerActor) shutdownProgress(ctx actor.Context, node string) {
	if a.shutdownPending == nil {
		return
	}
	delete(a.shutdownPending, node)
	if len(a.shutdownPending) == 0 {
		if a.shutdownReply != nil {
			ctx.Send(a.shutdownReply, &shutdownDone{})
		}
		a.shutdownPending, a.shutdownReply = nil, nil
	}
}

func (a *managerActor) monitor(ctx actor.Context, msg *MonitorNode) {
	if msg.Watcher == nil {
		return
	}
	set := a.monitors[msg.Node]
	if set == nil {
		set = make(map[string]*actor.PID)
		a.monitors[msg.Node] = set
	}
	key := msg.Watcher.String()
	if _, ok := set[key]; !ok {
		set[key] = msg.Watcher
		if a.watched[key] == 0 {
			ctx.Watch(msg.Watcher)
		}
		a.watched[key]++
	}
	// Report the sessions monitors have heard are up, in node order, each
	// with its NodeUnreachable when its connection is lost right now.
	for _, node := range slices.Sorted(maps.Keys(a.sessions)) {
		if msg.Node != "" && node != msg.Node {
			continue
		}
		s := a.sessions[node]
		ctx.Send(msg.Watcher, &NodeUp{Node: node, Incarnation: s.inc})
		if s.unreachable != nil {
			ctx.Send(msg.Watcher, s.unreachable)
		}
	}
}

func (a *managerActor) unwatchMonitor(ctx actor.Context, pid *actor.PID) {
	key := pid.String()
	a.watched[key]--
	if a.watched[key] <= 0 {
		delete(a.watched, key)
		ctx.Unwatch(pid)
	}
}

func (a *managerActor) publish(ctx actor.Context, ev *nodeEvent) {
	node, msg := ev.node, ev.msg
	switch e := msg.(type) {
	case *NodeUp:
		a.sessions[node] = &publishedSession{inc: e.Incarnation}
	case *NodeUnreachable:
		if s := a.sessions[node]; s != nil {
			s.unreachable = e
		}
	case *NodeReachable:
		if s := a.sessions[node]; s != nil {
			s.unreachable = nil
		}
	case *NodeDown:
		delete(a.sessions, node)
	}
	for _, w := range a.monitors[node] {
		ctx.Send(w, msg)
	}
	for _, w := range a.monitors[""] {
		ctx.Send(w, msg)
	}
}

// routeToController forwards a request about node to its controller, or
// answers it with fail(err) when the node is invalid, the dist layer is
// stopping or there is no session (no controller) to node. It never
// spawns a controller: these requests do not open sessions.
func (a *managerActor) routeToController(ctx actor.Context, node string, fail func(error) any) {
	if err := a.m.checkPeer(node); err != nil {
		ctx.Respond(fail(err))
		return
	}
	c, ok := a.controllers[node]
	if !ok || a.stopping {
		err := ErrNotConnected
		if a.stopping {
			err = ErrStopped
		}
		ctx.Respond(fail(err))
		return
	}
	ctx.Forward(c)
}

// rememberedFailures is a retired controller's reconnect failure count,
// kept until forgetAt (the end of its backoff's remembering phase).
type rememberedFailures struct {
	failures int
	forgetAt time.Time
}

// maxRememberedFailures bounds the failure counts failureMemory keeps:
// past it the oldest is forgotten early (that peer's next failure then
// waits the first delay again), so a flood of failing names costs a
// fixed amount of memory.
const maxRememberedFailures = 4096

// failureMemory keeps the reconnect failure counts of peers whose
// controller retired while its backoff remembered a failure (see
// backoffRemembering), so that a peer that stays down and is sent to now
// and then keeps its growing delay without a controller and an endpoint
// kept for it meanwhile. At most maxRememberedFailures counts, oldest
// first out.
type failureMemory struct {
	byNode map[string]rememberedEntry
	order  []rememberedKey // in the order put, oldest first
	seq    uint64
}

type rememberedEntry struct {
	rememberedFailures
	seq uint64
}

// rememberedKey is order's record of one put; an entry taken or put
// again since has another seq, and popping the key leaves it alone.
type rememberedKey struct {
	node     string
	seq      uint64
	forgetAt time.Time
}

// put remembers r for node, in place of what was remembered before.
func (f *failureMemory) put(node string, r rememberedFailures, now time.Time) {
	f.expire(now)
	for len(f.order) >= maxRememberedFailures {
		f.pop()
	}
	if f.byNode == nil {
		f.byNode = make(map[string]rememberedEntry)
	}
	f.seq++
	f.byNode[node] = rememberedEntry{rememberedFailures: r, seq: f.seq}
	f.order = append(f.order, rememberedKey{node: node, seq: f.seq, forgetAt: r.forgetAt})
}

// take returns and forgets node's failure count; 0 when there is none,
// or it ran out.
func (f *failureMemory) take(node string, now time.Time) int {
	e, ok := f.byNode[node]
	if !ok {
		return 0
	}
	delete(f.byNode, node)
	if now.After(e.forgetAt) {
		return 0
	}
	return e.failures
}

// expire forgets the oldest counts while they have run out.
func (f *failureMemory) expire(now time.Time) {
	for len(f.order) > 0 && now.After(f.order[0].forgetAt) {
		f.pop()
	}
}

// pop forgets the oldest count put.
func (f *failureMemory) pop() {
	k := f.order[0]
	f.order[0] = rememberedKey{}
	f.order = f.order[1:]
	if e, ok := f.byNode[k.node]; ok && e.seq == k.seq {
		delete(f.byNode, k.node)
	}
}
