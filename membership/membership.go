package membership

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/cask-p2p/cask/dist"
	"github.com/cask-p2p/cask/internal/ask"
	"github.com/cask-p2p/cask/membership/hyparview"
	"github.com/cask-p2p/cask/membership/plumtree"
)

// Dist is what the membership actor needs of the dist layer. Messages go
// to PID (SendMembership, Connect, MonitorNode, Pin, Unpin); inbound
// membership messages come to the handler set with SetMembershipHandler.
// Addresses: the actor attaches AdvertisedAddr (its own) and what
// LearnedAddrs holds (the others') to every message naming nodes, and
// adds the addresses received messages carry to LearnedAddrs.
type Dist interface {
	Name() string
	PID() *actor.PID
	SetMembershipHandler(pid *actor.PID)
	AdvertisedAddr() string
	LearnedAddrs() *dist.LearnedAddrs
}

var _ Dist = (*dist.Manager)(nil)

// ActorName is the name the membership actor is spawned under.
const ActorName = "membership"

// stopTimeout bounds the Leave that Stop sends before stopping the actor.
const stopTimeout = 5 * time.Second

// Membership is the handle on a node's running membership actor.
type Membership struct {
	system *actor.ActorSystem
	cfg    Config // with defaults filled in
	pid    *actor.PID
	// views is the latest snapshot of both views, stored by the actor
	// after every message it handles.
	views atomic.Pointer[Views]
	// registry is the latest snapshot of process groups and names,
	// stored by the actor after every change.
	registry atomic.Pointer[registryView]
	stopOnce sync.Once
	// metrics holds the OpenTelemetry instruments; nil without
	// Config.MeterProvider.
	metrics *membershipMetrics
}

// Start spawns the membership actor of the node whose dist layer is d.
// The dist layer must be started. The actor joins cfg.ContactNodes at
// once (in the background, with retry) and runs one membership round
// every ShufflePeriod until Stop.
func Start(system *actor.ActorSystem, d Dist, cfg Config) (*Membership, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("membership: invalid config: %w", err)
	}
	cfg = cfg.WithDefaults()
	seed := cfg.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	self := d.Name()
	// The state machine and the actor draw from separate streams, so a
	// timer's jitter never shifts the protocol's choices.
	if _, err := hyparview.New(cfg.stateConfig(self, rand.New(rand.NewPCG(seed, 1)))); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	m := &Membership{system: system, cfg: cfg}
	m.views.Store(&Views{})
	m.registry.Store(&registryView{})
	mm, err := newMembershipMetrics(m, cfg.MeterProvider)
	if err != nil {
		return nil, fmt.Errorf("membership: metrics: %w", err)
	}
	m.metrics = mm
	props := actor.PropsFromProducer(func() actor.Actor {
		// A fresh state on every (re)start: a restarted actor rejoins
		// through ContactNodes.
		st, _ := hyparview.New(cfg.stateConfig(self, rand.New(rand.NewPCG(seed, 1))))
		// Broadcast ids and the own group state's version start at the
		// start time, so those of a restarted node (or actor) are new.
		start := uint64(cfg.Now().UnixNano())
		pt, _ := plumtree.New(plumtree.Config{Self: self, FirstSeq: start})
		return newMembershipActor(m, d, cfg, st, rand.New(rand.NewPCG(seed, 2)), pt, newRegistry(self, start))
	})
	pid, err := system.Root.SpawnNamed(props, ActorName)
	if err != nil {
		mm.close()
		return nil, fmt.Errorf("membership: spawn actor: %w", err)
	}
	m.pid = pid
	return m, nil
}

// PID is the membership actor, for the message forms of the API (Join,
// Leave, Subscribe, Unsubscribe, GetViews, GetStats).
func (m *Membership) PID() *actor.PID { return m.pid }

// Join joins the overlay through contact and waits until this node has
// an active peer or the attempt failed (ErrJoinFailed), or ctx ends. When
// ctx ends first the attempt goes on in the background.
func (m *Membership) Join(ctx context.Context, contact string) error {
	res, err := m.request(ctx, &Join{Contact: contact})
	if err != nil {
		return fmt.Errorf("membership: join through %s: %w", contact, err)
	}
	return res.(*JoinResult).Err
}

// Leave leaves the overlay: every active peer is told (PeerDown{left} on
// its side) and the node takes no part until the next Join.
func (m *Membership) Leave(ctx context.Context) error {
	res, err := m.request(ctx, &Leave{})
	if err != nil {
		return fmt.Errorf("membership: leave: %w", err)
	}
	return res.(*LeaveResult).Err
}

// ActiveView returns the active view, sorted: the peers announced by
// PeerUp and not yet by PeerDown. Every one of them has a live session.
func (m *Membership) ActiveView() []string { return slices.Clone(m.views.Load().Active) }

// PassiveView returns the passive view, sorted.
func (m *Membership) PassiveView() []string { return slices.Clone(m.views.Load().Passive) }

// Subscribe sends membership events to pid (see the Subscribe message).
func (m *Membership) Subscribe(pid *actor.PID) {
	m.system.Root.Send(m.pid, &Subscribe{Subscriber: pid})
}

// Unsubscribe stops sending events to pid.
func (m *Membership) Unsubscribe(pid *actor.PID) {
	m.system.Root.Send(m.pid, &Unsubscribe{Subscriber: pid})
}

// Stop leaves the overlay (so active peers see PeerDown{left} rather than
// a failure) and stops the actor. Call it before stopping the dist layer.
// It is safe to call more than once.
func (m *Membership) Stop() error {
	m.stopOnce.Do(func() {
		_, _ = m.system.Root.RequestFuture(m.pid, &Leave{}, stopTimeout).Result()
		_ = m.system.Root.StopFuture(m.pid).Wait()
		m.metrics.close()
	})
	return nil
}

// cancelMargin is how much longer than the caller's ctx a request's
// future lives (see request).
const cancelMargin = 5 * time.Second

// request asks the actor and waits within ctx (a minute when ctx has no
// deadline: a join waits for a connect attempt, bounded by the dist
// layer's ConnectTimeout).
func (m *Membership) request(ctx context.Context, msg any) (any, error) {
	timeout := ask.Timeout(ctx, time.Minute)
	if timeout <= 0 {
		return nil, context.DeadlineExceeded
	}
	// The future outlives ctx by cancelMargin, so when ctx ends the
	// actor's answer to cancelRequest completes it rather than its own
	// timeout: protoactor's future takes a reply after a timeout without
	// its lock (a data race the race detector saw in TestJoinErrors).
	fut := m.system.Root.RequestFuture(m.pid, msg, timeout+cancelMargin)
	res, err := ask.Wait(ctx, fut)
	switch {
	case ctx.Err() != nil && err == ctx.Err():
		// Let the actor answer the future now, so the goroutine reading
		// it ends instead of waiting for the timeout.
		m.system.Root.Send(m.pid, &cancelRequest{waiter: fut.PID(), err: ctx.Err()})
		return nil, err
	case err != nil:
		return nil, err
	case res == nil:
		return nil, ErrStopped
	}
	if _, dead := res.(*actor.DeadLetterResponse); dead {
		return nil, ErrStopped
	}
	return res, nil
}

// JoinGroup adds local actors to group (Erlang pg:join). Every node sees
// them in GroupMembers once the change has spread (docs/membership.md
// gives the bounds measured). An actor stays a member until LeaveGroup,
// until it stops, or until this node is down or leaves the overlay.
// Joining twice is one membership. A PID of another node is ErrNotLocal.
func (m *Membership) JoinGroup(ctx context.Context, group string, pids ...*actor.PID) error {
	res, err := m.request(ctx, &JoinGroup{Group: group, PIDs: pids})
	if err != nil {
		return fmt.Errorf("membership: join group %q: %w", group, err)
	}
	return res.(*GroupResult).Err
}

// LeaveGroup removes local actors from group (Erlang pg:leave); actors
// not in the group are ignored.
func (m *Membership) LeaveGroup(ctx context.Context, group string, pids ...*actor.PID) error {
	res, err := m.request(ctx, &LeaveGroup{Group: group, PIDs: pids})
	if err != nil {
		return fmt.Errorf("membership: leave group %q: %w", group, err)
	}
	return res.(*GroupResult).Err
}

// GroupMembers returns the members of group as this node knows them,
// sorted by node, then id: eventually consistent, never blocking.
func (m *Membership) GroupMembers(group string) []*actor.PID {
	return slices.Clone(m.registry.Load().groups[group])
}

// Groups returns the names of the groups with at least one member, sorted.
func (m *Membership) Groups() []string {
	return slices.Sorted(maps.Keys(m.registry.Load().groups))
}

// MonitorGroup sends *GroupChanged events for group to subscriber, a
// local actor: first the current members, then every join and leave.
func (m *Membership) MonitorGroup(group string, subscriber *actor.PID) {
	m.system.Root.Send(m.pid, &MonitorGroup{Group: group, Subscriber: subscriber})
}

// DemonitorGroup stops the events of MonitorGroup.
func (m *Membership) DemonitorGroup(group string, subscriber *actor.PID) {
	m.system.Root.Send(m.pid, &DemonitorGroup{Group: group, Subscriber: subscriber})
}

// RegisterName registers name for pid, a local actor, cluster-wide
// (Erlang global:register_name). A name this node already knows to be
// held by another actor is ErrNameTaken. Concurrent registrations on
// different nodes are settled by the conflict rule (lowest Lamport
// stamp, then lowest node name) once they meet; the loser gets
// *NameLost. The name is released by UnregisterName, when pid stops, and
// when this node is down or leaves the overlay.
func (m *Membership) RegisterName(ctx context.Context, name string, pid *actor.PID) error {
	res, err := m.request(ctx, &RegisterName{Name: name, PID: pid})
	if err != nil {
		return fmt.Errorf("membership: register name %q: %w", name, err)
	}
	return res.(*NameResult).Err
}

// UnregisterName releases name, held by a local actor (ErrNameNotHeld
// otherwise).
func (m *Membership) UnregisterName(ctx context.Context, name string) error {
	res, err := m.request(ctx, &UnregisterName{Name: name})
	if err != nil {
		return fmt.Errorf("membership: unregister name %q: %w", name, err)
	}
	return res.(*NameResult).Err
}

// Whereis returns the actor registered under name, as this node knows it.
func (m *Membership) Whereis(name string) (*actor.PID, bool) {
	o, ok := m.registry.Load().names[name]
	return o.pid, ok
}

// Names returns the registered names this node knows, sorted.
func (m *Membership) Names() []string {
	return slices.Sorted(maps.Keys(m.registry.Load().names))
}
