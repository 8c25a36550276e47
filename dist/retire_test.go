package dist_test

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/cask-p2p/cask/actors"
	"github.com/cask-p2p/cask/dist"
)

// countDeadLetters counts n's dist dead letters whose reason matches
// reason, without keeping them (a flood must not grow the heap here).
func countDeadLetters(t testing.TB, n *actors.Node, reason error) *atomic.Int64 {
	var count atomic.Int64
	es := n.System().EventStream
	sub := es.Subscribe(func(ev any) {
		if dl, ok := ev.(*actor.DeadLetterEvent); ok {
			if um, ok := dl.Message.(*dist.UndeliveredMessage); ok && errors.Is(um.Reason, reason) {
				count.Add(1)
			}
		}
	})
	t.Cleanup(func() { es.Unsubscribe(sub) })
	return &count
}

// heapAfterGC is the live heap after a full collection.
func heapAfterGC() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// unknownNameSends is the size of the unknown-name flood.
const unknownNameSends = 100_000

// sendToUnknownNames sends one message to each of count distinct node
// names nobody can resolve, in batches, and waits for every dead letter.
func sendToUnknownNames(t *testing.T, n *actors.Node, dead *atomic.Int64, prefix string, count int) {
	t.Helper()
	const batch = 1000
	want := dead.Load()
	for i := 0; i < count; i += batch {
		for j := i; j < i+batch && j < count; j++ {
			n.Root().Send(actor.NewPID(fmt.Sprintf("%s%d@nowhere.invalid", prefix, j), "x"), wrapperspb.String("boo"))
		}
		want += int64(min(batch, count-i))
		eventually(t, 30*time.Second, func() bool { return dead.Load() >= want },
			"%d dead letters for unknown names (got %d)", want, dead.Load())
	}
}

// TestUnknownNamesAreFreed: sends to 100,000 distinct unknown node names
// leave at most 5 MiB on the heap and no goroutine behind once their
// dead letters are out, with the default configuration.
//
// Each failed name holds a controller and an endpoint while its first
// reconnect delay runs (100 ms by default); then the controller retires
// and only its failure count stays, with the manager actor, for a second
// more, at most maxRememberedFailures of them. So the names alive at once
// (a few thousand at this send rate) are bounded, and what they leave
// behind once gone (maps grown to that peak) too.
func TestUnknownNamesAreFreed(t *testing.T) {
	a := startNode(t, "a@localhost", actors.Config{Dist: dist.Config{DisableDNS: true}})
	dead := countDeadLetters(t, a, dist.ErrUnknownNode)
	sendToUnknownNames(t, a, dead, "warm", 2000) // warm up pools and maps
	// Protoactor's process registry is 32,768 small Go maps that keep
	// their first allocation once used (about 9 MiB when all are): a
	// fixed cost of spawning actors at all, paid here up front with
	// plain local actors so that it does not count against the names.
	for i := 0; i < unknownNameSends; i++ {
		pid := a.Root().Spawn(actor.PropsFromFunc(func(actor.Context) {}))
		a.Root().Stop(pid)
	}

	var before uint64
	var goroutines int
	eventually(t, waitTimeout, func() bool {
		goroutines = runtime.NumGoroutine()
		before = heapAfterGC()
		time.Sleep(10 * time.Millisecond)
		return runtime.NumGoroutine() == goroutines
	}, "goroutines settle")

	start := time.Now()
	sendToUnknownNames(t, a, dead, "ghost", unknownNameSends)
	took := time.Since(start)

	const limit = 5 << 20
	var after uint64
	var nowG int
	deadline := time.Now().Add(10 * time.Second)
	for {
		after, nowG = heapAfterGC(), runtime.NumGoroutine()
		if (after <= before || after-before <= limit) && nowG <= goroutines {
			break
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	growth := int64(after) - int64(before)
	t.Logf("%d sends to distinct unknown names in %v: heap %d → %d bytes (%+d, %.1f bytes per name), goroutines %d → %d",
		unknownNameSends, took.Round(time.Millisecond), before, after, growth,
		float64(growth)/unknownNameSends, goroutines, nowG)
	if growth > limit {
		t.Errorf("heap grew by %d bytes after %d unknown names, want at most %d", growth, unknownNameSends, limit)
	}
	if nowG > goroutines {
		t.Errorf("goroutines %d → %d after the flood", goroutines, nowG)
	}
}

// TestRetiredEndpointDeliversLater: an endpoint retired while its peer
// was unknown is still cached in the PIDs resolved before; sends through
// it reach the peer once the peer is up, answers included.
func TestRetiredEndpointDeliversLater(t *testing.T) {
	cfg := actors.Config{Dist: dist.Config{DisableDNS: true, DiscoveryDir: t.TempDir()}}
	a := startNode(t, "a@localhost", cfg)
	dead := countDeadLetters(t, a, dist.ErrUnknownNode)

	echo := actor.NewPID("b@localhost", "echo")
	stale, ok := a.System().ProcessRegistry.Get(echo) // what protoactor caches in a PID
	if !ok {
		t.Fatal("b@localhost did not resolve")
	}
	stale.SendUserMessage(echo, wrapperspb.String("early"))
	eventually(t, waitTimeout, func() bool { return dead.Load() == 1 }, "dead letter for b while b is unknown")
	eventually(t, waitTimeout, func() bool { return dist.EndpointRetired(stale) }, "b's endpoint retired")

	b := startNode(t, "b@localhost", cfg)
	spawnEcho(t, b, "echo")
	for i := range 3 {
		f := actor.NewFuture(a.System(), waitTimeout)
		stale.SendUserMessage(echo, &actor.MessageEnvelope{Message: wrapperspb.String(fmt.Sprint(i)), Sender: f.PID()})
		res, err := f.Result()
		if err != nil {
			t.Fatalf("request %d through the retired endpoint: %v", i, err)
		}
		if got := res.(*wrapperspb.StringValue).GetValue(); got != fmt.Sprint("echo:", i) {
			t.Fatalf("request %d: answer %q", i, got)
		}
	}
	// A watch through the retired endpoint reaches b too.
	w := newProbe(t, a)
	stale.SendSystemMessage(echo, &actor.Watch{Watcher: w.PID})
	mustEcho(t, a, echo, "watched") // the Watch rides ahead of this on b's stream
	b.Root().Stop(actor.NewPID(b.Name(), "echo"))
	got := w.next(t, "Terminated", func(m any) bool { _, ok := m.(*actor.Terminated); return ok }).(*actor.Terminated)
	if got.Who.Id != "echo" || got.Why != actor.TerminatedReason_Stopped {
		t.Fatalf("Terminated = %v, want echo stopped", got)
	}
	if dead.Load() != 1 {
		t.Fatalf("%d dead letters, want only the one from before b was up", dead.Load())
	}
}

// TestSendsRaceRetirement: senders through a PID resolved once and
// through fresh PIDs keep going while the unknown peer's endpoint is
// retired and made again and again; every message ends as exactly one
// dead letter, none stays behind in a retired endpoint.
func TestSendsRaceRetirement(t *testing.T) {
	// A backoff of a microsecond: the endpoint is retired and made again
	// all the time, instead of held unreachable while sends come.
	a := startNode(t, "a@localhost", actors.Config{Dist: dist.Config{DisableDNS: true,
		ReconnectBackoffMin: time.Microsecond, ReconnectBackoffMax: time.Microsecond}})
	var dead atomic.Int64
	es := a.System().EventStream
	sub := es.Subscribe(func(ev any) {
		if dl, ok := ev.(*actor.DeadLetterEvent); ok {
			if um, ok := dl.Message.(*dist.UndeliveredMessage); ok && um.Node == "ghost@nowhere.invalid" {
				dead.Add(1)
			}
		}
	})
	t.Cleanup(func() { es.Unsubscribe(sub) })

	const senders, each = 8, 2000
	cached := actor.NewPID("ghost@nowhere.invalid", "x")
	retiredSeen := atomic.Bool{}
	stale, _ := a.System().ProcessRegistry.Get(cached)
	done := make(chan struct{})
	for i := range senders {
		go func() {
			defer func() { done <- struct{}{} }()
			for j := range each {
				pid := cached
				if (i+j)%2 == 0 {
					pid = actor.NewPID(cached.Address, "x") // resolved afresh
				}
				a.Root().Send(pid, wrapperspb.String("boo"))
				if j%200 == 0 && dist.EndpointRetired(stale) {
					retiredSeen.Store(true)
				}
			}
		}()
	}
	for range senders {
		<-done
	}
	eventually(t, 30*time.Second, func() bool { return dead.Load() >= senders*each },
		"%d dead letters (got %d)", senders*each, dead.Load())
	time.Sleep(quietPeriod)
	if n := dead.Load(); n != senders*each {
		t.Fatalf("%d dead letters for %d sends", n, senders*each)
	}
	if !retiredSeen.Load() && !dist.EndpointRetired(stale) {
		t.Fatal("the endpoint was never retired")
	}
}

// TestBadAddressDeadLetters: a PID whose address is not a node name is a
// dead letter with ErrBadNodeName as its reason; requests fail at once,
// watches end at once, and local PIDs are not affected.
func TestBadAddressDeadLetters(t *testing.T) {
	a := startNode(t, "a@localhost", actors.Config{Dist: dist.Config{DisableDNS: true}})
	local := spawnEcho(t, a, "echo")
	for _, addr := range []string{"nonode", "x@y@z", "@host", "name@", "has space@h"} {
		dl := collectDeadLetters(t, a)
		pid := actor.NewPID(addr, "echo")
		a.Root().Send(pid, wrapperspb.String("boo"))
		got := dl.waitFor(t, dist.ErrBadNodeName)
		if got.Node != addr || !got.PID.Equal(pid) {
			t.Errorf("%q: dead letter for node %q, PID %v", addr, got.Node, got.PID)
		}

		start := time.Now()
		if _, err := a.Root().RequestFuture(pid, wrapperspb.String("q"), 10*time.Second).Result(); !errors.Is(err, actor.ErrDeadLetter) {
			t.Errorf("%q: request err = %v, want %v", addr, err, actor.ErrDeadLetter)
		}
		if d := time.Since(start); d > fastFail {
			t.Errorf("%q: request failed after %v", addr, d)
		}
		w := watcher(t, a, pid)
		w.terminated(t, pid)
	}
	mustEcho(t, a, local, "local")
	mustEcho(t, a, actor.NewPID("nonhost", "echo"), "placeholder")
}

// TestStoppedControllerPIDReleased: each controller that stops gets one
// private message to its own PID, which drops the stopped actor the PID
// caches; it is a dead letter nobody is meant to see: no sender, not a
// dist.UndeliveredMessage, not logged by protoactor.
func TestStoppedControllerPIDReleased(t *testing.T) {
	a := startNode(t, "a@localhost", actors.Config{Dist: dist.Config{DisableDNS: true}})
	prefix := a.DistPID().Id + "/"
	var released, other atomic.Int64
	es := a.System().EventStream
	sub := es.Subscribe(func(ev any) {
		dl, ok := ev.(*actor.DeadLetterEvent)
		if !ok || !strings.HasPrefix(dl.PID.GetId(), prefix) {
			return
		}
		if _, quiet := dl.Message.(actor.IgnoreDeadLetterLogging); quiet && dl.Sender == nil {
			released.Add(1)
		} else {
			other.Add(1)
		}
	})
	t.Cleanup(func() { es.Unsubscribe(sub) })
	unknown := countDeadLetters(t, a, dist.ErrUnknownNode)

	const names = 20
	for i := range names {
		a.Root().Send(actor.NewPID(fmt.Sprintf("ghost%d@nowhere.invalid", i), "x"), wrapperspb.String("boo"))
	}
	eventually(t, waitTimeout, func() bool { return released.Load() >= names },
		"%d controllers' PIDs released (got %d)", names, released.Load())
	time.Sleep(quietPeriod)
	if n := released.Load(); n != names {
		t.Errorf("%d PIDs released for %d controllers", n, names)
	}
	if n := other.Load(); n != 0 {
		t.Errorf("%d other dead letters to controller PIDs", n)
	}
	if n := unknown.Load(); n != names {
		t.Errorf("%d dead letters for unknown names, want %d", n, names)
	}
}
