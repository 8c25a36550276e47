// Package watchdog is the SRTT watchdog from Cask's migration guide, as an
// actor: it samples the smoothed RTT of every peer in the membership
// active view on a timer, and a peer over the threshold on two
// consecutive samples gets a migration request. The request never blocks
// the sampling: its answer arrives later as a message.
//
// Rules:
//   - A sample over Threshold is a strike; a sample at or under it (or a
//     failed sample) clears the peer's strikes.
//   - Two consecutive strikes start a migration and clear the strikes.
//     While a peer's migration runs, its samples are not acted on.
//   - membership.PeerDown clears the peer's strikes.
//   - RouteChanged (a default-route change, from RouteWatcher on Linux)
//     migrates every active peer at once.
//   - A peer that answered dist.ErrPeerDisableMigration (or
//     dist.ErrMigrationNotAllowed: this node's DisableMigration, or a
//     peer that cannot take a handover) is skipped until it goes down and
//     comes back up.
//
// The stats source (pathstats.Source, which *actors.Node is) and the
// migrator are small interfaces, so tests inject fakes; NodeMigrator is
// the real migrator over an *actors.Node.
package watchdog

import (
	"errors"
	"sort"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/cask-p2p/cask/actors"
	"github.com/cask-p2p/cask/dist"
	"github.com/cask-p2p/cask/membership"
	"github.com/cask-p2p/cask/pathstats"
)

// Defaults for Config.
const (
	DefaultPeriod    = 5 * time.Second
	DefaultThreshold = 200 * time.Millisecond
	// StrikesToMigrate is the number of consecutive slow samples that
	// start a migration.
	StrikesToMigrate = 2
)

// Migrator starts migrating the connection to peer and returns at once;
// the outcome must reach replyTo as *dist.MigrateResult.
type Migrator interface {
	StartMigration(peer string, replyTo *actor.PID)
}

// Config configures the watchdog. Stats and Migrator are required.
type Config struct {
	// Period between samples; default 5 s. Negative: no timer (send Tick
	// yourself, as tests do).
	Period time.Duration
	// Threshold above which a sample is a strike; default 200 ms.
	Threshold time.Duration
	Stats     pathstats.Source
	Migrator  Migrator
	// Subscribe, if set, is called with the watchdog's PID when it starts,
	// to subscribe it to membership events (Node.Subscribe).
	Subscribe func(*actor.PID)
	// Observer, if set, gets every Event the watchdog produces, in order:
	// the demo prints them, tests assert on them.
	Observer *actor.PID
}

// Tick makes the watchdog take one sample of every active peer.
type Tick struct{}

// RouteChanged tells the watchdog the local network changed (on Linux,
// RouteWatcher sees the default route change): every active peer whose
// migration is not disabled or already running is migrated at once.
type RouteChanged struct{}

// Event kinds sent to the Observer.
type (
	// Sampled: one peer's SRTT sample and the strikes after it.
	Sampled struct {
		Peer    string
		SRTT    time.Duration
		Err     error
		Strikes int
	}
	// MigrationStarted: a migration request went out for Peer.
	MigrationStarted struct {
		Peer string
		At   time.Time
	}
	// MigrationFinished: the answer to a migration request.
	MigrationFinished struct {
		Peer string
		Err  error
		Took time.Duration
	}
	// Skipped: Peer is not sampled because migration is disabled for its
	// connection (until it goes down and up again).
	Skipped struct{ Peer string }
)

// Props returns the watchdog actor's props.
func Props(cfg Config) *actor.Props {
	if cfg.Period == 0 {
		cfg.Period = DefaultPeriod
	}
	if cfg.Threshold <= 0 {
		cfg.Threshold = DefaultThreshold
	}
	return actor.PropsFromProducer(func() actor.Actor {
		return &watchdog{
			cfg:       cfg,
			active:    map[string]bool{},
			strikes:   map[string]int{},
			disabled:  map[string]bool{},
			migrating: map[string]time.Time{},
		}
	})
}

type watchdog struct {
	cfg       Config
	active    map[string]bool
	strikes   map[string]int
	disabled  map[string]bool
	migrating map[string]time.Time
	timer     *time.Timer
}

func (w *watchdog) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		if w.cfg.Subscribe != nil {
			w.cfg.Subscribe(ctx.Self())
		}
		w.arm(ctx)
	case *actor.Stopping:
		if w.timer != nil {
			w.timer.Stop()
		}
	case *Tick:
		w.sample(ctx)
		w.arm(ctx)
	case *RouteChanged:
		w.migrateAll(ctx)
	case *membership.PeerUp:
		w.active[m.Node] = true
	case *membership.PeerDown:
		delete(w.active, m.Node)
		delete(w.strikes, m.Node)
		delete(w.disabled, m.Node)
	case *dist.MigrateResult:
		started, ok := w.migrating[m.Node]
		delete(w.migrating, m.Node)
		if errors.Is(m.Err, dist.ErrPeerDisableMigration) || errors.Is(m.Err, dist.ErrMigrationNotAllowed) {
			w.disabled[m.Node] = true
		}
		var took time.Duration
		if ok {
			took = time.Since(started)
		}
		w.emit(ctx, &MigrationFinished{Peer: m.Node, Err: m.Err, Took: took})
	}
}

// arm schedules the next Tick; the timer only posts a message, so a slow
// migration never delays a sample.
func (w *watchdog) arm(ctx actor.Context) {
	if w.cfg.Period < 0 {
		return
	}
	self, root := ctx.Self(), ctx.ActorSystem().Root
	w.timer = time.AfterFunc(w.cfg.Period, func() { root.Send(self, &Tick{}) })
}

func (w *watchdog) sample(ctx actor.Context) {
	peers := make([]string, 0, len(w.active))
	for p := range w.active {
		peers = append(peers, p)
	}
	sort.Strings(peers)
	for _, p := range peers {
		if w.disabled[p] {
			w.emit(ctx, &Skipped{Peer: p})
			continue
		}
		srtt, err := pathstats.SRTT(w.cfg.Stats, p)
		if err != nil || srtt <= w.cfg.Threshold {
			delete(w.strikes, p)
			w.emit(ctx, &Sampled{Peer: p, SRTT: srtt, Err: err})
			continue
		}
		if _, busy := w.migrating[p]; busy {
			w.emit(ctx, &Sampled{Peer: p, SRTT: srtt, Strikes: w.strikes[p]})
			continue
		}
		w.strikes[p]++
		n := w.strikes[p]
		w.emit(ctx, &Sampled{Peer: p, SRTT: srtt, Strikes: n})
		if n >= StrikesToMigrate {
			delete(w.strikes, p)
			now := time.Now()
			w.migrating[p] = now
			w.emit(ctx, &MigrationStarted{Peer: p, At: now})
			w.cfg.Migrator.StartMigration(p, ctx.Self())
		}
	}
}

func (w *watchdog) migrateAll(ctx actor.Context) {
	peers := make([]string, 0, len(w.active))
	for p := range w.active {
		peers = append(peers, p)
	}
	sort.Strings(peers)
	for _, p := range peers {
		if _, busy := w.migrating[p]; busy || w.disabled[p] {
			continue
		}
		delete(w.strikes, p)
		now := time.Now()
		w.migrating[p] = now
		w.emit(ctx, &MigrationStarted{Peer: p, At: now})
		w.cfg.Migrator.StartMigration(p, ctx.Self())
	}
}

func (w *watchdog) emit(ctx actor.Context, ev any) {
	if w.cfg.Observer != nil {
		ctx.Send(w.cfg.Observer, ev)
	}
}

// NodeMigrator is the Migrator of a node: a dist.MigratePeer request to
// its dist manager, answered to replyTo.
type NodeMigrator struct {
	Node *actors.Node
	// Options shape every request (timeout, local address, adapter).
	Options []dist.MigrateOption
}

// StartMigration implements Migrator.
func (m NodeMigrator) StartMigration(peer string, replyTo *actor.PID) {
	req := &dist.MigratePeer{Node: peer}
	for _, o := range m.Options {
		o(req)
	}
	m.Node.Root().RequestWithCustomSender(m.Node.DistPID(), req, replyTo)
}

var _ Migrator = NodeMigrator{}
