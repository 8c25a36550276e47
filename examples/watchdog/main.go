// Command watchdog is Cask's first demo: three nodes on loopback join one
// membership overlay and exchange traffic; then 300 ms is added to one
// link's round trip. The SRTT watchdog on the node that dialed that link
// sees two slow samples in a row, migrates the connection to a fresh
// socket (a clean path), and the SRTT falls back — with no message lost.
//
//	go run ./examples/watchdog
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/cask-p2p/cask/actors"
	"github.com/cask-p2p/cask/actors/testkit"
	"github.com/cask-p2p/cask/examples/watchdog/watchdog"
	"github.com/cask-p2p/cask/membership"
)

// Demo settings: a short sample period so the story fits in seconds.
const (
	samplePeriod = 250 * time.Millisecond
	threshold    = watchdog.DefaultThreshold
	addedRTT     = 300 * time.Millisecond
	trafficEvery = 10 * time.Millisecond
)

func main() {
	if err := run(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "watchdog demo:", err)
		os.Exit(1)
	}
}

type printer struct {
	start time.Time
	out   *os.File
}

func (p *printer) say(format string, args ...any) {
	fmt.Fprintf(p.out, "%6.2fs  %s\n", time.Since(p.start).Seconds(), fmt.Sprintf(format, args...))
}

func run(out *os.File) error {
	p := &printer{start: time.Now(), out: out}
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()

	c, err := testkit.StartCluster(3, testkit.ClusterConfig{
		Name: func(i int) string { return []string{"hub@localhost", "laptop@localhost", "worker@localhost"}[i] },
		Node: actors.Config{Membership: membership.Config{ShufflePeriod: time.Second}},
	})
	if err != nil {
		return err
	}
	defer c.Stop()
	hub, laptop, worker := c.Node(0), c.Node(1), c.Node(2)
	p.say("started %s, %s, %s on loopback", hub.Name(), laptop.Name(), worker.Name())

	// laptop and worker join through hub; laptop dials hub, so laptop is
	// the side that may migrate that connection.
	for _, n := range []*actors.Node{laptop, worker} {
		if err := n.Join(ctx, hub.Name()); err != nil {
			return fmt.Errorf("%s join: %w", n.Name(), err)
		}
	}
	p.say("membership: %s active view %v", laptop.Name(), laptop.ActiveView())

	for _, n := range c.Nodes() {
		if _, err := n.Root().SpawnNamed(actor.PropsFromFunc(func(c actor.Context) {
			if m, ok := c.Message().(*wrapperspb.Int64Value); ok {
				c.Respond(m)
			}
		}), "echo"); err != nil {
			return err
		}
	}

	// Traffic: laptop asks hub and worker every 10 ms.
	var sent, received atomic.Int64
	stopTraffic := make(chan struct{})
	trafficDone := make(chan struct{})
	go func() {
		defer close(trafficDone)
		tick := time.NewTicker(trafficEvery)
		defer tick.Stop()
		var seq int64
		for {
			select {
			case <-stopTraffic:
				return
			case <-tick.C:
			}
			for _, peer := range []*actors.Node{hub, worker} {
				seq++
				sent.Add(1)
				fut := laptop.Root().RequestFuture(actor.NewPID(peer.Name(), "echo"), wrapperspb.Int64(seq), 10*time.Second)
				go func() {
					if _, err := fut.Result(); err == nil {
						received.Add(1)
					}
				}()
			}
		}
	}()

	// The watchdog on laptop, printing its timeline.
	var migrated atomic.Bool
	var migrateErr atomic.Value
	var lastHubSRTT atomic.Int64
	observer := laptop.Root().Spawn(actor.PropsFromFunc(func(ac actor.Context) {
		switch ev := ac.Message().(type) {
		case *watchdog.Sampled:
			if ev.Peer == hub.Name() {
				lastHubSRTT.Store(int64(ev.SRTT))
			}
			mark := ""
			if ev.Strikes > 0 {
				mark = fmt.Sprintf("  strike %d", ev.Strikes)
			}
			p.say("sample   %-16s srtt %8v%s", ev.Peer, ev.SRTT.Round(100*time.Microsecond), mark)
		case *watchdog.MigrationStarted:
			p.say("migrate  %s: two slow samples in a row, moving to a fresh socket", ev.Peer)
		case *watchdog.MigrationFinished:
			if ev.Err != nil {
				migrateErr.Store(ev.Err)
				p.say("migrate  %s failed after %v: %v", ev.Peer, ev.Took.Round(time.Microsecond), ev.Err)
				return
			}
			sum, _ := laptop.PathStats(ev.Peer)
			p.say("migrate  %s done in %v; path now %s → %s", ev.Peer, ev.Took.Round(time.Microsecond), sum.LocalAddr, sum.RemoteAddr)
			migrated.Store(true)
		}
	}))
	laptop.Root().Spawn(watchdog.Props(watchdog.Config{
		Period:    samplePeriod,
		Threshold: threshold,
		Stats:     laptop,
		Migrator:  watchdog.NodeMigrator{Node: laptop},
		Subscribe: laptop.Subscribe,
		Observer:  observer,
	}))

	time.Sleep(1500 * time.Millisecond)
	p.say("fault    adding %v to the round trip of %s ↔ %s (its current path)", addedRTT, laptop.Name(), hub.Name())
	c.Link(0, 1).SetDelay(addedRTT / 2)

	deadline := time.Now().Add(15 * time.Second)
	for !migrated.Load() && time.Now().Before(deadline) {
		if err, _ := migrateErr.Load().(error); err != nil {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !migrated.Load() {
		return errors.New("the watchdog did not migrate the slow peer within 15s")
	}
	// Let a few samples show the SRTT on the new path.
	recovered := time.Now().Add(5 * time.Second)
	for time.Duration(lastHubSRTT.Load()) > threshold && time.Now().Before(recovered) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(3 * samplePeriod)
	close(stopTraffic)
	<-trafficDone
	drain := time.Now().Add(5 * time.Second)
	for received.Load() < sent.Load() && time.Now().Before(drain) {
		time.Sleep(10 * time.Millisecond)
	}
	lost := sent.Load() - received.Load()
	srtt := time.Duration(lastHubSRTT.Load())
	p.say("traffic  sent %d, received %d, lost %d", sent.Load(), received.Load(), lost)
	p.say("result   %s srtt %v after migration (threshold %v)", hub.Name(), srtt.Round(100*time.Microsecond), threshold)
	switch {
	case lost != 0:
		return fmt.Errorf("%d messages lost", lost)
	case srtt > threshold:
		return fmt.Errorf("srtt stayed at %v after the migration", srtt)
	}
	return nil
}
