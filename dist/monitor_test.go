package dist_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/cask-p2p/cask/actors"
	"github.com/cask-p2p/cask/dist"
	"github.com/cask-p2p/cask/transport"
)

func TestMonitorNodeUpAndPeerShutdown(t *testing.T) {
	b := startNode(t, "b@localhost", actors.Config{Dist: dist.Config{DisableDNS: true}})
	a := startNode(t, "a@localhost", actors.Config{Dist: dist.Config{DisableDNS: true, Peers: peersOf(b)}})

	before := monitorProbe(t, a, b.Name())
	before.none(t, "NodeUp before any session", func(m any) bool { _, ok := m.(*dist.NodeUp); return ok })
	if err := a.Connect(ctxTimeout(t), b.Name()); err != nil {
		t.Fatal(err)
	}
	up := before.nodeUp(t, b.Name())
	if up.Incarnation != b.Incarnation() {
		t.Errorf("NodeUp.Incarnation = %v, want b's %v", up.Incarnation, b.Incarnation())
	}

	// Registered while the session is up: NodeUp at once.
	after := monitorProbe(t, a, b.Name())
	after.nodeUp(t, b.Name())

	// The acceptor side reports the session too.
	onB := monitorProbe(t, b, a.Name())
	if u := onB.nodeUp(t, a.Name()); u.Incarnation != a.Incarnation() {
		t.Errorf("b's NodeUp.Incarnation = %v, want a's %v", u.Incarnation, a.Incarnation())
	}

	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []*probe{before, after} {
		down := p.nodeDown(t, b.Name())
		if down.Reason != dist.ReasonPeerShutdown {
			t.Errorf("NodeDown.Reason = %q (err %v), want %q", down.Reason, down.Err, dist.ReasonPeerShutdown)
		}
	}
	if n := a.Nodes(); len(n) != 0 {
		t.Errorf("a.Nodes() after b stopped = %v, want none", n)
	}
}

func TestMonitorNodeConnectFailed(t *testing.T) {
	a := startNode(t, "a@localhost", actors.Config{Dist: dist.Config{DisableDNS: true}})
	p := monitorProbe(t, a, "ghost@localhost")
	err := a.Connect(ctxTimeout(t), "ghost@localhost")
	if err == nil {
		t.Fatal("Connect to an unknown node succeeded")
	}
	down := p.nodeDown(t, "ghost@localhost")
	if down.Reason != dist.ReasonConnectFailed {
		t.Errorf("NodeDown.Reason = %q, want %q", down.Reason, dist.ReasonConnectFailed)
	}
	if !errors.Is(down.Err, dist.ErrUnknownNode) {
		t.Errorf("NodeDown.Err = %v, want it to match %v", down.Err, dist.ErrUnknownNode)
	}
}

// TestMonitorNodeConnectFailedDial: the node is known but nobody listens.
func TestMonitorNodeConnectFailedDial(t *testing.T) {
	gone := startNode(t, "gone@localhost", actors.Config{Dist: dist.Config{DisableDNS: true}})
	addr := gone.Addr().String()
	if err := gone.Stop(); err != nil {
		t.Fatal(err)
	}
	a := startNode(t, "a@localhost", actors.Config{
		Transport: transport.Config{
			HandshakeTimeout: 300 * time.Millisecond,
		},
		Dist: dist.Config{
			DisableDNS:     true,
			Peers:          map[string]string{"gone@localhost": addr},
			ConnectTimeout: 500 * time.Millisecond,
		},
	})
	p := monitorProbe(t, a, "gone@localhost")
	err := a.Connect(ctxTimeout(t), "gone@localhost")
	if !errors.Is(err, dist.ErrConnectFailed) {
		t.Errorf("Connect to a dead address = %v, want %v", err, dist.ErrConnectFailed)
	}
	if down := p.nodeDown(t, "gone@localhost"); down.Reason != dist.ReasonConnectFailed {
		t.Errorf("NodeDown.Reason = %q, want %q", down.Reason, dist.ReasonConnectFailed)
	}
}

func TestMonitorAllNodes(t *testing.T) {
	b := startNode(t, "b@localhost", actors.Config{Dist: dist.Config{DisableDNS: true}})
	c := startNode(t, "c@localhost", actors.Config{Dist: dist.Config{DisableDNS: true}})
	a := startNode(t, "a@localhost", actors.Config{Dist: dist.Config{DisableDNS: true, Peers: peersOf(b, c)}})
	if err := a.Connect(ctxTimeout(t), b.Name()); err != nil {
		t.Fatal(err)
	}
	all := monitorProbe(t, a, "")
	all.nodeUp(t, b.Name()) // already up
	if err := a.Connect(ctxTimeout(t), c.Name()); err != nil {
		t.Fatal(err)
	}
	all.nodeUp(t, c.Name())
	if err := a.Connect(ctxTimeout(t), "ghost@localhost"); err == nil {
		t.Fatal("Connect to ghost succeeded")
	}
	if d := all.nodeDown(t, "ghost@localhost"); d.Reason != dist.ReasonConnectFailed {
		t.Errorf("ghost: NodeDown.Reason = %q, want %q", d.Reason, dist.ReasonConnectFailed)
	}
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if d := all.nodeDown(t, c.Name()); d.Reason != dist.ReasonPeerShutdown {
		t.Errorf("c: NodeDown.Reason = %q, want %q", d.Reason, dist.ReasonPeerShutdown)
	}

	// After DemonitorNode, nothing more.
	a.DemonitorNode("", all.PID)
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	eventually(t, waitTimeout, func() bool { return len(a.Nodes()) == 0 }, "a drops b")
	all.none(t, "NodeDown after DemonitorNode", isNodeDown)
}

// A new monitor hears the state the manager has published, not the
// endpoint's: a controller stores its session before its NodeUp reaches the
// manager, so a monitor registered in between used to get NodeUp twice
// (once as the current state, once as the event). Here the events are
// handed to the manager directly, with no endpoint behind them.
func TestMonitorNodeHearsPublishedState(t *testing.T) {
	m, system, _ := startBareManager(t, "a@localhost", nil, nil)
	const x = "x@localhost"
	events := make(chan any, 16)
	monitor := func() *actor.PID {
		pid := system.Root.Spawn(actor.PropsFromFunc(func(c actor.Context) {
			switch c.Message().(type) {
			case *dist.NodeUp, *dist.NodeDown, *dist.NodeUnreachable, *dist.NodeReachable:
				events <- c.Message()
			}
		}))
		t.Cleanup(func() { system.Root.Stop(pid) })
		m.MonitorNode(x, pid)
		return pid
	}
	expect := func(what string, want ...any) {
		t.Helper()
		for _, w := range want {
			select {
			case got := <-events:
				if fmt.Sprintf("%T %+v", got, got) != fmt.Sprintf("%T %+v", w, w) {
					t.Fatalf("%s: got %T %+v, want %T %+v", what, got, got, w, w)
				}
			case <-time.After(waitTimeout):
				t.Fatalf("%s: no %T", what, w)
			}
		}
		select {
		case got := <-events:
			t.Fatalf("%s: unexpected %T %+v", what, got, got)
		case <-time.After(200 * time.Millisecond):
		}
	}

	up := &dist.NodeUp{Node: x, Incarnation: 7}
	dist.PublishNodeEvent(m, x, up)
	monitor()
	expect("registered after NodeUp", up)

	lost := &dist.NodeUnreachable{Node: x, Err: errors.New("idle timeout")}
	dist.PublishNodeEvent(m, x, lost)
	expect("the first monitor, connection lost", lost)
	monitor()
	expect("registered while unreachable", up, lost)

	dist.PublishNodeEvent(m, x, &dist.NodeReachable{Node: x})
	expect("the two monitors, resumed", &dist.NodeReachable{Node: x}, &dist.NodeReachable{Node: x})
	monitor()
	expect("registered after resumption", up)

	down := &dist.NodeDown{Node: x, Reason: dist.ReasonConnectionLost}
	dist.PublishNodeEvent(m, x, down)
	expect("the three monitors, down", down, down, down)
	monitor()
	expect("registered after NodeDown")
}
