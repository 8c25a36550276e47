package testkit_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/cask-p2p/cask/actors"
	"github.com/cask-p2p/cask/actors/testkit"
	"github.com/cask-p2p/cask/dist"
	"github.com/cask-p2p/cask/transport"
	"github.com/cask-p2p/cask/transport/adapter"
	"github.com/cask-p2p/cask/transport/identity"
)

func spawnEcho(t *testing.T, n *actors.Node) {
	t.Helper()
	if _, err := n.Root().SpawnNamed(actor.PropsFromFunc(func(c actor.Context) {
		if m, ok := c.Message().(*wrapperspb.StringValue); ok {
			c.Respond(m)
		}
	}), "echo"); err != nil {
		t.Fatal(err)
	}
}

func rtt(t *testing.T, from *actors.Node, to string) time.Duration {
	t.Helper()
	t0 := time.Now()
	if _, err := from.Root().RequestFuture(actor.NewPID(to, "echo"), wrapperspb.String("x"), 10*time.Second).Result(); err != nil {
		t.Fatalf("request %s → %s: %v", from.Name(), to, err)
	}
	return time.Since(t0)
}

func TestClusterTalksAndDelaysOneLink(t *testing.T) {
	c := testkit.NewCluster(t, 3, testkit.ClusterConfig{})
	for _, n := range c.Nodes() {
		spawnEcho(t, n)
	}
	c.Link(0, 1).SetDelay(100 * time.Millisecond)
	if d := rtt(t, c.Node(0), c.Node(1).Name()); d < 200*time.Millisecond {
		t.Fatalf("round trip over the delayed link took %v, want ≥ 200ms", d)
	}
	rtt(t, c.Node(0), c.Node(2).Name()) // open the connection first
	if d := rtt(t, c.Node(0), c.Node(2).Name()); d > 100*time.Millisecond {
		t.Fatalf("round trip over a clean link took %v", d)
	}
	c.Link(1, 0).SetDelay(0)
	// Packets sent before the delay was cleared (such as the dist
	// layer's acknowledgement of the last reply, a few ms after it) keep
	// their delay, and the link keeps packets in order: one round trip
	// lets them drain.
	rtt(t, c.Node(0), c.Node(1).Name())
	if d := rtt(t, c.Node(0), c.Node(1).Name()); d > 100*time.Millisecond {
		t.Fatalf("round trip after clearing the delay took %v", d)
	}
}

func TestClusterBlackholeLosesTheConnection(t *testing.T) {
	c := testkit.NewCluster(t, 2, testkit.ClusterConfig{Node: actors.Config{Transport: transport.Config{IdleTimeout: 600 * time.Millisecond},
		Dist: dist.Config{SessionGrace: 600 * time.Millisecond}}})
	spawnEcho(t, c.Node(1))
	rtt(t, c.Node(0), c.Node(1).Name())
	probe := testkit.NewProbe(t, c.Node(0).System())
	c.Node(0).MonitorNode(c.Node(1).Name(), probe.PID())
	testkit.ExpectMsgType[*dist.NodeUp](probe, 5*time.Second)
	c.Link(0, 1).SetBlackhole(true)
	// The connection is lost first; the session ends when its grace
	// window runs out with no new connection.
	testkit.ExpectMsgType[*dist.NodeUnreachable](probe, 5*time.Second)
	down := testkit.ExpectMsgType[*dist.NodeDown](probe, 5*time.Second)
	if down.Reason != dist.ReasonConnectionLost {
		t.Fatalf("NodeDown reason %q", down.Reason)
	}
	c.Link(0, 1).SetBlackhole(false)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Node(0).Connect(ctx, c.Node(1).Name()); err != nil {
		t.Fatal(err)
	}
}

func TestClusterLinkIsOneHandleForBothDirections(t *testing.T) {
	c := testkit.NewCluster(t, 2, testkit.ClusterConfig{})
	if c.Link(0, 1) != c.Link(1, 0) {
		t.Fatal("Link(0, 1) and Link(1, 0) are different handles")
	}
	c.Link(1, 0).SetLoss(7)
	c.Link(1, 0).SetDelay(time.Second)
	if got, want := c.Link(0, 1).Faults(), (adapter.Faults{Loss: 1, Delay: time.Second}); got != want {
		t.Fatalf("Faults() = %+v, want %+v (loss clamped to 1)", got, want)
	}
}

// A cluster has a secret of its own: a node started with the default
// admission (the user's cookie) cannot join it.
func TestClusterHasItsOwnSecret(t *testing.T) {
	c := testkit.NewCluster(t, 2, testkit.ClusterConfig{})
	spawnEcho(t, c.Node(1))
	rtt(t, c.Node(0), c.Node(1).Name())
	outsider, err := actors.Start(context.Background(), actors.Config{Name: "outsider@localhost",
		Dist: dist.Config{DisableDNS: true, Peers: map[string]string{c.Node(1).Name(): c.Node(1).Addr().String()}}})
	if err != nil {
		t.Fatal(err)
	}
	defer outsider.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := outsider.Connect(ctx, c.Node(1).Name()); !errors.Is(err, identity.ErrClusterSecret) {
		t.Fatalf("outsider with the default cookie joined the cluster: %v", err)
	}
}
