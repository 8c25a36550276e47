package dist_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/cask-p2p/cask/actors"
	"github.com/cask-p2p/cask/dist"
	"github.com/cask-p2p/cask/transport"
	"github.com/cask-p2p/cask/transport/adapter"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// launch starts a node named name with cfg (Name and Logger filled in)
// and stops it when the test ends.
func launch(t *testing.T, name string, cfg actors.Config) *actors.Node {
	t.Helper()
	cfg.Name = name
	cfg.Dist.DisableDNS = true
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	n, err := actors.Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() { n.Stop() })
	return n
}

// mesh starts count nodes that all know each other's addresses.
func mesh(t *testing.T, count int, cfg actors.Config) []*actors.Node {
	t.Helper()
	dir := t.TempDir()
	cfg.Dist.DiscoveryDir = dir
	nodes := make([]*actors.Node, count)
	for i := range nodes {
		nodes[i] = launch(t, fmt.Sprintf("n%d@localhost", i), cfg)
	}
	return nodes
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func replyProps() *actor.Props {
	return actor.PropsFromFunc(func(c actor.Context) {
		switch m := c.Message().(type) {
		case *wrapperspb.StringValue:
			c.Respond(wrapperspb.String(c.Self().Address + ":" + m.Value))
		}
	})
}

func spawnNamed(t *testing.T, n *actors.Node, props *actor.Props, name string) *actor.PID {
	t.Helper()
	pid, err := n.Root().SpawnNamed(props, name)
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

func request(t *testing.T, n *actors.Node, pid *actor.PID, msg any) any {
	t.Helper()
	res, err := n.Root().RequestFuture(pid, msg, 5*time.Second).Result()
	if err != nil {
		t.Fatalf("request %v: %v", pid, err)
	}
	return res
}

func TestRequestResponseTwoNodes(t *testing.T) {
	nodes := mesh(t, 2, actors.Config{})
	spawnNamed(t, nodes[1], replyProps(), "echo")
	got := request(t, nodes[0], actor.NewPID("n1@localhost", "echo"), wrapperspb.String("hi"))
	if v := got.(*wrapperspb.StringValue).Value; v != "n1@localhost:hi" {
		t.Fatalf("reply %q", v)
	}
	if got := nodes[0].Nodes(); len(got) != 1 || got[0] != "n1@localhost" {
		t.Fatalf("Nodes() = %v", got)
	}
}

func TestFiveNodesAllPairs(t *testing.T) {
	nodes := mesh(t, 5, actors.Config{})
	for _, n := range nodes {
		spawnNamed(t, n, replyProps(), "echo")
	}
	var wg sync.WaitGroup
	errs := make(chan error, 25)
	for i, from := range nodes {
		for j, to := range nodes {
			if i == j {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				want := fmt.Sprintf("%s:%d", to.Name(), i)
				res, err := from.Root().RequestFuture(actor.NewPID(to.Name(), "echo"), wrapperspb.String(fmt.Sprint(i)), 5*time.Second).Result()
				if err != nil {
					errs <- err
					return
				}
				if v := res.(*wrapperspb.StringValue).Value; v != want {
					errs <- fmt.Errorf("got %q want %q", v, want)
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, n := range nodes {
		if got := len(n.Nodes()); got != 4 {
			t.Errorf("%s has %d sessions, want 4 (one per peer)", n.Name(), got)
		}
	}
}

// A forwarder on node 1 forwards to an echo on node 2; the reply must
// reach the original requester on node 0.
func TestForwardKeepsOriginalSender(t *testing.T) {
	nodes := mesh(t, 3, actors.Config{})
	spawnNamed(t, nodes[2], replyProps(), "echo")
	senders := make(chan *actor.PID, 1)
	spawnNamed(t, nodes[1], actor.PropsFromFunc(func(c actor.Context) {
		if _, ok := c.Message().(*wrapperspb.StringValue); ok {
			senders <- c.Sender()
			c.Forward(actor.NewPID("n2@localhost", "echo"))
		}
	}), "fwd")
	got := request(t, nodes[0], actor.NewPID("n1@localhost", "fwd"), wrapperspb.String("x"))
	if v := got.(*wrapperspb.StringValue).Value; v != "n2@localhost:x" {
		t.Fatalf("reply %q", v)
	}
	if s := <-senders; s.Address != "n0@localhost" {
		t.Fatalf("forwarder saw sender %v, want a PID on n0", s)
	}
}

// seqReceiver records, per sender, the sequence numbers it got.
type seqReceiver struct {
	mu   *sync.Mutex
	last map[string]int64
	bad  *atomic.Int64
	got  *atomic.Int64
}

func TestOrderingEightByEight(t *testing.T) {
	const senders, receivers, total = 8, 8, 100000
	per := total / (senders * receivers)
	nodes := mesh(t, 2, actors.Config{})
	var bad, got atomic.Int64
	var mu sync.Mutex
	last := map[string]int64{}
	var recvPIDs []*actor.PID
	for r := 0; r < receivers; r++ {
		name := fmt.Sprintf("recv%d", r)
		spawnNamed(t, nodes[1], actor.PropsFromFunc(func(c actor.Context) {
			// Message: "sender|seq" carried in a StringValue + Int64 is
			// awkward; use Int64Value with sender*1e9+seq.
			if m, ok := c.Message().(*wrapperspb.Int64Value); ok {
				sender, seq := m.Value/1_000_000_000, m.Value%1_000_000_000
				key := fmt.Sprintf("%s/%d", name, sender)
				mu.Lock()
				if seq != last[key]+1 {
					bad.Add(1)
				}
				last[key] = seq
				mu.Unlock()
				got.Add(1)
			}
		}), name)
		recvPIDs = append(recvPIDs, actor.NewPID("n1@localhost", name))
	}
	// Open the session first: sends made while it opens are queued only
	// up to PendingLimit.
	if err := nodes[0].Connect(context.Background(), "n1@localhost"); err != nil {
		t.Fatal(err)
	}
	// Each sender is an actor on node 0 sending to every receiver.
	var wg sync.WaitGroup
	for s := 0; s < senders; s++ {
		wg.Add(1)
		sid := int64(s + 1)
		pid := nodes[0].Root().Spawn(actor.PropsFromFunc(func(c actor.Context) {
			if _, ok := c.Message().(*wrapperspb.BoolValue); ok {
				for i := 1; i <= per; i++ {
					for _, r := range recvPIDs {
						c.Send(r, wrapperspb.Int64(sid*1_000_000_000+int64(i)))
					}
				}
				wg.Done()
			}
		}))
		nodes[0].Root().Send(pid, wrapperspb.Bool(true))
	}
	wg.Wait()
	want := int64(senders * receivers * per)
	waitFor(t, 60*time.Second, "all messages", func() bool { return got.Load() >= want })
	if got.Load() != want || bad.Load() != 0 {
		t.Fatalf("received %d of %d, %d out of order", got.Load(), want, bad.Load())
	}
}

// A 4 MiB message to one receiver must not hold up small messages to
// other receivers: they ride other QUIC streams.
func TestLargeMessageDoesNotDelayOthers(t *testing.T) {
	nodes := mesh(t, 2, actors.Config{})
	bigDone := make(chan time.Time, 4)
	spawnNamed(t, nodes[1], actor.PropsFromFunc(func(c actor.Context) {
		if _, ok := c.Message().(*wrapperspb.BytesValue); ok {
			bigDone <- time.Now()
		}
	}), "big")
	spawnNamed(t, nodes[1], replyProps(), "small")
	// Warm the session up.
	request(t, nodes[0], actor.NewPID("n1@localhost", "small"), wrapperspb.String("warm"))
	big := wrapperspb.Bytes(make([]byte, 4<<20))
	var maxSmall time.Duration
	start := time.Now()
	for i := 0; i < 4; i++ {
		nodes[0].Root().Send(actor.NewPID("n1@localhost", "big"), big)
	}
	for i := 0; i < 20; i++ {
		t0 := time.Now()
		request(t, nodes[0], actor.NewPID("n1@localhost", "small"), wrapperspb.String("x"))
		maxSmall = max(maxSmall, time.Since(t0))
	}
	var lastBig time.Time
	for i := 0; i < 4; i++ {
		select {
		case lastBig = <-bigDone:
		case <-time.After(30 * time.Second):
			t.Fatal("big messages did not arrive")
		}
	}
	bigTook := lastBig.Sub(start)
	t.Logf("16 MiB of large messages took %v; slowest small round trip meanwhile %v", bigTook, maxSmall)
	if maxSmall > bigTook/2 && maxSmall > 50*time.Millisecond {
		t.Fatalf("small round trips waited for the large messages: slowest %v, large took %v", maxSmall, bigTook)
	}
}

// watcher spawns an actor on n that watches target and reports
// Terminated on the returned session.
func watchFrom(t *testing.T, n *actors.Node, target *actor.PID) <-chan *actor.Terminated {
	ch := make(chan *actor.Terminated, 1)
	watching := make(chan struct{})
	n.Root().Spawn(actor.PropsFromFunc(func(c actor.Context) {
		switch m := c.Message().(type) {
		case *actor.Started:
			c.Watch(target)
			close(watching)
		case *actor.Terminated:
			ch <- m
		}
	}))
	// Return once the Watch is on its way, so whatever the test sends
	// to the target next travels behind it.
	select {
	case <-watching:
	case <-time.After(10 * time.Second):
		t.Fatal("the watcher did not start")
	}
	return ch
}

func expectTerminated(t *testing.T, ch <-chan *actor.Terminated, why actor.TerminatedReason, within time.Duration) {
	t.Helper()
	select {
	case m := <-ch:
		if m.Why != why {
			t.Fatalf("Terminated reason %v, want %v", m.Why, why)
		}
	case <-time.After(within):
		t.Fatalf("no Terminated within %v", within)
	}
}

func TestWatchRemoteStop(t *testing.T) {
	nodes := mesh(t, 2, actors.Config{})
	target := spawnNamed(t, nodes[1], replyProps(), "victim")
	remote := actor.NewPID("n1@localhost", "victim")
	ch := watchFrom(t, nodes[0], remote)
	// Make sure the watch arrived before stopping: a round trip on the
	// same stream (messages to one target are ordered) is enough.
	request(t, nodes[0], remote, wrapperspb.String("sync"))
	nodes[1].Root().Stop(target)
	expectTerminated(t, ch, actor.TerminatedReason_Stopped, 5*time.Second)
}

func TestWatchNeverExisted(t *testing.T) {
	nodes := mesh(t, 2, actors.Config{})
	ch := watchFrom(t, nodes[0], actor.NewPID("n1@localhost", "nobody"))
	expectTerminated(t, ch, actor.TerminatedReason_NotFound, 5*time.Second)
}

// TestWatchConnectionLost: a watch across a session whose connection is
// lost holds through the grace window (NodeUnreachable first) and ends
// with Terminated(AddressTerminated) and NodeDown when the window runs out.
func TestWatchConnectionLost(t *testing.T) {
	fault := adapter.NewFaulty(transport.UDPAdapter{Addr: "127.0.0.1:0"})
	const idle, grace = 800 * time.Millisecond, time.Second
	dir := t.TempDir()
	a := launch(t, "a@localhost", actors.Config{Transport: transport.Config{Adapter: fault, IdleTimeout: idle},
		Dist: dist.Config{DiscoveryDir: dir, SessionGrace: grace}})
	b := launch(t, "b@localhost", actors.Config{Transport: transport.Config{IdleTimeout: idle},
		Dist: dist.Config{DiscoveryDir: dir, SessionGrace: grace}})
	spawnNamed(t, b, replyProps(), "far")
	remote := actor.NewPID("b@localhost", "far")
	ch := watchFrom(t, a, remote)
	request(t, a, remote, wrapperspb.String("sync"))
	downs := make(chan any, 4)
	a.MonitorNode("b@localhost", a.Root().Spawn(actor.PropsFromFunc(func(c actor.Context) {
		switch m := c.Message().(type) {
		case *dist.NodeDown, *dist.NodeUnreachable:
			downs <- m
		}
	})))
	start := time.Now()
	fault.SetBlackhole(true)
	select {
	case m := <-downs:
		if _, ok := m.(*dist.NodeUnreachable); !ok {
			t.Fatalf("first event %#v, want NodeUnreachable", m)
		}
		t.Logf("NodeUnreachable %v after the blackhole", time.Since(start).Round(time.Millisecond))
	case <-time.After(idle + 2*time.Second):
		t.Fatal("no NodeUnreachable")
	}
	select {
	case <-ch:
		t.Fatal("Terminated before the grace window ran out")
	default:
	}
	expectTerminated(t, ch, actor.TerminatedReason_AddressTerminated, grace+2*time.Second)
	if d := time.Since(start); d < idle+grace-100*time.Millisecond {
		t.Fatalf("Terminated %v after the blackhole, before idle timeout + grace", d)
	}
	t.Logf("Terminated(AddressTerminated) %v after the blackhole (idle timeout %v, grace %v)", time.Since(start).Round(time.Millisecond), idle, grace)
	select {
	case m := <-downs:
		if d, ok := m.(*dist.NodeDown); !ok || d.Reason != dist.ReasonConnectionLost {
			t.Fatalf("event %#v, want NodeDown{connection_lost}", m)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("no NodeDown")
	}
	// The path comes back: a new session opens on demand.
	fault.SetBlackhole(false)
	request(t, a, remote, wrapperspb.String("again"))
}

// Both nodes dial each other at the same moment, many times over: exactly
// one connection survives and no message is lost.
func TestSimultaneousConnect(t *testing.T) {
	for round := 0; round < 5; round++ {
		t.Run(fmt.Sprint(round), func(t *testing.T) {
			dir := t.TempDir()
			a := launch(t, "a@localhost", actors.Config{Dist: dist.Config{DiscoveryDir: dir}})
			b := launch(t, "b@localhost", actors.Config{Dist: dist.Config{DiscoveryDir: dir}})
			const n = 200
			var gotA, gotB atomic.Int64
			counter := func(c *atomic.Int64) *actor.Props {
				return actor.PropsFromFunc(func(ctx actor.Context) {
					if _, ok := ctx.Message().(*wrapperspb.Int64Value); ok {
						c.Add(1)
					}
				})
			}
			spawnNamed(t, a, counter(&gotA), "sink")
			spawnNamed(t, b, counter(&gotB), "sink")
			var wg sync.WaitGroup
			wg.Add(2)
			go func() {
				defer wg.Done()
				for i := 0; i < n; i++ {
					a.Root().Send(actor.NewPID("b@localhost", "sink"), wrapperspb.Int64(int64(i)))
				}
			}()
			go func() {
				defer wg.Done()
				for i := 0; i < n; i++ {
					b.Root().Send(actor.NewPID("a@localhost", "sink"), wrapperspb.Int64(int64(i)))
				}
			}()
			wg.Wait()
			waitFor(t, 10*time.Second, "all messages both ways", func() bool { return gotA.Load() == n && gotB.Load() == n })
			waitFor(t, 5*time.Second, "one session each", func() bool {
				return len(a.Nodes()) == 1 && len(b.Nodes()) == 1
			})
		})
	}
}

// A restarted node is a new incarnation: PIDs of the old one are dead, and
// monitors see NodeDown{restarted} or a loss followed by NodeUp.
func TestRestartIsNewIncarnation(t *testing.T) {
	dir := t.TempDir()
	a := launch(t, "a@localhost", actors.Config{Dist: dist.Config{DiscoveryDir: dir}})
	b1, err := actors.Start(context.Background(), actors.Config{Name: "b@localhost", Logger: quiet, Dist: dist.Config{DiscoveryDir: dir, DisableDNS: true}})
	if err != nil {
		t.Fatal(err)
	}
	anon := b1.Root().Spawn(replyProps())
	oldPID := actor.NewPID("b@localhost", anon.Id)
	request(t, a, oldPID, wrapperspb.String("one"))
	oldInc := b1.Incarnation()
	b1.Stop()

	b2 := launch(t, "b@localhost", actors.Config{Dist: dist.Config{DiscoveryDir: dir}})
	if b2.Incarnation() == oldInc {
		t.Fatal("restart kept the incarnation")
	}
	// Spawn as many anonymous actors as before so a naive id sequence
	// would hand out the old id again.
	b2.Root().Spawn(replyProps())
	_, err = a.Root().RequestFuture(oldPID, wrapperspb.String("two"), 5*time.Second).Result()
	if err != actor.ErrDeadLetter {
		t.Fatalf("request to a PID of the old incarnation: err %v, want a dead letter", err)
	}
}

func TestIdleSessionReaped(t *testing.T) {
	cfg := actors.Config{Dist: dist.Config{ReapIdleAfter: 200 * time.Millisecond, ReapMinAge: 100 * time.Millisecond}}
	nodes := mesh(t, 3, cfg)
	spawnNamed(t, nodes[1], replyProps(), "echo")
	spawnNamed(t, nodes[2], replyProps(), "echo")
	nodes[0].Pin("n2@localhost")
	request(t, nodes[0], actor.NewPID("n1@localhost", "echo"), wrapperspb.String("x"))
	request(t, nodes[0], actor.NewPID("n2@localhost", "echo"), wrapperspb.String("x"))
	waitFor(t, 5*time.Second, "the unpinned idle session to close", func() bool {
		n := nodes[0].Nodes()
		return len(n) == 1 && n[0] == "n2@localhost"
	})
	waitFor(t, 5*time.Second, "the peer to see the close", func() bool { return len(nodes[1].Nodes()) == 0 })
	// Still pinned after several idle periods.
	time.Sleep(600 * time.Millisecond)
	if n := nodes[0].Nodes(); len(n) != 1 {
		t.Fatalf("pinned session was reaped: %v", n)
	}
	// A reaped session reopens on demand.
	request(t, nodes[0], actor.NewPID("n1@localhost", "echo"), wrapperspb.String("y"))
}
