package dist_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/eventstream"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/cask-p2p/cask/actors"
	"github.com/cask-p2p/cask/dist"
	"github.com/cask-p2p/cask/transport"
)

const (
	// waitTimeout bounds waits that are expected to succeed.
	waitTimeout = 5 * time.Second
	// fastFail is how quickly an error that must not wait for a timeout
	// has to show up.
	fastFail = 2 * time.Second
	// quietPeriod is how long a check that something does NOT happen
	// watches for it.
	quietPeriod = 100 * time.Millisecond
)

// quietLogger discards everything.
func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// startNode starts a node named name with cfg (Name and Logger are filled
// in) and stops it at the end of the test.
func startNode(t testing.TB, name string, cfg actors.Config) *actors.Node {
	t.Helper()
	cfg.Name = name
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	n, err := actors.Start(ctx, cfg)
	if err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() { _ = n.Stop() })
	return n
}

// peersOf is a static discovery map naming the given nodes.
func peersOf(nodes ...*actors.Node) map[string]string {
	m := make(map[string]string, len(nodes))
	for _, n := range nodes {
		m[n.Name()] = n.Addr().String()
	}
	return m
}

// eventually polls cond until it holds or timeout passes.
func eventually(t testing.TB, timeout time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v: %s", timeout, fmt.Sprintf(format, args...))
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// echoProps answers every *wrapperspb.StringValue with "echo:" + value.
func echoProps() *actor.Props {
	return actor.PropsFromFunc(func(c actor.Context) {
		if m, ok := c.Message().(*wrapperspb.StringValue); ok {
			c.Respond(wrapperspb.String("echo:" + m.Value))
		}
	})
}

// spawnEcho spawns an echo actor named name on n.
func spawnEcho(t testing.TB, n *actors.Node, name string) *actor.PID {
	t.Helper()
	pid, err := n.Root().SpawnNamed(echoProps(), name)
	if err != nil {
		t.Fatalf("spawn %s on %s: %v", name, n.Name(), err)
	}
	return pid
}

// echoRequest asks from → pid and returns the answer or the error.
func echoRequest(from *actors.Node, pid *actor.PID, s string) (string, error) {
	res, err := from.Root().RequestFuture(pid, wrapperspb.String(s), waitTimeout).Result()
	if err != nil {
		return "", err
	}
	sv, ok := res.(*wrapperspb.StringValue)
	if !ok {
		return "", fmt.Errorf("answer is %T (%v)", res, res)
	}
	return sv.Value, nil
}

// mustEcho checks that a request from → pid is answered.
func mustEcho(t testing.TB, from *actors.Node, pid *actor.PID, s string) {
	t.Helper()
	got, err := echoRequest(from, pid, s)
	if err != nil {
		t.Fatalf("%s → %s: %v", from.Name(), pid, err)
	}
	if got != "echo:"+s {
		t.Fatalf("%s → %s: got %q, want %q", from.Name(), pid, got, "echo:"+s)
	}
}

// deadLetter is one DeadLetterEvent the dist layer published.
type deadLetter struct {
	PID    *actor.PID
	Sender *actor.PID
	*dist.UndeliveredMessage
}

// deadLetters collects the dist layer's dead letters on one node.
type deadLetters struct {
	mu  sync.Mutex
	got []deadLetter
}

func collectDeadLetters(t testing.TB, n *actors.Node) *deadLetters {
	d := &deadLetters{}
	es := n.System().EventStream
	var sub *eventstream.Subscription
	sub = es.Subscribe(func(ev any) {
		dl, ok := ev.(*actor.DeadLetterEvent)
		if !ok {
			return
		}
		um, ok := dl.Message.(*dist.UndeliveredMessage)
		if !ok {
			return
		}
		d.mu.Lock()
		d.got = append(d.got, deadLetter{PID: dl.PID, Sender: dl.Sender, UndeliveredMessage: um})
		d.mu.Unlock()
	})
	t.Cleanup(func() { es.Unsubscribe(sub) })
	return d
}

func (d *deadLetters) find(reason error) (deadLetter, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, dl := range d.got {
		if errors.Is(dl.Reason, reason) {
			return dl, true
		}
	}
	return deadLetter{}, false
}

// count is how many dead letters so far have a reason matching reason.
func (d *deadLetters) count(reason error) int {
	n := 0
	for _, dl := range d.all() {
		if errors.Is(dl.Reason, reason) {
			n++
		}
	}
	return n
}

func (d *deadLetters) all() []deadLetter {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]deadLetter(nil), d.got...)
}

// waitFor waits for a dead letter whose Reason matches reason.
func (d *deadLetters) waitFor(t testing.TB, reason error) deadLetter {
	t.Helper()
	var dl deadLetter
	eventually(t, waitTimeout, func() bool {
		var ok bool
		dl, ok = d.find(reason)
		return ok
	}, "dead letter with reason %v (got %v)", reason, d.all())
	return dl
}

// probe is an actor that forwards every message it receives (except its
// own lifecycle messages) to a session.
type probe struct {
	PID *actor.PID
	ch  chan any
}

func newProbe(t testing.TB, n *actors.Node) *probe {
	t.Helper()
	p := &probe{ch: make(chan any, 256)}
	p.PID = n.Root().Spawn(actor.PropsFromFunc(func(c actor.Context) {
		switch c.Message().(type) {
		case *actor.Started, *actor.Stopping, *actor.Stopped, *actor.Restarting:
			return
		}
		select {
		case p.ch <- c.Message():
		default:
			panic("probe session full")
		}
	}))
	return p
}

// next waits for the next message matching match, skipping others.
func (p *probe) next(t testing.TB, what string, match func(any) bool) any {
	t.Helper()
	return p.nextWithin(t, waitTimeout, what, match)
}

// none checks that no message matching match arrives within quietPeriod
// (or is already queued).
func (p *probe) none(t testing.TB, what string, match func(any) bool) {
	t.Helper()
	timer := time.NewTimer(quietPeriod)
	defer timer.Stop()
	for {
		select {
		case m := <-p.ch:
			if match(m) {
				t.Fatalf("probe: unexpected %s: %#v", what, m)
			}
		case <-timer.C:
			return
		}
	}
}

func (p *probe) nodeUp(t testing.TB, node string) *dist.NodeUp {
	t.Helper()
	return p.next(t, "NodeUp "+node, func(m any) bool {
		u, ok := m.(*dist.NodeUp)
		return ok && u.Node == node
	}).(*dist.NodeUp)
}

func (p *probe) nodeDown(t testing.TB, node string) *dist.NodeDown {
	t.Helper()
	return p.next(t, "NodeDown "+node, func(m any) bool {
		d, ok := m.(*dist.NodeDown)
		return ok && d.Node == node
	}).(*dist.NodeDown)
}

func isNodeDown(m any) bool { _, ok := m.(*dist.NodeDown); return ok }

// monitorProbe registers a probe as node monitor of peer on n.
func monitorProbe(t testing.TB, n *actors.Node, peer string) *probe {
	t.Helper()
	p := newProbe(t, n)
	n.MonitorNode(peer, p.PID)
	return p
}

// watcher is a local actor on n that watches target and reports its
// Terminated.
func watcher(t testing.TB, n *actors.Node, target *actor.PID) *probe {
	t.Helper()
	p := &probe{ch: make(chan any, 16)}
	ready := make(chan struct{})
	p.PID = n.Root().Spawn(actor.PropsFromFunc(func(c actor.Context) {
		switch m := c.Message().(type) {
		case *actor.Started:
			c.Watch(target)
			close(ready)
		case *actor.Terminated:
			p.ch <- m
		}
	}))
	<-ready
	return p
}

func (p *probe) terminated(t testing.TB, who *actor.PID) *actor.Terminated {
	t.Helper()
	return p.next(t, "Terminated "+who.String(), func(m any) bool {
		tm, ok := m.(*actor.Terminated)
		return ok && tm.Who.Address == who.Address && tm.Who.Id == who.Id
	}).(*actor.Terminated)
}

// ctxTimeout is a context bounded by waitTimeout, cancelled at test end.
func ctxTimeout(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	t.Cleanup(cancel)
	return ctx
}

// startBareManager starts a dist.Manager on its own transport and actor
// system, without actors.Node (quiet logs, static peers, no DNS), and
// stops all three at test end. before, if not nil, runs on the manager
// before Start (e.g. an export_test.go switch imitating an older build).
func startBareManager(t *testing.T, name string, peers map[string]string, before func(*dist.Manager)) (*dist.Manager, *actor.ActorSystem, *transport.Transport) {
	t.Helper()
	tr, err := transport.New(transport.Config{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Start(); err != nil {
		t.Fatal(err)
	}
	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return quietLogger() }))
	system.ProcessRegistry.Address = name
	m, err := dist.New(system, tr, dist.Config{Name: name, Peers: peers, DisableDNS: true, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if before != nil {
		before(m)
	}
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = m.Stop()
		_ = tr.Close()
		system.Shutdown()
	})
	return m, system, tr
}
