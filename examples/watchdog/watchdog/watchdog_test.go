package watchdog_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/cask-p2p/cask/actors/testkit"
	"github.com/cask-p2p/cask/dist"
	"github.com/cask-p2p/cask/examples/watchdog/watchdog"
	"github.com/cask-p2p/cask/membership"
	"github.com/cask-p2p/cask/pathstats"
)

// fakeStats returns the SRTT set per peer.
type fakeStats struct {
	mu   sync.Mutex
	srtt map[string]time.Duration
}

func (f *fakeStats) set(peer string, d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.srtt[peer] = d
}

func (f *fakeStats) PathStats(peer string) (pathstats.Summary, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, ok := f.srtt[peer]
	if !ok {
		return pathstats.Summary{}, errors.New("no stats")
	}
	return pathstats.Summary{SRTT: d}, nil
}

// fakeMigrator records requests; it answers only when told to.
type fakeMigrator struct {
	calls chan call
}

type call struct {
	peer    string
	replyTo *actor.PID
}

func (f *fakeMigrator) StartMigration(peer string, replyTo *actor.PID) {
	f.calls <- call{peer, replyTo}
}

type rig struct {
	t        *testing.T
	system   *actor.ActorSystem
	stats    *fakeStats
	migrator *fakeMigrator
	events   *testkit.Probe
	dog      *actor.PID
}

const slow, fast = 300 * time.Millisecond, 20 * time.Millisecond

func newRig(t *testing.T, period time.Duration, peers ...string) *rig {
	system := actor.NewActorSystem(actor.WithDeadLetterThrottleInterval(10 * time.Millisecond))
	t.Cleanup(system.Shutdown)
	r := &rig{t: t, system: system, stats: &fakeStats{srtt: map[string]time.Duration{}},
		migrator: &fakeMigrator{calls: make(chan call, 16)}}
	r.events = testkit.NewProbe(t, system)
	r.dog = system.Root.Spawn(watchdog.Props(watchdog.Config{
		Period: period, Stats: r.stats, Migrator: r.migrator, Observer: r.events.PID(),
	}))
	t.Cleanup(func() { system.Root.StopFuture(r.dog).Wait() })
	for _, p := range peers {
		r.stats.set(p, fast)
		system.Root.Send(r.dog, &membership.PeerUp{Node: p})
	}
	return r
}

func (r *rig) tick() { r.system.Root.Send(r.dog, &watchdog.Tick{}) }

// sampled expects the next event to be peer's sample with strikes.
func (r *rig) sampled(peer string, strikes int) {
	r.t.Helper()
	ev := testkit.ExpectMsgType[*watchdog.Sampled](r.events, time.Second)
	if ev.Peer != peer || ev.Strikes != strikes {
		r.t.Fatalf("sample %+v, want peer %s with %d strikes", ev, peer, strikes)
	}
}

func (r *rig) expectMigration(peer string) call {
	r.t.Helper()
	ev := testkit.ExpectMsgType[*watchdog.MigrationStarted](r.events, time.Second)
	if ev.Peer != peer {
		r.t.Fatalf("migration started for %s, want %s", ev.Peer, peer)
	}
	select {
	case c := <-r.migrator.calls:
		if c.peer != peer {
			r.t.Fatalf("migrator called for %s, want %s", c.peer, peer)
		}
		return c
	case <-time.After(time.Second):
		r.t.Fatal("migrator not called")
	}
	return call{}
}

func (r *rig) noMigration() {
	r.t.Helper()
	select {
	case c := <-r.migrator.calls:
		r.t.Fatalf("unexpected migration of %s", c.peer)
	default:
	}
}

func TestTwoStrikesMigrate(t *testing.T) {
	r := newRig(t, -1, "b@h")
	r.stats.set("b@h", slow)
	r.tick()
	r.sampled("b@h", 1)
	r.noMigration()
	r.tick()
	r.sampled("b@h", 2)
	c := r.expectMigration("b@h")
	r.system.Root.Send(c.replyTo, &dist.MigrateResult{Node: "b@h"})
	done := testkit.ExpectMsgType[*watchdog.MigrationFinished](r.events, time.Second)
	if done.Err != nil || done.Peer != "b@h" {
		t.Fatalf("finished %+v", done)
	}
	// Strikes start over after a migration.
	r.tick()
	r.sampled("b@h", 1)
}

func TestOneStrikeThenRecoveryDoesNotMigrate(t *testing.T) {
	r := newRig(t, -1, "b@h")
	r.stats.set("b@h", slow)
	r.tick()
	r.sampled("b@h", 1)
	r.stats.set("b@h", fast)
	r.tick()
	r.sampled("b@h", 0)
	r.stats.set("b@h", slow)
	r.tick()
	r.sampled("b@h", 1)
	r.noMigration()
}

func TestPeerDownClearsStrikes(t *testing.T) {
	r := newRig(t, -1, "b@h")
	r.stats.set("b@h", slow)
	r.tick()
	r.sampled("b@h", 1)
	r.system.Root.Send(r.dog, &membership.PeerDown{Node: "b@h", Reason: membership.ReasonFailed})
	r.tick()
	r.events.ExpectNoMessage(50 * time.Millisecond) // no active peer, no sample
	r.system.Root.Send(r.dog, &membership.PeerUp{Node: "b@h"})
	r.tick()
	r.sampled("b@h", 1) // a fresh count, not a second strike
	r.noMigration()
}

func TestDisabledPeerSkippedUntilDownAndUp(t *testing.T) {
	for _, refusal := range []error{dist.ErrPeerDisableMigration, dist.ErrMigrationNotAllowed} {
		t.Run(refusal.Error(), func(t *testing.T) {
			r := newRig(t, -1, "b@h")
			r.stats.set("b@h", slow)
			r.tick()
			r.sampled("b@h", 1)
			r.tick()
			r.sampled("b@h", 2)
			c := r.expectMigration("b@h")
			r.system.Root.Send(c.replyTo, &dist.MigrateResult{Node: "b@h", Err: fmt.Errorf("dist: migrate b@h: %w", refusal)})
			testkit.ExpectMsgType[*watchdog.MigrationFinished](r.events, time.Second)
			for i := 0; i < 3; i++ {
				r.tick()
				if ev := testkit.ExpectMsgType[*watchdog.Skipped](r.events, time.Second); ev.Peer != "b@h" {
					t.Fatalf("skipped %s", ev.Peer)
				}
			}
			r.noMigration()
			r.system.Root.Send(r.dog, &membership.PeerDown{Node: "b@h", Reason: membership.ReasonFailed})
			r.system.Root.Send(r.dog, &membership.PeerUp{Node: "b@h"})
			r.tick()
			r.sampled("b@h", 1)
		})
	}
}

// A migration that takes its whole timeout must not delay the samples:
// with a real timer, samples keep their cadence while the migrator has
// not answered.
func TestSlowMigrationDoesNotDelaySampling(t *testing.T) {
	const period = 20 * time.Millisecond
	r := newRig(t, period, "b@h", "c@h")
	r.stats.set("b@h", slow)
	var started time.Time
	for started.IsZero() {
		switch ev := r.events.ExpectMsg(time.Second).(type) {
		case *watchdog.MigrationStarted:
			started = ev.At
		}
	}
	<-r.migrator.calls // never answered
	var cSamples []time.Time
	deadline := time.Now().Add(2 * time.Second)
	for len(cSamples) < 10 && time.Now().Before(deadline) {
		if ev, ok := r.events.ExpectMsg(time.Second).(*watchdog.Sampled); ok && ev.Peer == "c@h" {
			cSamples = append(cSamples, time.Now())
		}
	}
	if len(cSamples) < 10 {
		t.Fatalf("only %d samples of c@h in 2s while b@h's migration hung", len(cSamples))
	}
	if took := cSamples[9].Sub(cSamples[0]); took > 9*period*5 {
		t.Fatalf("9 sample periods took %v (period %v)", took, period)
	}
	r.noMigration() // b@h is not asked again while its migration runs
}

func TestSeveralPeersAtOnce(t *testing.T) {
	r := newRig(t, -1, "b@h", "c@h", "d@h")
	r.stats.set("b@h", slow)
	r.stats.set("d@h", slow)
	r.tick()
	r.sampled("b@h", 1)
	r.sampled("c@h", 0)
	r.sampled("d@h", 1)
	r.tick()
	r.sampled("b@h", 2)
	r.expectMigration("b@h")
	r.sampled("c@h", 0)
	r.sampled("d@h", 2)
	r.expectMigration("d@h")
}

func TestRouteChangeMigratesEveryPeer(t *testing.T) {
	r := newRig(t, -1, "b@h", "c@h")
	r.system.Root.Send(r.dog, &watchdog.RouteChanged{})
	r.expectMigration("b@h")
	r.expectMigration("c@h")
	// While they run, another route change asks for nothing more.
	r.system.Root.Send(r.dog, &watchdog.RouteChanged{})
	r.events.ExpectNoMessage(50 * time.Millisecond)
	r.noMigration()
}
