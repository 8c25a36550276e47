package dist_test

import (
	"fmt"
	"testing"

	"github.com/asynkron/protoactor-go/actor"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/cask-p2p/cask/actors"
	"github.com/cask-p2p/cask/dist"
	"github.com/cask-p2p/cask/internal/testhome"
)

// protoactorIgnores lists goroutines of protoactor-go that outlive
// ActorSystem.Shutdown:
//
//   - the dead-letter log throttle (actor.NewThrottle's timer goroutine;
//     its name is actor.NewDeadLetter.NewThrottle.func4.1 when inlined,
//     as in normal builds, actor.NewThrottle.func1.1 when not). The first
//     dead letter of an interval starts a goroutine that waits one
//     DeadLetterThrottleInterval (1 s by default; actors.Config has no
//     knob for it) on a ticker and then returns. Shutdown does not stop
//     it, so a test that ends less than a second after a dead letter
//     leaves one behind for up to a second.
var protoactorIgnores = []goleak.Option{
	goleak.IgnoreTopFunction("github.com/asynkron/protoactor-go/actor.NewDeadLetter.NewThrottle.func4.1"),
	goleak.IgnoreTopFunction("github.com/asynkron/protoactor-go/actor.NewThrottle.func1.1"),
}

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(testhome.M(m), protoactorIgnores...)
}

// TestLeakThreeNodes starts three nodes in a full mesh, sends traffic in
// every direction (requests, watches, remote spawns, dead letters), stops
// them, and checks that no goroutine the test started is left.
func TestLeakThreeNodes(t *testing.T) {
	baseline := goleak.IgnoreCurrent()

	names := []string{"a@localhost", "b@localhost", "c@localhost"}
	nodes := make([]*actors.Node, 0, len(names))
	for _, name := range names {
		peers := map[string]string{}
		for _, n := range nodes {
			peers[n.Name()] = n.Addr().String()
		}
		n := startNode(t, name, actors.Config{Dist: dist.Config{DisableDNS: true, Peers: peers}})
		spawnEcho(t, n, "echo")
		if err := n.RegisterKind("echo", echoProps()); err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, n)
	}
	// Later nodes know earlier ones; earlier ones learn later ones only
	// through the inbound session, so dial from later to earlier first.
	for i := len(nodes) - 1; i >= 0; i-- {
		for j := 0; j < i; j++ {
			if err := nodes[i].Connect(ctxTimeout(t), nodes[j].Name()); err != nil {
				t.Fatalf("%s → %s: %v", nodes[i].Name(), nodes[j].Name(), err)
			}
		}
	}
	for _, from := range nodes {
		for _, to := range nodes {
			if from == to {
				continue
			}
			for k := 0; k < 20; k++ {
				mustEcho(t, from, actor.NewPID(to.Name(), "echo"), fmt.Sprint(k))
			}
			pid, err := from.SpawnRemote(ctxTimeout(t), to.Name(), "echo", "")
			if err != nil {
				t.Fatalf("spawn %s → %s: %v", from.Name(), to.Name(), err)
			}
			mustEcho(t, from, pid, "spawned")
			w := watcher(t, from, pid)
			from.Root().Poison(pid)
			w.terminated(t, pid)
			// A watch left open across the Stop below, and a dead letter.
			watcher(t, from, actor.NewPID(to.Name(), "echo"))
			from.Root().Send(actor.NewPID(to.Name(), "echo"), struct{}{})
			from.Root().Send(actor.NewPID(to.Name(), "nobody"), wrapperspb.String("lost"))
		}
	}
	for _, n := range nodes {
		if err := n.Stop(); err != nil {
			t.Errorf("stop %s: %v", n.Name(), err)
		}
	}
	goleak.VerifyNone(t, append([]goleak.Option{baseline}, protoactorIgnores...)...)
}
