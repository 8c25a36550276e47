package membership

// This file owns the membership actor's broadcast and group work: the
// Plumtree state machine over the active view, the process-group and
// name registry it spreads, anti-entropy with active peers, group
// monitors and name-loss notices. actor.go calls in at the points named
// in doc.go ("Process groups and names").

import (
	"fmt"
	"slices"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	"github.com/cask-p2p/cask/dist"
	"github.com/cask-p2p/cask/membership/plumtree"
	"github.com/cask-p2p/cask/proto/caskpb"
)

// Internal timer messages of the group layer.
type (
	// plumtreeTick runs the Plumtree timers (IHave flush, Graft).
	plumtreeTick struct{ gen uint64 }
	// antiEntropyTick starts one anti-entropy exchange.
	antiEntropyTick struct{ gen uint64 }
	// confirmDown marks node down if no session to it came back since
	// its NodeDown.
	confirmDown struct{ node string }
	// muteBroadcasts stops the node sending Plumtree messages (tests
	// only: a broadcast that never gets out).
	muteBroadcasts struct{}
	// describeStates asks for a one-line description of every state held
	// (tests' diagnostics): answered with a string.
	describeStates struct{}
)

// downConfirmDelay is how long after a NodeDown a node is marked down,
// if no session to it came back meanwhile: a peer that replaces its
// connection (a simultaneous connect, a redial) ends the old session
// with connection_lost and is up again at once.
const downConfirmDelay = time.Second

// statesPerMessage bounds the node states of one GROUP_STATES message.
const statesPerMessage = 64

// nodeDownReasons are the dist NodeDown reasons that mean the peer node
// is down (not merely an idle session closed, or a connect that failed):
// its groups and names are then dropped everywhere.
var nodeDownReasons = map[dist.NodeDownReason]bool{
	dist.ReasonConnectionLost:    true,
	dist.ReasonPeerShutdown:      true,
	dist.ReasonProtocolError:     true,
	dist.ReasonControllerCrashed: true,
}

// groupsStart arms the anti-entropy timer.
func (a *membershipActor) groupsStart() {
	a.armAntiEntropy(time.Duration(a.rng.Int64N(int64(a.cfg.AntiEntropyPeriod))) + 1)
	a.storeView()
}

func (a *membershipActor) groupsShutdown() {
	a.ptGen++
	a.aeGen++
	if a.ptTimer != nil {
		a.ptTimer.Stop()
	}
	if a.aeTimer != nil {
		a.aeTimer.Stop()
	}
	a.m.registry.Store(&registryView{})
}

// receiveGroups handles the group layer's messages; it reports whether
// msg was one.
func (a *membershipActor) receiveGroups(ctx actor.Context, msg any) bool {
	switch msg := msg.(type) {
	case *plumtreeTick:
		if msg.gen == a.ptGen && !a.stopped {
			a.ptTimer, a.ptDeadline = nil, time.Time{}
			a.applyPT(ctx, a.pt.Tick(a.now()))
		}
	case *antiEntropyTick:
		if msg.gen == a.aeGen && !a.stopped {
			now := a.now()
			a.reg.expire(now, a.cfg.TombstoneTTL)
			a.reg.heartbeat(now)
			alive := func(node string) bool { return a.live[node] }
			if gone := a.reg.suspect(now, a.cfg.HeartbeatTimeout, alive); len(gone) > 0 {
				a.stats.Suspected += uint64(len(gone))
				// Here only: every node judges by the heartbeats it sees,
				// and takes the node back when its heartbeat rises.
				a.log.Info("groups: no heartbeat, leaving nodes out", "nodes", gone, "timeout", a.cfg.HeartbeatTimeout)
				for _, node := range gone {
					a.lose(node)
				}
				a.registryChanged(ctx)
			}
			if peers := a.views().Active; len(peers) > 0 {
				a.sendDigest(ctx, peers[a.rng.IntN(len(peers))], true)
			}
			a.armAntiEntropy(a.cfg.AntiEntropyPeriod)
		}
	case *confirmDown:
		if !a.stopped && !a.live[msg.node] && a.reg.markDown(msg.node, a.now()) {
			a.log.Debug("groups: node down", "peer", msg.node)
			a.publishState(ctx, msg.node)
			a.registryChanged(ctx)
		}
	case *muteBroadcasts:
		a.muted = true
	case *describeStates:
		ctx.Respond(a.reg.describe())
	case *JoinGroup:
		a.respond(ctx, &GroupResult{Err: a.joinGroup(ctx, msg.Group, msg.PIDs, true)})
	case *LeaveGroup:
		a.respond(ctx, &GroupResult{Err: a.joinGroup(ctx, msg.Group, msg.PIDs, false)})
	case *MonitorGroup:
		a.monitorGroup(ctx, msg.Group, msg.Subscriber)
	case *DemonitorGroup:
		if s := msg.Subscriber; s != nil {
			delete(a.groupMonitors[msg.Group], s.String())
			if len(a.groupMonitors[msg.Group]) == 0 {
				delete(a.groupMonitors, msg.Group)
			}
		}
	case *RegisterName:
		a.respond(ctx, &NameResult{Err: a.registerName(ctx, msg.Name, msg.PID)})
	case *UnregisterName:
		a.respond(ctx, &NameResult{Err: a.unregisterName(ctx, msg.Name)})
	default:
		return false
	}
	return true
}

func validName(s string) error {
	if s == "" || len(s) > maxGroupNameLen {
		return fmt.Errorf("%w: %q", ErrBadName, s)
	}
	return nil
}

// localID returns the id of a local PID, or ErrNotLocal.
func (a *membershipActor) localID(pid *actor.PID) (string, error) {
	if pid == nil || pid.Id == "" {
		return "", fmt.Errorf("%w: nil PID", ErrNotLocal)
	}
	switch pid.Address {
	case a.self, "", "nonhost":
		return pid.Id, nil
	}
	return "", fmt.Errorf("%w: %s", ErrNotLocal, pid)
}

// joinGroup adds (join) or removes local pids of group and publishes the
// new own state.
func (a *membershipActor) joinGroup(ctx actor.Context, group string, pids []*actor.PID, join bool) error {
	if err := validName(group); err != nil {
		return err
	}
	ids := make([]string, 0, len(pids))
	for _, p := range pids {
		id, err := a.localID(p)
		if err != nil {
			return err
		}
		ids = append(ids, id)
	}
	var changed bool
	if join {
		for _, id := range ids {
			ctx.Watch(actor.NewPID(a.self, id))
		}
		changed = a.reg.join(group, ids)
	} else {
		changed = a.reg.leave(group, ids)
	}
	if changed {
		a.publishOwn(ctx)
		a.registryChanged(ctx)
	}
	return nil
}

func (a *membershipActor) registerName(ctx actor.Context, name string, pid *actor.PID) error {
	if err := validName(name); err != nil {
		return err
	}
	id, err := a.localID(pid)
	if err != nil {
		return err
	}
	if owner, ok := a.view.names[name]; ok {
		if owner.node == a.self && owner.pid.Id == id {
			return nil
		}
		return fmt.Errorf("%w: %s is held by %s", ErrNameTaken, name, owner.pid)
	}
	ctx.Watch(actor.NewPID(a.self, id))
	a.reg.claim(name, id)
	a.publishOwn(ctx)
	a.registryChanged(ctx)
	return nil
}

func (a *membershipActor) unregisterName(ctx actor.Context, name string) error {
	if err := validName(name); err != nil {
		return err
	}
	if !a.reg.unclaim(name) {
		return fmt.Errorf("%w: %s", ErrNameNotHeld, name)
	}
	a.publishOwn(ctx)
	a.registryChanged(ctx)
	return nil
}

func (a *membershipActor) monitorGroup(ctx actor.Context, group string, s *actor.PID) {
	if s == nil || validName(group) != nil {
		return
	}
	if a.groupMonitors[group] == nil {
		a.groupMonitors[group] = map[string]*actor.PID{}
	}
	if _, ok := a.groupMonitors[group][s.String()]; ok {
		return
	}
	a.groupMonitors[group][s.String()] = s
	ctx.Watch(s)
	ctx.Send(s, &GroupChanged{Group: group, Joined: slices.Clone(a.view.groups[group])})
}

// terminated handles a watched actor's stop: a local member or name
// holder is dropped everywhere, a group monitor removed.
func (a *membershipActor) terminated(ctx actor.Context, who *actor.PID) {
	key := who.String()
	for g, subs := range a.groupMonitors {
		delete(subs, key)
		if len(subs) == 0 {
			delete(a.groupMonitors, g)
		}
	}
	if id, err := a.localID(who); err == nil && a.reg.drop(id) {
		a.publishOwn(ctx)
		a.registryChanged(ctx)
	}
}

// neighborUp: a peer entered the active view (announced): it becomes a
// Plumtree neighbour, and the two compare their group states.
func (a *membershipActor) neighborUp(ctx actor.Context, node string) {
	a.applyPT(ctx, a.pt.NeighborUp(node, a.now()))
	a.sendDigest(ctx, node, true)
	if len(a.announced) == 1 {
		// The first peer of a node that was alone (a new node, or one
		// back after a partition): its own state goes out to everyone.
		a.publishOwn(ctx)
	}
}

func (a *membershipActor) neighborDown(ctx actor.Context, node string) {
	a.applyPT(ctx, a.pt.NeighborDown(node, a.now()))
}

// neighborLeft: an active peer said it leaves the overlay. Its groups
// and names go with it (a node that leaves publishes its own down state,
// see setLeft), so they are dropped here and the down state is spread
// from here as well: the leaver's own broadcast may not get out (its
// eager set can be empty, leaving only announcements whose Grafts it
// will not be there to answer), and the NodeDown that follows its stop
// is not counted, the node being no longer an active peer by then.
func (a *membershipActor) neighborLeft(ctx actor.Context, node string) {
	if a.reg.markDown(node, a.now()) {
		a.log.Debug("groups: node left", "peer", node)
		a.publishState(ctx, node)
		a.registryChanged(ctx)
	}
}

// nodeDown: the session to node, an active peer, ended for a reason
// that means the node is down: its groups and names are dropped here
// and, by a broadcast of its down state, everywhere. Only active peers
// count: their sessions are pinned and kept alive, while a lost
// on-demand session to another node is weak evidence (on a loaded
// 100-node process such losses caused thousands of false downs, each a
// cluster-wide flap); the heartbeat covers the others.
//
// It is marked down downConfirmDelay later, unless a session to it is
// up again by then (a replaced connection).
func (a *membershipActor) nodeDown(ctx actor.Context, msg *dist.NodeDown) {
	if !nodeDownReasons[msg.Reason] || a.reg.states[msg.Node] == nil {
		return
	}
	system, pid, node := a.m.system, a.pid, msg.Node
	time.AfterFunc(downConfirmDelay, func() { system.Root.Send(pid, &confirmDown{node: node}) })
}

// setLeft marks the own state down (leaving: every node drops this
// node's groups and names) or up again (rejoining), and publishes it.
func (a *membershipActor) setLeft(ctx actor.Context, left bool) {
	own := a.reg.own()
	if own.down == left {
		return
	}
	a.reg.setDown(left)
	a.publishOwn(ctx)
	a.registryChanged(ctx)
}

func (a *membershipActor) publishOwn(ctx actor.Context) { a.publishState(ctx, a.self) }

// publishState broadcasts the state held for node.
func (a *membershipActor) publishState(ctx actor.Context, node string) {
	payload, err := proto.Marshal(a.reg.encodeState(node))
	if err != nil {
		a.log.Error("groups: encode state", "node", node, "err", err)
		return
	}
	_, out := a.pt.Broadcast(payload, a.now())
	a.applyPT(ctx, out)
}

// applyPT carries out a Plumtree Output: send, deliver, arm the timer.
func (a *membershipActor) applyPT(ctx actor.Context, out plumtree.Output) {
	for _, e := range out.Send {
		if a.muted {
			continue
		}
		a.stats.BroadcastSent++
		if e.Msg.Type == plumtree.Gossip {
			a.stats.BroadcastPayloads++
		}
		ctx.Send(a.distPID, &dist.SendMembership{Node: e.To, Msg: encodePlumtree(e.Msg)})
	}
	changed := false
	for _, d := range out.Deliver {
		a.stats.BroadcastDelivered++
		var p caskpb.GroupNodeState
		if err := proto.Unmarshal(d.Payload, &p); err != nil {
			a.log.Debug("groups: dropped broadcast", "peer", d.From, "id", d.ID.String(), "err", err)
			continue
		}
		if a.mergeState(ctx, &p, d.From) {
			changed = true
		}
	}
	if changed {
		a.registryChanged(ctx)
	}
	a.armPT(out.Deadline)
}

// mergeState merges one received node state; it reports whether the
// registry changed. A state about this node that is newer than its own
// makes it publish a newer one.
func (a *membershipActor) mergeState(ctx actor.Context, p *caskpb.GroupNodeState, from string) bool {
	node, st, err := decodeState(p)
	if err != nil {
		a.log.Debug("groups: dropped state", "peer", from, "err", err)
		return false
	}
	changed, refute := a.reg.merge(node, st, a.now())
	if refute {
		a.stats.Refuted++
		a.log.Debug("groups: refuting a newer state of this node", "peer", from, "version", st.version, "down", st.down)
		a.publishOwn(ctx)
	}
	return changed
}

func (a *membershipActor) armPT(deadline time.Time) {
	if deadline.IsZero() || (!a.ptDeadline.IsZero() && !deadline.Before(a.ptDeadline)) {
		return
	}
	if a.ptTimer != nil {
		a.ptTimer.Stop()
	}
	a.ptGen++
	a.ptDeadline = deadline
	gen, system, pid := a.ptGen, a.m.system, a.pid
	a.ptTimer = time.AfterFunc(max(deadline.Sub(a.now()), time.Millisecond), func() { system.Root.Send(pid, &plumtreeTick{gen: gen}) })
}

func (a *membershipActor) armAntiEntropy(d time.Duration) {
	a.aeGen++
	gen, system, pid := a.aeGen, a.m.system, a.pid
	a.aeTimer = time.AfterFunc(d, func() { system.Root.Send(pid, &antiEntropyTick{gen: gen}) })
}

// sendDigest sends this node's versions to node.
func (a *membershipActor) sendDigest(ctx actor.Context, node string, reply bool) {
	a.stats.AntiEntropySent++
	ctx.Send(a.distPID, &dist.SendMembership{Node: node, Msg: &caskpb.Membership{
		Type:        caskpb.MembershipType_MEMBERSHIP_TYPE_GROUP_DIGEST,
		From:        a.self,
		GroupDigest: &caskpb.GroupDigest{Versions: a.reg.digest(), Reply: reply},
	}})
}

// onGroupMessage handles a received anti-entropy message.
func (a *membershipActor) onGroupMessage(ctx actor.Context, from string, p *caskpb.Membership) {
	switch p.GetType() {
	case caskpb.MembershipType_MEMBERSHIP_TYPE_GROUP_DIGEST:
		d := p.GetGroupDigest()
		back := a.reg.observe(d.GetVersions(), a.now())
		for _, v := range d.GetVersions() {
			if v.GetNode() == a.self {
				// Seen as down, or at a newer version (an earlier
				// incarnation): publish a newer own state.
				if _, refute := a.reg.merge(a.self, &nodeState{version: v.GetVersion(), down: v.GetDown()}, a.now()); refute {
					a.stats.Refuted++
					a.publishOwn(ctx)
				}
			}
		}
		if back {
			a.registryChanged(ctx)
		}
		push, _, _ := a.reg.compare(d.GetVersions())
		// At most statesPerMessage states per message, so a node that
		// knows nothing yet is not sent one frame the size of the cluster.
		for len(push) > 0 {
			n := min(len(push), statesPerMessage)
			states := make([]*caskpb.GroupNodeState, 0, n)
			for _, node := range push[:n] {
				states = append(states, a.reg.encodeState(node))
			}
			push = push[n:]
			a.stats.AntiEntropySent++
			ctx.Send(a.distPID, &dist.SendMembership{Node: from, Msg: &caskpb.Membership{
				Type:        caskpb.MembershipType_MEMBERSHIP_TYPE_GROUP_STATES,
				From:        a.self,
				GroupStates: states,
			}})
		}
		// Answered even when this node is not behind: the answer
		// carries its heartbeats.
		if d.GetReply() {
			a.sendDigest(ctx, from, false)
		}
	case caskpb.MembershipType_MEMBERSHIP_TYPE_GROUP_STATES:
		// Not broadcast again: the nodes concerned publish their own
		// state when they join and when they refute a down state, and
		// anti-entropy spreads the rest (re-broadcasting every state
		// learned this way multiplied the broadcasts of a forming
		// cluster by four, docs/membership.md).
		changed := false
		for _, st := range p.GetGroupStates() {
			if a.mergeState(ctx, st, from) {
				changed = true
			}
		}
		if changed {
			a.registryChanged(ctx)
		}
	}
}

// registryChanged rebuilds the readers' snapshot, tells group monitors
// what changed and withdraws own name claims that lost.
func (a *membershipActor) registryChanged(ctx actor.Context) {
	old := a.view
	a.storeView()
	for group, subs := range a.groupMonitors {
		joined, left := diffPIDs(old.groups[group], a.view.groups[group])
		if len(joined) == 0 && len(left) == 0 {
			continue
		}
		for _, s := range subs {
			ctx.Send(s, &GroupChanged{Group: group, Joined: joined, Left: left})
		}
	}
	var lost []string
	for name := range a.reg.own().names {
		if w, ok := a.view.names[name]; ok && w.node != a.self {
			lost = append(lost, name)
		}
	}
	if len(lost) == 0 {
		return
	}
	slices.Sort(lost)
	for _, name := range lost {
		cl := a.reg.own().names[name]
		a.reg.unclaim(name)
		winner := a.view.names[name].pid
		a.log.Info("groups: name lost", "name", name, "winner", winner.String())
		ctx.Send(actor.NewPID(a.self, cl.id), &NameLost{Name: name, Winner: winner})
	}
	a.publishOwn(ctx)
	a.storeView()
}

func (a *membershipActor) storeView() {
	a.view = a.reg.view()
	a.m.registry.Store(a.view)
}
