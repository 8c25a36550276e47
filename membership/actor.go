package membership

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/cask-p2p/cask/dist"
	"github.com/cask-p2p/cask/membership/hyparview"
	"github.com/cask-p2p/cask/membership/plumtree"
	"github.com/cask-p2p/cask/proto/caskpb"
)

// Internal messages of the membership actor.
type (
	// tick is one shuffle period; gen tells a stale timer from the
	// current one.
	tick struct{ gen uint64 }
	// joinRetry retries ContactNodes after a failed automatic join.
	joinRetry struct{ gen uint64 }
	// cancelRequest answers a waiting Join request whose caller gave up.
	cancelRequest struct {
		waiter *actor.PID
		err    error
	}
)

// joinAttempt is a Join in progress: it succeeds with the first PeerUp
// and fails when contact leaves the active view before its session came
// up.
type joinAttempt struct {
	contact string
	waiters []*actor.PID
	// auto: started for ContactNodes; a failure schedules a retry.
	auto bool
}

// membershipActor owns the HyParView state of one node and does its I/O:
// messages through the dist manager, links from node monitors, events to
// subscribers. All fields are touched only from Receive (and, for the
// handle's snapshot, stored from Receive).
type membershipActor struct {
	m     *Membership
	dist  Dist
	cfg   Config
	self  string
	state *hyparview.State
	rng   *rand.Rand
	log   *slog.Logger

	pid     *actor.PID
	distPID *actor.PID

	// live: nodes whose session is up, from NodeUp/NodeDown.
	live map[string]bool
	// opening: nodes listed in Output.Open waiting for LinkUp.
	opening map[string]bool
	// pinned: active-view nodes whose session this actor pinned.
	pinned map[string]bool
	// announced: active peers whose PeerUp was published; awaiting:
	// active peers whose session is not up yet (PeerUp held back).
	announced map[string]bool
	awaiting  map[string]bool
	// downErr remembers the latest NodeDown error of a join contact, for
	// the join's error; other nodes' errors are not kept (a flood of
	// failed connects to unknown names must not grow it).
	downErr map[string]error

	subscribers map[string]*actor.PID

	join      *joinAttempt
	joined    bool
	joinedVia string
	left      bool
	// contact rotation and backoff for ContactNodes.
	nextContact     int
	contactFailures int
	retryTimer      *time.Timer
	retryGen        uint64
	tickTimer       *time.Timer
	tickGen         uint64
	stopped         bool

	stats Stats
	// muted: this node's Plumtree messages are not sent (tests only,
	// see muteBroadcasts).
	muted bool

	// The group layer (groups_actor.go): the Plumtree state over the
	// active view, the registry it spreads, the readers' snapshot, group
	// monitors, and the two timers.
	pt            *plumtree.State
	reg           *registry
	view          *registryView
	groupMonitors map[string]map[string]*actor.PID
	ptTimer       *time.Timer
	ptGen         uint64
	ptDeadline    time.Time
	aeTimer       *time.Timer
	aeGen         uint64

	// Reconnection (reconnect.go): lost nodes with when they were lost,
	// the node a reconnect's Connect is out for, and the timer.
	lost           map[string]time.Time
	reconnecting   string
	reconnectTimer *time.Timer
	reconnectGen   uint64
}

func newMembershipActor(m *Membership, d Dist, cfg Config, st *hyparview.State, rng *rand.Rand, pt *plumtree.State, reg *registry) *membershipActor {
	return &membershipActor{
		pt:            pt,
		reg:           reg,
		view:          &registryView{},
		groupMonitors: make(map[string]map[string]*actor.PID),
		m:             m,
		dist:          d,
		cfg:           cfg,
		self:          d.Name(),
		state:         st,
		rng:           rng,
		log:           cfg.Logger.With("component", "membership"),
		live:          make(map[string]bool),
		opening:       make(map[string]bool),
		pinned:        make(map[string]bool),
		announced:     make(map[string]bool),
		awaiting:      make(map[string]bool),
		downErr:       make(map[string]error),
		subscribers:   make(map[string]*actor.PID),
		lost:          make(map[string]time.Time),
	}
}

func (a *membershipActor) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *actor.Started:
		a.start(ctx)
	case *actor.Stopping:
		a.shutdown(ctx)
	case *actor.Restarting:
		a.shutdown(ctx)
	case *dist.MembershipReceived:
		a.onReceived(ctx, msg)
	case *dist.NodeUp:
		a.linkUp(ctx, msg.Node)
	case *dist.ConnectResult:
		switch {
		case msg.Err == nil:
			a.linkUp(ctx, msg.Node)
		case a.opening[msg.Node] && !a.live[msg.Node]:
			// Refused before any dial (e.g. a bad name): no NodeDown
			// will follow, so this is the link failure.
			a.linkDown(ctx, &dist.NodeDown{Node: msg.Node, Reason: dist.ReasonConnectFailed, Err: msg.Err})
		}
		a.reconnected(ctx, msg)
	case *dist.NodeDown:
		neighbour := a.announced[msg.Node]
		a.linkDown(ctx, msg)
		if neighbour {
			a.nodeDown(ctx, msg)
			if msg.Reason == dist.ReasonConnectionLost {
				// Cut off, not stopped: worth a reconnect later.
				a.lose(msg.Node)
			}
		}
	case *tick:
		if msg.gen == a.tickGen && !a.stopped {
			a.onTick(ctx)
		}
	case *reconnectTick:
		if msg.gen == a.reconnectGen && !a.stopped {
			a.onReconnectTick(ctx)
		}
	case *joinRetry:
		if msg.gen == a.retryGen && !a.stopped {
			a.retryTimer = nil
			if len(a.announced) == 0 {
				a.autoJoin(ctx)
			}
		}
	case *Join:
		a.onJoin(ctx, msg)
	case *Leave:
		a.onLeave(ctx)
		a.respond(ctx, &LeaveResult{})
	case *cancelRequest:
		a.cancel(ctx, msg)
	case *Subscribe:
		a.subscribe(ctx, msg.Subscriber)
	case *Unsubscribe:
		if s := msg.Subscriber; s != nil {
			if _, ok := a.subscribers[s.String()]; ok {
				delete(a.subscribers, s.String())
				ctx.Unwatch(s)
			}
		}
	case *actor.Terminated:
		delete(a.subscribers, msg.Who.String())
		a.terminated(ctx, msg.Who)
	case *GetViews:
		a.respond(ctx, a.views())
	case *GetStats:
		st := a.stats
		st.Subscribers = len(a.subscribers)
		st.GroupNodes, st.Groups = len(a.reg.states), len(a.view.groups)
		st.Lost = len(a.lost)
		a.respond(ctx, &st)
	default:
		if !a.receiveGroups(ctx, msg) {
			return
		}
	}
	if !a.stopped {
		a.m.views.Store(a.views())
	}
}

func (a *membershipActor) respond(ctx actor.Context, msg any) {
	if ctx.Sender() != nil {
		ctx.Respond(msg)
	}
}

func (a *membershipActor) start(ctx actor.Context) {
	a.pid = ctx.Self()
	a.distPID = a.dist.PID()
	a.dist.SetMembershipHandler(a.pid)
	ctx.Send(a.distPID, &dist.MonitorNode{Watcher: a.pid})
	// The first round comes after a random part of the period, so nodes
	// started together do not shuffle in lockstep.
	a.armTick(time.Duration(a.rng.Int64N(int64(a.cfg.ShufflePeriod))) + 1)
	a.groupsStart()
	a.reconnectStart()
	a.autoJoin(ctx)
}

// shutdown releases everything the actor holds: timers, pins, the
// membership handler, the node monitor and waiting requests.
func (a *membershipActor) shutdown(ctx actor.Context) {
	if a.stopped {
		return
	}
	a.stopped = true
	a.tickGen++
	a.retryGen++
	if a.tickTimer != nil {
		a.tickTimer.Stop()
	}
	if a.retryTimer != nil {
		a.retryTimer.Stop()
	}
	a.groupsShutdown()
	a.reconnectShutdown()
	for node := range a.pinned {
		ctx.Send(a.distPID, &dist.Unpin{Node: node})
	}
	clear(a.pinned)
	a.dist.SetMembershipHandler(nil)
	ctx.Send(a.distPID, &dist.DemonitorNode{Watcher: a.pid})
	if a.join != nil {
		for _, w := range a.join.waiters {
			ctx.Send(w, &JoinResult{Contact: a.join.contact, Err: ErrStopped})
		}
		a.join = nil
	}
	a.m.views.Store(&Views{})
}

func (a *membershipActor) now() time.Time { return a.cfg.Now() }

// apply carries out one Output in the documented order: open links, send
// messages, note closes, publish events; then report links that were
// already up (their LinkUp may send a Neighbor).
func (a *membershipActor) apply(ctx actor.Context, out hyparview.Output) {
	var upNow []string
	for _, node := range out.Open {
		switch {
		case a.live[node]:
			upNow = append(upNow, node)
		case !a.opening[node]:
			a.opening[node] = true
			ctx.Request(a.distPID, &dist.Connect{Node: node})
		}
	}
	for _, e := range out.Send {
		a.stats.Sent++
		ctx.Send(a.distPID, &dist.SendMembership{Node: e.To, Msg: encode(e.Msg, a.addressesFor(e))})
	}
	for _, node := range out.Close {
		// Advisory: the session is left to the idle reaper once unpinned.
		delete(a.opening, node)
	}
	for _, ev := range out.Events {
		a.onEvent(ctx, ev)
	}
	for _, node := range upNow {
		a.apply(ctx, a.state.LinkUp(node, a.now()))
	}
}

// onEvent pins and announces active-view changes. A PeerUp is held back
// until the peer's session is up; a peer that leaves the active view
// before that was never announced and is dropped silently.
func (a *membershipActor) onEvent(ctx actor.Context, ev hyparview.Event) {
	node := ev.Node
	switch ev.Kind {
	case hyparview.PeerUp:
		if !a.pinned[node] {
			a.pinned[node] = true
			ctx.Send(a.distPID, &dist.Pin{Node: node})
		}
		if a.live[node] {
			a.announce(ctx, node)
		} else {
			a.awaiting[node] = true
		}
	case hyparview.PeerDown:
		if a.pinned[node] {
			delete(a.pinned, node)
			ctx.Send(a.distPID, &dist.Unpin{Node: node})
		}
		reason := reasonOf(ev.Reason)
		if a.announced[node] {
			delete(a.announced, node)
			a.log.Info("peer down", "peer", node, "reason", reason)
			a.publish(ctx, &PeerDown{Node: node, Reason: reason})
			a.neighborDown(ctx, node)
			if ev.Reason == hyparview.ReasonLeft {
				a.neighborLeft(ctx, node)
			}
			return
		}
		delete(a.awaiting, node)
		if a.join != nil && a.join.contact == node {
			err := fmt.Errorf("%w: through %s: %s", ErrJoinFailed, node, reason)
			if derr := a.downErr[node]; derr != nil {
				err = fmt.Errorf("%w: through %s: %w", ErrJoinFailed, node, derr)
			}
			a.failJoin(ctx, err)
		}
	}
}

// announce publishes PeerUp for an active peer whose session is up, and
// completes a join in progress.
func (a *membershipActor) announce(ctx actor.Context, node string) {
	delete(a.awaiting, node)
	if a.announced[node] {
		return
	}
	a.announced[node] = true
	delete(a.lost, node)
	a.log.Info("peer up", "peer", node)
	a.publish(ctx, &PeerUp{Node: node})
	a.neighborUp(ctx, node)
	a.completeJoin(ctx)
}

// completeJoin ends the join under way, if any, with success.
func (a *membershipActor) completeJoin(ctx actor.Context) {
	j := a.join
	if j == nil {
		return
	}
	a.join = nil
	a.contactFailures = 0
	for _, w := range j.waiters {
		ctx.Send(w, &JoinResult{Contact: j.contact})
	}
	if !a.joined {
		a.joined, a.joinedVia = true, j.contact
		a.log.Info("joined", "contact", j.contact)
		a.publish(ctx, &Joined{Contact: j.contact})
	}
}

func (a *membershipActor) publish(ctx actor.Context, ev any) {
	a.m.metrics.event(ev)
	for _, s := range a.subscribers {
		ctx.Send(s, ev)
	}
}

func (a *membershipActor) linkUp(ctx actor.Context, node string) {
	if a.live[node] {
		return
	}
	a.live[node] = true
	delete(a.downErr, node)
	if a.awaiting[node] {
		a.announce(ctx, node)
	}
	if a.opening[node] {
		delete(a.opening, node)
		a.apply(ctx, a.state.LinkUp(node, a.now()))
	}
}

func (a *membershipActor) linkDown(ctx actor.Context, msg *dist.NodeDown) {
	node := msg.Node
	delete(a.live, node)
	delete(a.opening, node)
	switch {
	case a.join == nil || a.join.contact != node:
		delete(a.downErr, node)
	case msg.Err != nil:
		a.downErr[node] = msg.Err
	default:
		a.downErr[node] = fmt.Errorf("session down: %s", msg.Reason)
	}
	a.apply(ctx, a.state.LinkDown(node, a.now()))
}

func (a *membershipActor) onReceived(ctx actor.Context, msg *dist.MembershipReceived) {
	switch {
	case isPlumtree(msg.Msg):
		a.stats.BroadcastReceived++
		m, err := decodePlumtree(msg.Msg)
		if err != nil {
			a.log.Debug("dropped broadcast message", "peer", msg.From, "err", err)
			return
		}
		m.From = msg.From // the authenticated peer of the session
		a.applyPT(ctx, a.pt.Step(m, a.now()))
		return
	case isGroupMessage(msg.Msg):
		a.onGroupMessage(ctx, msg.From, msg.Msg)
		return
	}
	a.stats.Received++
	m, err := decode(msg.Msg)
	if err != nil {
		a.log.Debug("dropped membership message", "peer", msg.From, "err", err)
		return
	}
	m.From = msg.From // the authenticated peer of the session
	a.learn(msg.Msg, m)
	a.apply(ctx, a.state.Step(m, a.now()))
}

// addressesFor lists the addresses of the nodes e names, but for its
// receiver: this node's advertised address, and what the learned source
// holds for the others. Nodes with no known address are left out.
func (a *membershipActor) addressesFor(e hyparview.Envelope) []*caskpb.NodeAddress {
	var out []*caskpb.NodeAddress
	learned := a.dist.LearnedAddrs()
	for _, node := range names(e.Msg) {
		addr := ""
		switch node {
		case e.To:
			continue
		case a.self:
			addr = a.dist.AdvertisedAddr()
		default:
			addr, _, _ = learned.Lookup(node)
		}
		if addr != "" {
			out = append(out, &caskpb.NodeAddress{Node: node, Addr: addr})
		}
	}
	return out
}

// learn adds the addresses a received message carries to the learned
// discovery source before the state machine sees it (which may ask for a
// link to a node just named). The sender's own address is first-hand;
// the others are gossip, which never replaces first-hand news that still
// works. This node's own address is never learned.
func (a *membershipActor) learn(p *caskpb.Membership, m hyparview.Message) {
	learned := a.dist.LearnedAddrs()
	for _, na := range addresses(p, m) {
		node, addr := na.GetNode(), na.GetAddr()
		if node == a.self {
			continue
		}
		origin := dist.AddrGossip
		if node == m.From {
			origin = dist.AddrAdvertised
		}
		if learned.Learn(node, addr, origin, m.From, m.Type.String()) {
			a.log.Debug("learned address", "peer", node, "addr", addr, "from", m.From, "via", m.Type)
		}
	}
}

func (a *membershipActor) onTick(ctx actor.Context) {
	a.stats.Rounds++
	a.apply(ctx, a.state.Tick(a.now()))
	// Isolated (nothing active, nothing announced): go back to the
	// contacts, unless a join or its retry is under way.
	if len(a.announced) == 0 && len(a.state.ActiveView()) == 0 && a.retryTimer == nil {
		a.autoJoin(ctx)
	}
	a.armTick(a.cfg.ShufflePeriod)
}

func (a *membershipActor) armTick(d time.Duration) {
	a.tickGen++
	gen, system, pid := a.tickGen, a.m.system, a.pid
	a.tickTimer = time.AfterFunc(d, func() { system.Root.Send(pid, &tick{gen: gen}) })
}

// autoJoin starts a join through the next of ContactNodes (never self),
// unless the node left or a join is under way.
func (a *membershipActor) autoJoin(ctx actor.Context) {
	if a.left || a.join != nil || a.stopped {
		return
	}
	contacts := slices.DeleteFunc(slices.Clone(a.cfg.ContactNodes), func(c string) bool { return c == a.self })
	if len(contacts) == 0 {
		return
	}
	contact := contacts[a.nextContact%len(contacts)]
	a.nextContact++
	a.startJoin(ctx, contact, nil, true)
}

func (a *membershipActor) onJoin(ctx actor.Context, msg *Join) {
	waiter := ctx.Sender()
	var bad error
	switch {
	case msg.Contact == "" || msg.Contact == a.self:
		bad = fmt.Errorf("%w: %q", ErrNoContact, msg.Contact)
	case dist.ValidateNodeName(msg.Contact) != nil:
		bad = fmt.Errorf("%w: %w", ErrNoContact, dist.ValidateNodeName(msg.Contact))
	}
	if bad != nil {
		if waiter != nil {
			ctx.Respond(&JoinResult{Contact: msg.Contact, Err: bad})
		}
		return
	}
	a.startJoin(ctx, msg.Contact, waiter, false)
}

// startJoin joins through contact. A join already under way takes the
// new contact (and waiter): the first PeerUp completes both.
func (a *membershipActor) startJoin(ctx actor.Context, contact string, waiter *actor.PID, auto bool) {
	a.left = false
	a.setLeft(ctx, false)
	if a.join == nil {
		a.join = &joinAttempt{}
	}
	a.join.contact = contact
	a.join.auto = a.join.auto || auto
	if waiter != nil {
		a.join.waiters = append(a.join.waiters, waiter)
	}
	a.log.Info("joining", "contact", contact)
	a.apply(ctx, a.state.Join(contact, a.now()))
	if a.announced[contact] {
		// Already an announced neighbour: nothing to wait for.
		a.completeJoin(ctx)
	}
}

// failJoin ends the join under way with err; an automatic one is retried
// with the next contact after a doubling backoff.
func (a *membershipActor) failJoin(ctx actor.Context, err error) {
	j := a.join
	a.join = nil
	a.log.Warn("join failed", "contact", j.contact, "err", err)
	for _, w := range j.waiters {
		ctx.Send(w, &JoinResult{Contact: j.contact, Err: err})
	}
	if !j.auto || a.left {
		return
	}
	a.contactFailures++
	d := a.cfg.BackoffMin
	for i := 1; i < a.contactFailures && d < a.cfg.BackoffMax; i++ {
		d *= 2
	}
	d = min(d, a.cfg.BackoffMax)
	if a.retryTimer != nil {
		a.retryTimer.Stop()
	}
	a.retryGen++
	gen, system, pid := a.retryGen, a.m.system, a.pid
	a.retryTimer = time.AfterFunc(d, func() { system.Root.Send(pid, &joinRetry{gen: gen}) })
}

func (a *membershipActor) onLeave(ctx actor.Context) {
	if a.left {
		return
	}
	// The own groups and names go first, while the tree still holds.
	a.setLeft(ctx, true)
	a.apply(ctx, a.state.Leave(a.now()))
	a.left = true
	a.joined, a.joinedVia = false, ""
	if a.retryTimer != nil {
		a.retryTimer.Stop()
		a.retryTimer = nil
	}
	a.retryGen++
	if a.join != nil {
		err := fmt.Errorf("%w: through %s: left before the join completed", ErrJoinFailed, a.join.contact)
		a.join.auto = false
		a.failJoin(ctx, err)
	}
	a.log.Debug("left")
	a.publish(ctx, &Left{})
}

func (a *membershipActor) cancel(ctx actor.Context, msg *cancelRequest) {
	if a.join == nil || msg.waiter == nil {
		return
	}
	i := slices.IndexFunc(a.join.waiters, func(w *actor.PID) bool { return w.Equal(msg.waiter) })
	if i < 0 {
		return
	}
	a.join.waiters = slices.Delete(a.join.waiters, i, i+1)
	ctx.Send(msg.waiter, &JoinResult{Contact: a.join.contact, Err: msg.err})
}

func (a *membershipActor) subscribe(ctx actor.Context, s *actor.PID) {
	if s == nil {
		return
	}
	if _, ok := a.subscribers[s.String()]; ok {
		return
	}
	a.subscribers[s.String()] = s
	ctx.Watch(s)
	for _, node := range a.views().Active {
		ctx.Send(s, &PeerUp{Node: node})
	}
	if a.joined {
		ctx.Send(s, &Joined{Contact: a.joinedVia})
	}
}

func (a *membershipActor) views() *Views {
	active := make([]string, 0, len(a.announced))
	for n := range a.announced {
		active = append(active, n)
	}
	slices.Sort(active)
	return &Views{Active: active, Passive: a.state.PassiveView()}
}
