package dist_test

import (
	"errors"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/cask-p2p/cask/actors"
	"github.com/cask-p2p/cask/dist"
	"github.com/cask-p2p/cask/transport"
	"github.com/cask-p2p/cask/transport/adapter"
)

// stopOnFailure is a guardian strategy that stops a failed actor (the
// default restarts it): its exit is abnormal.
var stopOnFailure = actor.NewOneForOneStrategy(0, 0, func(any) actor.Directive { return actor.StopDirective })

// workerProps answers "ping" with "pong", panics on "fail" (and its
// supervisor stops it) and stops itself on "stop".
func workerProps() *actor.Props {
	return actor.PropsFromFunc(worker, actor.WithGuardian(stopOnFailure))
}

// worker is workerProps' behaviour; a child actor with it is stopped on
// failure by its parent's supervisor strategy.
func worker(c actor.Context) {
	m, ok := c.Message().(*wrapperspb.StringValue)
	if !ok {
		return
	}
	switch m.Value {
	case "fail":
		panic("worker told to fail")
	case "stop":
		c.Stop(c.Self())
	default:
		if c.Sender() != nil {
			c.Respond(wrapperspb.String("pong"))
		}
	}
}

// trapper is an actor on n that traps exits and reports every message
// but the lifecycle ones to its probe.
func trapper(t *testing.T, n *actors.Node) *probe {
	t.Helper()
	p := &probe{ch: make(chan any, 4096)}
	p.PID = n.Root().Spawn(actors.TrapExits(actor.PropsFromFunc(func(c actor.Context) {
		switch m := c.Message().(type) {
		case *actor.Started, *actor.Stopping, *actor.Stopped, *actor.Restarting:
			return
		case *wrapperspb.StringValue:
			if m.Value == "ping" && c.Sender() != nil {
				c.Respond(wrapperspb.String("pong"))
				return
			}
		}
		p.ch <- c.Message()
	})))
	return p
}

// exited waits for the *dist.Exited about who.
func (p *probe) exited(t testing.TB, who *actor.PID) *dist.Exited {
	t.Helper()
	return p.next(t, "Exited "+who.String(), func(m any) bool {
		e, ok := m.(*dist.Exited)
		return ok && e.Who.Address == who.Address && e.Who.Id == who.Id
	}).(*dist.Exited)
}

func expectReason(t testing.TB, e *dist.Exited, want dist.ExitReason) {
	t.Helper()
	if e.Reason != want {
		t.Fatalf("Exited from %v: reason %q (%s), want %q", e.Who, e.Reason, e.Detail, want)
	}
}

func link(t testing.TB, n *actors.Node, a, b *actor.PID) {
	t.Helper()
	if err := n.Link(a, b); err != nil {
		t.Fatalf("link %v %v: %v", a, b, err)
	}
}

// linkSettled waits until the LinkRequest from a's node reached b: a
// request to b rides b's stream behind it.
func linkSettled(t *testing.T, n *actors.Node, b *actor.PID) {
	t.Helper()
	request(t, n, b, wrapperspb.String("ping"))
}

// alive checks that pid still answers.
func alive(t *testing.T, n *actors.Node, pid *actor.PID) {
	t.Helper()
	if got := request(t, n, pid, wrapperspb.String("ping")); got.(*wrapperspb.StringValue).Value != "pong" {
		t.Fatalf("%v answered %v", pid, got)
	}
}

// linkStateEmpty waits until the link tables of nodes are empty.
func linkStateEmpty(t *testing.T, nodes ...*actors.Node) {
	t.Helper()
	for _, n := range nodes {
		waitFor(t, waitTimeout, "empty link table on "+n.Name(), func() bool {
			ends, peers, _ := dist.LinkState(n.System())
			return ends == 0 && peers == 0
		})
	}
}

func TestLinkLocalActors(t *testing.T) {
	n := mesh(t, 1, actors.Config{})[0]
	a := n.Root().Spawn(workerProps())
	b := n.Root().Spawn(workerProps())
	trap := trapper(t, n)
	link(t, n, a, b)
	link(t, n, b, trap.PID)
	wb := watcher(t, n, b)

	n.Root().Send(a, wrapperspb.String("fail"))
	wb.terminated(t, b)
	e := trap.exited(t, b)
	expectReason(t, e, dist.ExitAbnormal) // b was stopped by a's exit signal
	t.Logf("chained exit: %s", e.Detail)
	linkStateEmpty(t, n)
}

func TestLinkLocalRemote(t *testing.T) {
	nodes := mesh(t, 2, actors.Config{})
	local := nodes[0].Root().Spawn(workerProps())
	remote := spawnNamed(t, nodes[1], workerProps(), "far")
	remotePID := actor.NewPID(nodes[1].Name(), "far")
	link(t, nodes[0], local, remotePID)
	linkSettled(t, nodes[0], remotePID)
	if ends, peers, _ := dist.LinkState(nodes[1].System()); ends != 1 || peers != 1 {
		t.Fatalf("n1's link table: %d actors, %d peers; want 1, 1", ends, peers)
	}
	wl := watcher(t, nodes[0], local)

	// The remote actor fails: the local one is stopped.
	nodes[1].Root().Send(remote, wrapperspb.String("fail"))
	wl.terminated(t, local)
	linkStateEmpty(t, nodes...)

	// And the other way: a local failure stops the remote actor.
	local2 := nodes[0].Root().Spawn(workerProps())
	remote2 := spawnNamed(t, nodes[1], workerProps(), "far2")
	link(t, nodes[0], local2, actor.NewPID(nodes[1].Name(), "far2"))
	linkSettled(t, nodes[0], actor.NewPID(nodes[1].Name(), "far2"))
	wr := watcher(t, nodes[1], remote2)
	nodes[0].Root().Send(local2, wrapperspb.String("fail"))
	wr.terminated(t, remote2)
	linkStateEmpty(t, nodes...)
}

// TestLinkRemoteRemote links two actors neither of which is on the node
// that drives the test: n0 spawns a worker on n1 and one on n2, has the
// n1 worker link itself with the n2 one, fails the n2 worker and sees the
// n1 worker go, through its watch.
func TestLinkRemoteRemote(t *testing.T) {
	nodes := mesh(t, 3, actors.Config{})
	for _, n := range nodes[1:] {
		n := n
		err := n.RegisterKind("linker", actor.PropsFromFunc(func(c actor.Context) {
			m, ok := c.Message().(*wrapperspb.StringValue)
			if !ok {
				return
			}
			switch {
			case m.Value == "fail":
				panic("told to fail")
			case len(m.Value) > 5 && m.Value[:5] == "link ":
				var addr, id string
				fmt.Sscanf(m.Value[5:], "%s %s", &addr, &id)
				err := n.Link(c.Self(), actor.NewPID(addr, id))
				c.Respond(wrapperspb.String(fmt.Sprint(err)))
			default:
				c.Respond(wrapperspb.String("pong"))
			}
		}, actor.WithGuardian(stopOnFailure)))
		if err != nil {
			t.Fatal(err)
		}
	}
	ctx := ctxTimeout(t)
	w1, err := nodes[0].SpawnRemote(ctx, nodes[1].Name(), "linker", "")
	if err != nil {
		t.Fatal(err)
	}
	w2, err := nodes[0].SpawnRemote(ctx, nodes[2].Name(), "linker", "")
	if err != nil {
		t.Fatal(err)
	}
	if got := request(t, nodes[0], w1, wrapperspb.String("link "+w2.Address+" "+w2.Id)); got.(*wrapperspb.StringValue).Value != "<nil>" {
		t.Fatalf("link: %v", got)
	}
	linkSettled(t, nodes[1], w2)
	watch := watcher(t, nodes[0], w1)
	request(t, nodes[0], w1, wrapperspb.String("ping")) // the watch is in place
	nodes[0].Root().Send(w2, wrapperspb.String("fail"))
	if tm := watch.terminated(t, w1); tm.Why != actor.TerminatedReason_Stopped {
		t.Fatalf("w1 Terminated %v", tm.Why)
	}
	linkStateEmpty(t, nodes...)
}

// TestLinkChainThreeNodes: a@n0 — b@n1 — c@n2. c fails; b is stopped by
// its exit signal and exits abnormally itself, which stops a.
func TestLinkChainThreeNodes(t *testing.T) {
	nodes := mesh(t, 3, actors.Config{})
	trap := trapper(t, nodes[0])
	a := nodes[0].Root().Spawn(workerProps())
	spawnNamed(t, nodes[1], workerProps(), "b")
	spawnNamed(t, nodes[2], workerProps(), "c")
	b := actor.NewPID(nodes[1].Name(), "b")
	c := actor.NewPID(nodes[2].Name(), "c")
	link(t, nodes[0], trap.PID, a)
	link(t, nodes[0], a, b)
	link(t, nodes[1], b, c)
	linkSettled(t, nodes[0], b)
	linkSettled(t, nodes[1], c)

	nodes[2].Root().Send(c, wrapperspb.String("fail"))
	e := trap.exited(t, a)
	expectReason(t, e, dist.ExitAbnormal)
	t.Logf("a's exit: %s", e.Detail)
	watchB := watcher(t, nodes[0], b)
	if tm := watchB.terminated(t, b); tm.Why != actor.TerminatedReason_NotFound {
		t.Fatalf("b still there: Terminated %v", tm.Why)
	}
	linkStateEmpty(t, nodes...)
}

func TestTrapExits(t *testing.T) {
	nodes := mesh(t, 2, actors.Config{})
	trap := trapper(t, nodes[0])
	spawnNamed(t, nodes[1], workerProps(), "w1")
	spawnNamed(t, nodes[1], workerProps(), "w2")
	w1 := actor.NewPID(nodes[1].Name(), "w1")
	w2 := actor.NewPID(nodes[1].Name(), "w2")
	link(t, nodes[0], trap.PID, w1)
	link(t, nodes[0], trap.PID, w2)
	linkSettled(t, nodes[0], w1)
	linkSettled(t, nodes[0], w2)

	nodes[0].Root().Send(w1, wrapperspb.String("fail"))
	e := trap.exited(t, w1)
	expectReason(t, e, dist.ExitAbnormal)
	t.Logf("abnormal exit: %s", e.Detail)
	// A trapping actor hears of normal exits too, and lives on.
	nodes[0].Root().Send(w2, wrapperspb.String("stop"))
	expectReason(t, trap.exited(t, w2), dist.ExitNormal)
	linkStateEmpty(t, nodes[1])

	// A normal exit does not stop a non-trapping partner.
	a := nodes[0].Root().Spawn(workerProps())
	spawnNamed(t, nodes[1], workerProps(), "w3")
	w3 := actor.NewPID(nodes[1].Name(), "w3")
	link(t, nodes[0], a, w3)
	linkSettled(t, nodes[0], w3)
	nodes[0].Root().Send(w3, wrapperspb.String("stop"))
	linkStateEmpty(t, nodes...)
	alive(t, nodes[0], a)
	// The trapper is still alive: it is linked again and hears noproc.
	link(t, nodes[0], trap.PID, w3)
	expectReason(t, trap.exited(t, w3), dist.ExitNoProc)
}

func TestLinkNoProc(t *testing.T) {
	nodes := mesh(t, 2, actors.Config{})
	trap := trapper(t, nodes[0])
	ghostRemote := actor.NewPID(nodes[1].Name(), "nobody")
	ghostLocal := actor.NewPID(nodes[0].Name(), "nobody")
	link(t, nodes[0], trap.PID, ghostRemote)
	expectReason(t, trap.exited(t, ghostRemote), dist.ExitNoProc)
	link(t, nodes[0], trap.PID, ghostLocal)
	expectReason(t, trap.exited(t, ghostLocal), dist.ExitNoProc)

	// A non-trapping actor linked with nothing is stopped.
	a := nodes[0].Root().Spawn(workerProps())
	w := watcher(t, nodes[0], a)
	link(t, nodes[0], a, ghostRemote)
	w.terminated(t, a)
	linkStateEmpty(t, nodes...)

	if err := nodes[0].Link(ghostRemote, actor.NewPID(nodes[1].Name(), "other")); !errors.Is(err, dist.ErrNotLocal) {
		t.Fatalf("linking two remote actors: %v, want ErrNotLocal", err)
	}
}

func TestUnlink(t *testing.T) {
	nodes := mesh(t, 2, actors.Config{})
	a := nodes[0].Root().Spawn(workerProps())
	spawnNamed(t, nodes[1], workerProps(), "w")
	w := actor.NewPID(nodes[1].Name(), "w")
	link(t, nodes[0], a, w)
	linkSettled(t, nodes[0], w)
	if err := nodes[0].Unlink(a, w); err != nil {
		t.Fatal(err)
	}
	linkStateEmpty(t, nodes...) // the LinkRelease reached n1
	watch := watcher(t, nodes[0], w)
	nodes[0].Root().Send(w, wrapperspb.String("fail"))
	watch.terminated(t, w)
	alive(t, nodes[0], a)

	// Unlinked from the remote side, a local failure no longer travels.
	b := nodes[0].Root().Spawn(workerProps())
	spawnNamed(t, nodes[1], workerProps(), "v")
	v := actor.NewPID(nodes[1].Name(), "v")
	link(t, nodes[1], v, b)
	linkSettled(t, nodes[1], b)
	if err := nodes[1].Unlink(v, b); err != nil {
		t.Fatal(err)
	}
	linkStateEmpty(t, nodes...)
	nodes[0].Root().Send(b, wrapperspb.String("fail"))
	alive(t, nodes[0], v)
}

// TestExitSignalAfterMessages: an actor sends messages to a linked,
// trapping actor on another node and then exits; the exit signal
// arrives after every one of them.
func TestExitSignalAfterMessages(t *testing.T) {
	nodes := mesh(t, 2, actors.Config{})
	trap := trapper(t, nodes[1])
	const count = 2000
	for _, how := range []string{"stop", "fail"} {
		sender := nodes[0].Root().Spawn(actor.PropsFromFunc(func(c actor.Context) {
			m, ok := c.Message().(*wrapperspb.StringValue)
			if !ok {
				return
			}
			for i := 0; i < count; i++ {
				c.Send(trap.PID, wrapperspb.Int64(int64(i)))
			}
			if m.Value == "fail" {
				panic("failing after the messages")
			}
			c.Stop(c.Self())
		}, actor.WithGuardian(stopOnFailure)))
		link(t, nodes[0], sender, trap.PID)
		linkSettled(t, nodes[0], trap.PID)
		nodes[0].Root().Send(sender, wrapperspb.String(how))
		next := int64(0)
		e := trap.next(t, "Exited", func(m any) bool {
			switch m := m.(type) {
			case *wrapperspb.Int64Value:
				if m.Value != next {
					t.Fatalf("%s: message %d, want %d", how, m.Value, next)
				}
				next++
			case *dist.Exited:
				return true
			}
			return false
		}).(*dist.Exited)
		if next != count {
			t.Fatalf("%s: Exited after %d of %d messages", how, next, count)
		}
		want := dist.ExitNormal
		if how == "fail" {
			want = dist.ExitAbnormal
		}
		expectReason(t, e, want)
	}
	linkStateEmpty(t, nodes...)
}

func registerWorker(t *testing.T, n *actors.Node, opts ...dist.KindOption) {
	t.Helper()
	if err := n.RegisterKind("worker", workerProps(), opts...); err != nil {
		t.Fatal(err)
	}
}

// TestSpawnLinkChildDiesWhenParentNodeStops: the child spawned with
// SpawnLink stops when its parent's node stops (reason shutdown).
func TestSpawnLinkChildDiesWhenParentNodeStops(t *testing.T) {
	nodes := mesh(t, 2, actors.Config{})
	registerWorker(t, nodes[1])
	parent := nodes[0].Root().Spawn(workerProps())
	child, err := nodes[0].SpawnRemote(ctxTimeout(t), nodes[1].Name(), "worker", "", dist.SpawnLink(parent))
	if err != nil {
		t.Fatal(err)
	}
	trap := trapper(t, nodes[1])
	link(t, nodes[1], trap.PID, child) // to learn the child's reason
	w := watcher(t, nodes[1], child)
	alive(t, nodes[1], child)

	nodes[0].Stop()
	w.terminated(t, child)
	e := trap.exited(t, child)
	expectReason(t, e, dist.ExitAbnormal) // stopped by its parent's exit
	t.Logf("child's exit: %s", e.Detail)
	linkStateEmpty(t, nodes[1])
}

// TestSpawnLinkChildDiesWhenBlackholed: the parent's node goes silent;
// once the session ends (the idle timeout ends the connection, then the
// session's grace window runs out) the child gets noconnection and stops,
// and so does the parent on its side.
func TestSpawnLinkChildDiesWhenBlackholed(t *testing.T) {
	fault := adapter.NewFaulty(transport.UDPAdapter{Addr: "127.0.0.1:0"})
	const idle, grace = 800 * time.Millisecond, time.Second
	dir := t.TempDir()
	a := launch(t, "a@localhost", actors.Config{Transport: transport.Config{Adapter: fault, IdleTimeout: idle}, Dist: dist.Config{DiscoveryDir: dir, SessionGrace: grace}})
	b := launch(t, "b@localhost", actors.Config{Transport: transport.Config{IdleTimeout: idle}, Dist: dist.Config{DiscoveryDir: dir, SessionGrace: grace}})
	registerWorker(t, b)
	parentTrap := trapper(t, a)
	child, err := a.SpawnRemote(ctxTimeout(t), b.Name(), "worker", "", dist.SpawnLink(parentTrap.PID))
	if err != nil {
		t.Fatal(err)
	}
	w := watcher(t, b, child)
	alive(t, a, child)
	start := time.Now()
	fault.SetBlackhole(true)
	w.terminated(t, child)
	t.Logf("child stopped %v after the blackhole (idle timeout %v, grace %v)", time.Since(start).Round(time.Millisecond), idle, grace)
	if waited := time.Since(start); waited < idle+grace/2 {
		t.Fatalf("child stopped %v after the blackhole, before the session could end", waited)
	}
	expectReason(t, parentTrap.exited(t, child), dist.ExitNoConnection)
	linkStateEmpty(t, a, b)
}

// TestSpawnLinkBeforeFirstMessage: a child that fails on its very first
// message (Started) still reaches its parent: the link is in place before.
func TestSpawnLinkBeforeFirstMessage(t *testing.T) {
	nodes := mesh(t, 2, actors.Config{})
	if err := nodes[1].RegisterKind("doomed", actor.PropsFromFunc(func(c actor.Context) {
		if _, ok := c.Message().(*actor.Started); ok {
			panic("fails at once")
		}
	}, actor.WithGuardian(stopOnFailure))); err != nil {
		t.Fatal(err)
	}
	if err := nodes[1].RegisterKind("quitter", actor.PropsFromFunc(func(c actor.Context) {
		if _, ok := c.Message().(*actor.Started); ok {
			c.Stop(c.Self())
		}
	})); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		trap := trapper(t, nodes[0])
		child, err := nodes[0].SpawnRemote(ctxTimeout(t), nodes[1].Name(), "doomed", "", dist.SpawnLink(trap.PID), dist.SpawnMonitor(trap.PID))
		if err != nil {
			t.Fatal(err)
		}
		// The exit signal and the monitor's Terminated travel on
		// different streams: take them in either order.
		var e *dist.Exited
		var tm *actor.Terminated
		for e == nil || tm == nil {
			switch m := trap.next(t, "Exited and Terminated", func(any) bool { return true }).(type) {
			case *dist.Exited:
				e = m
			case *actor.Terminated:
				tm = m
			}
		}
		expectReason(t, e, dist.ExitAbnormal)
		if !e.Who.Equal(child) || !tm.Who.Equal(child) || tm.Why != actor.TerminatedReason_Stopped {
			t.Fatalf("child %v: Exited from %v, Terminated %v from %v; want Stopped from the child", child, e.Who, tm.Why, tm.Who)
		}
		named := fmt.Sprintf("quitter-%d", i)
		child, err = nodes[0].SpawnRemote(ctxTimeout(t), nodes[1].Name(), "quitter", named, dist.SpawnMonitor(trap.PID))
		if err != nil {
			t.Fatal(err)
		}
		if child.Id != named {
			t.Fatalf("child %v, want the name %s", child, named)
		}
		if tm := trap.terminated(t, child); tm.Why != actor.TerminatedReason_Stopped {
			t.Fatalf("monitor: Terminated %v, want Stopped", tm.Why)
		}
	}
	linkStateEmpty(t, nodes...)
	// A link or monitor must be an actor of the spawning node.
	_, err := nodes[0].SpawnRemote(ctxTimeout(t), nodes[1].Name(), "quitter", "", dist.SpawnLink(actor.NewPID(nodes[1].Name(), "x")))
	if !errors.Is(err, dist.ErrNotLocal) {
		t.Fatalf("SpawnLink with a remote PID: %v, want ErrNotLocal", err)
	}
}

func TestRegisterKindAllowList(t *testing.T) {
	nodes := mesh(t, 3, actors.Config{})
	registerWorker(t, nodes[0], dist.AllowSpawnBy(nodes[1].Name()))
	pid, err := nodes[1].SpawnRemote(ctxTimeout(t), nodes[0].Name(), "worker", "")
	if err != nil {
		t.Fatalf("allowed node: %v", err)
	}
	alive(t, nodes[1], pid)
	_, err = nodes[2].SpawnRemote(ctxTimeout(t), nodes[0].Name(), "worker", "")
	if !errors.Is(err, dist.ErrSpawnNotAllowed) {
		t.Fatalf("node not on the allow-list: %v, want ErrSpawnNotAllowed", err)
	}
	t.Logf("refused: %v", err)
	if err := nodes[0].RegisterKind("bad", workerProps(), dist.AllowSpawnBy("nonode")); err == nil {
		t.Fatal("an allow-list with a bad node name was accepted")
	}
}

// TestLinkShutdownWhenParentStops: children of a link-aware parent
// (TrapExits) exit with shutdown when the parent stops.
func TestLinkShutdownWhenParentStops(t *testing.T) {
	nodes := mesh(t, 2, actors.Config{})
	trap := trapper(t, nodes[1])
	kids := make(chan *actor.PID, 1)
	parent := nodes[0].Root().Spawn(actors.TrapExits(actor.PropsFromFunc(func(c actor.Context) {
		if _, ok := c.Message().(*actor.Started); ok {
			kids <- c.Spawn(actor.PropsFromFunc(worker))
		}
	})))
	kid := <-kids
	link(t, nodes[0], kid, trap.PID)
	linkSettled(t, nodes[0], trap.PID)
	nodes[0].Root().Stop(parent)
	expectReason(t, trap.exited(t, kid), dist.ExitShutdown)
	linkStateEmpty(t, nodes...)
}

// TestLinkFailureStorm: 1,000 linked pairs across two nodes; every
// remote side fails at once. Every local side stops and both link tables
// end empty. Run twice: the second round starts from the goroutines the
// first left (sessions, streams), and ends where it started.
func TestLinkFailureStorm(t *testing.T) {
	nodes := mesh(t, 2, actors.Config{})
	const pairs = 1000
	var baseline int
	for round := 0; round < 2; round++ {
		if round == 1 {
			baseline = runtime.NumGoroutine()
		}
		local := make([]*actor.PID, pairs)
		remote := make([]*actor.PID, pairs)
		stopped := make(chan struct{}, pairs)
		for i := range local {
			local[i] = nodes[0].Root().Spawn(actor.PropsFromFunc(func(c actor.Context) {
				if _, ok := c.Message().(*actor.Stopped); ok {
					stopped <- struct{}{}
				}
			}))
			remote[i] = spawnNamed(t, nodes[1], workerProps(), fmt.Sprintf("storm-%d-%d", round, i))
		}
		for i := range local {
			link(t, nodes[0], local[i], actor.NewPID(nodes[1].Name(), remote[i].Id))
		}
		waitFor(t, waitTimeout, "1,000 links on n1", func() bool {
			ends, _, _ := dist.LinkState(nodes[1].System())
			return ends == pairs
		})
		start := time.Now()
		for _, r := range remote {
			nodes[1].Root().Send(r, wrapperspb.String("fail"))
		}
		deadline := time.After(30 * time.Second)
		for i := 0; i < pairs; i++ {
			select {
			case <-stopped:
			case <-deadline:
				t.Fatalf("round %d: %d of %d linked actors stopped", round, i, pairs)
			}
		}
		t.Logf("round %d: %d linked actors stopped %v after their partners failed", round, pairs, time.Since(start).Round(time.Millisecond))
		linkStateEmpty(t, nodes...)
	}
	waitFor(t, waitTimeout, "goroutines back", func() bool { return runtime.NumGoroutine() <= baseline+3 })
	t.Logf("goroutines: %d before the second round, %d after it", baseline, runtime.NumGoroutine())
}

// TestSpawnLinkNeedsLinksCapability: a peer that does not announce links
// (an older build, which would spawn the actor unlinked) is not asked to
// spawn with a link or a monitor; a plain spawn still works.
func TestSpawnLinkNeedsLinksCapability(t *testing.T) {
	start := func(name string, older bool, peers map[string]string) (*dist.Manager, *actor.ActorSystem) {
		var before func(*dist.Manager)
		if older {
			before = dist.WithoutLinks
		}
		m, system, _ := startBareManager(t, name, peers, before)
		return m, system
	}
	old, _ := start("old@localhost", true, nil)
	if err := old.RegisterKind("worker", workerProps()); err != nil {
		t.Fatal(err)
	}
	cur, curSystem := start("new@localhost", false, map[string]string{"old@localhost": old.AdvertisedAddr()})
	parent := curSystem.Root.Spawn(workerProps())
	_, err := cur.SpawnRemote(ctxTimeout(t), "old@localhost", "worker", "", dist.SpawnLink(parent))
	if !errors.Is(err, dist.ErrSpawnFailed) {
		t.Fatalf("SpawnLink to an older peer: %v, want ErrSpawnFailed", err)
	}
	t.Logf("refused: %v", err)
	if _, err := cur.SpawnRemote(ctxTimeout(t), "old@localhost", "worker", ""); err != nil {
		t.Fatalf("plain spawn: %v", err)
	}
	if ends, peers, _ := dist.LinkState(curSystem); ends != 0 || peers != 0 {
		t.Fatalf("link table after the refused spawn: %d actors, %d peers", ends, peers)
	}
}

// TestLinkUnreachablePeer: a link to an actor on a node that cannot be
// reached ends with noconnection at once.
func TestLinkUnreachablePeer(t *testing.T) {
	n := mesh(t, 1, actors.Config{})[0]
	trap := trapper(t, n)
	ghost := actor.NewPID("ghost@localhost", "anyone")
	link(t, n, trap.PID, ghost)
	e := trap.exited(t, ghost)
	expectReason(t, e, dist.ExitNoConnection)
	t.Logf("exit: %s", e.Detail)
	linkStateEmpty(t, n)
	if err := n.Link(trap.PID, actor.NewPID("nonode", "x")); !errors.Is(err, dist.ErrBadNodeName) {
		t.Fatalf("link to a bad node name: %v, want ErrBadNodeName", err)
	}
}

// TestLinkKeepsSessionFromIdleReaping: a session that carries a link is
// not reaped as idle (that would end the link with noconnection); once
// the link is gone, it is.
func TestLinkKeepsSessionFromIdleReaping(t *testing.T) {
	nodes := mesh(t, 2, actors.Config{Dist: dist.Config{ReapIdleAfter: 100 * time.Millisecond, ReapMinAge: time.Millisecond}})
	a := nodes[0].Root().Spawn(workerProps())
	spawnNamed(t, nodes[1], workerProps(), "w")
	w := actor.NewPID(nodes[1].Name(), "w")
	link(t, nodes[0], a, w)
	linkSettled(t, nodes[0], w)
	time.Sleep(time.Second) // ten idle periods
	if got := nodes[0].Nodes(); len(got) != 1 {
		t.Fatalf("sessions of n0 with a link across: %v", got)
	}
	alive(t, nodes[0], a)
	if err := nodes[0].Unlink(a, w); err != nil {
		t.Fatal(err)
	}
	linkStateEmpty(t, nodes...)
	waitFor(t, waitTimeout, "the idle session reaped", func() bool { return len(nodes[0].Nodes()) == 0 })
}
