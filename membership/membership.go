package membership

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/cask-p2p/cask/dist"
	"github.com/cask-p2p/cask/internal/ask"
	"github.com/cask-p2p/cask/membership/hyparview"
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
	views    atomic.Pointer[Views]
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
	mm, err := newMembershipMetrics(m, cfg.MeterProvider)
	if err != nil {
		return nil, fmt.Errorf("membership: metrics: %w", err)
	}
	m.metrics = mm
	props := actor.PropsFromProducer(func() actor.Actor {
		// A fresh state on every (re)start: a restarted actor rejoins
		// through ContactNodes.
		st, _ := hyparview.New(cfg.stateConfig(self, rand.New(rand.NewPCG(seed, 1))))
		return newMembershipActor(m, d, cfg, st, rand.New(rand.NewPCG(seed, 2)))
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
