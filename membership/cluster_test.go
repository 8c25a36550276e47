package membership_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.uber.org/goleak"

	"github.com/cask-p2p/cask/actors"
	"github.com/cask-p2p/cask/dist"
	"github.com/cask-p2p/cask/internal/testhome"
	"github.com/cask-p2p/cask/membership"
	"github.com/cask-p2p/cask/transport"
	"github.com/cask-p2p/cask/transport/adapter"
)

// protoactor's dead-letter throttle goroutine outlives ActorSystem.Shutdown
// by up to a second (see dist/leak_test.go).
var protoactorIgnores = []goleak.Option{
	goleak.IgnoreTopFunction("github.com/asynkron/protoactor-go/actor.NewDeadLetter.NewThrottle.func4.1"),
	goleak.IgnoreTopFunction("github.com/asynkron/protoactor-go/actor.NewThrottle.func1.1"),
}

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(testhome.M(m), protoactorIgnores...)
}

// Test timings: failures are detected within IdleTimeout, a membership
// round is testShufflePeriod. A connect (QUIC, identity and dist
// handshakes) slows down under the race detector like everything else:
// with 24 nodes on a shared machine it took about 2 s, so an unscaled
// testConnectTimeout failed most of them just before they completed.
const (
	testShufflePeriod  = 250 * time.Millisecond
	testIdleTimeout    = 3 * time.Second
	testConnectTimeout = 2 * time.Second
	// testAntiEntropyPeriod is the group anti-entropy period of test
	// nodes.
	testAntiEntropyPeriod = time.Second
	// testHeartbeatTimeout leaves out a node whose heartbeat stopped: 20
	// anti-entropy periods.
	testHeartbeatTimeout = 20 * time.Second
	// testReconnectPeriod is how often a test node tries a lost node:
	// four shuffle periods, as the default is three.
	testReconnectPeriod = time.Second
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// testNode is a node of a test cluster with its fault adapter and an
// event recorder subscribed to its membership actor.
type testNode struct {
	*actors.Node
	fault *adapter.Faulty
	rec   *recorder
}

// cluster starts and stops test nodes sharing a discovery directory.
type cluster struct {
	tb    testing.TB
	dir   string
	nodes []*testNode
	// contactOnly: no discovery directory; a node's static map holds
	// only its contacts' addresses, so it finds the other nodes through
	// the addresses membership messages carry.
	contactOnly bool
	// shufflePeriod, when set, replaces testShufflePeriod.
	shufflePeriod time.Duration
	// reapIdle, when set, is every node's Dist.ReapIdleAfter and
	// Dist.ReapMinAge.
	reapIdle time.Duration
	// antiEntropy and heartbeat, when set, replace testAntiEntropyPeriod
	// and testHeartbeatTimeout.
	antiEntropy, heartbeat time.Duration
	// reconnect, when set, replaces testReconnectPeriod (negative: off).
	reconnect time.Duration
}

func newCluster(tb testing.TB) *cluster {
	c := &cluster{tb: tb, dir: tb.TempDir()}
	// One cleanup stops the nodes still in the cluster at the end, so a
	// node a test removed (and stopped) is not kept reachable until then:
	// per-node cleanups held every replaced node's actor system, which
	// BenchmarkScale read as heap growth under churn.
	tb.Cleanup(func() {
		for _, n := range c.nodes {
			_ = n.Stop()
		}
	})
	return c
}

// stopAll stops nodes at once and waits for every Stop.
func stopAll(nodes []*testNode) {
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = n.Stop()
		}()
	}
	wg.Wait()
}

func nodeName(i int) string { return fmt.Sprintf("n%02d@localhost", i) }

// start starts node i joining through contacts, with a recorder
// subscribed from the start. The node is stopped at the end of the test
// unless removed from c.nodes, which makes stopping it the remover's job.
func (c *cluster) start(i int, contacts ...string) *testNode {
	c.tb.Helper()
	fault := adapter.NewFaulty(transport.UDPAdapter{Addr: "127.0.0.1:0"})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dir, peers := c.dir, map[string]string{}
	if c.contactOnly {
		dir = ""
		for _, other := range c.nodes {
			if slices.Contains(contacts, other.Name()) {
				peers[other.Name()] = other.Addr().String()
			}
		}
	}
	shuffle := testShufflePeriod
	if c.shufflePeriod != 0 {
		shuffle = c.shufflePeriod
	}
	antiEntropy, heartbeat := testAntiEntropyPeriod, testHeartbeatTimeout
	if c.antiEntropy != 0 {
		antiEntropy = c.antiEntropy
	}
	if c.heartbeat != 0 {
		heartbeat = c.heartbeat
	}
	reconnect := testReconnectPeriod
	if c.reconnect != 0 {
		reconnect = c.reconnect
	}
	n, err := actors.Start(ctx, actors.Config{
		Name:   nodeName(i),
		Logger: quietLogger(),
		Membership: membership.Config{
			ContactNodes:  contacts,
			ShufflePeriod: shuffle,
			BackoffMin:    250 * time.Millisecond,
			BackoffMax:    2 * time.Second,
			Seed:          uint64(i + 1),
			// Group states are compared with a peer twice a second.
			AntiEntropyPeriod: antiEntropy,
			HeartbeatTimeout:  heartbeat,
			ReconnectPeriod:   reconnect,
		},
		Transport: transport.Config{
			Adapter:     fault,
			IdleTimeout: testIdleTimeout,
		},
		Dist: dist.Config{
			DiscoveryDir:   dir,
			Peers:          peers,
			DisableDNS:     true,
			ConnectTimeout: testConnectTimeout * raceSlowdown,
			ShutdownGrace:  200 * time.Millisecond,
			ReapIdleAfter:  c.reapIdle,
			ReapMinAge:     c.reapIdle,
		},
	})
	if err != nil {
		c.tb.Fatalf("start %s: %v", nodeName(i), err)
	}
	tn := &testNode{Node: n, fault: fault, rec: newRecorder(n.System())}
	n.Subscribe(tn.rec.pid)
	c.nodes = append(c.nodes, tn)
	return tn
}

// recorder is a subscriber that checks the event stream as it comes: a
// PeerUp only for a peer not up, a PeerDown only for a peer up, Joined
// only when not joined.
type recorder struct {
	pid *actor.PID

	mu       sync.Mutex
	up       map[string]bool
	events   []any
	joined   int
	left     int
	problems []string
}

func newRecorder(system *actor.ActorSystem) *recorder {
	r := &recorder{up: make(map[string]bool)}
	r.pid = system.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		r.mu.Lock()
		defer r.mu.Unlock()
		switch ev := ctx.Message().(type) {
		case *membership.PeerUp:
			if r.up[ev.Node] {
				r.problems = append(r.problems, "duplicate PeerUp "+ev.Node)
			}
			r.up[ev.Node] = true
			r.events = append(r.events, ev)
		case *membership.PeerDown:
			if !r.up[ev.Node] {
				r.problems = append(r.problems, fmt.Sprintf("PeerDown %s (%s) without PeerUp", ev.Node, ev.Reason))
			}
			delete(r.up, ev.Node)
			r.events = append(r.events, ev)
		case *membership.Joined:
			r.joined++
			r.events = append(r.events, ev)
		case *membership.Left:
			r.left++
			r.events = append(r.events, ev)
		}
	}))
	return r
}

// upSet returns the peers the recorder believes up, sorted.
func (r *recorder) upSet() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var s []string
	for n := range r.up {
		s = append(s, n)
	}
	slices.Sort(s)
	return s
}

// downs returns the PeerDown events seen from index from on.
func (r *recorder) downsSince(from int) []*membership.PeerDown {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*membership.PeerDown
	for _, ev := range r.events[min(from, len(r.events)):] {
		if d, ok := ev.(*membership.PeerDown); ok {
			out = append(out, d)
		}
	}
	return out
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.events)
}

func (r *recorder) check(tb testing.TB, name string) {
	tb.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.problems {
		tb.Errorf("%s: subscriber saw %s", name, p)
	}
}

// overlayProblem returns why the active views of nodes are not a healthy
// overlay, or "" if they are: every node has a peer, every peer is one
// of nodes, views are symmetric and within ActiveSize, each active view
// is a subset of Nodes() and matches what the subscriber was told, and
// the overlay is connected.
func overlayProblem(nodes []*testNode) string {
	byName := make(map[string]*testNode, len(nodes))
	views := make(map[string][]string, len(nodes))
	for _, n := range nodes {
		byName[n.Name()] = n
		views[n.Name()] = n.ActiveView()
	}
	for _, n := range nodes {
		v := views[n.Name()]
		switch {
		case len(v) == 0:
			return n.Name() + " is isolated"
		case len(v) > membership.DefaultActiveSize:
			return fmt.Sprintf("%s has %d active peers", n.Name(), len(v))
		case !slices.Equal(v, n.rec.upSet()):
			return fmt.Sprintf("%s: active view %v, subscriber told %v", n.Name(), v, n.rec.upSet())
		}
		live := n.Nodes()
		for _, p := range v {
			if byName[p] == nil {
				return fmt.Sprintf("%s holds %s, not a live member", n.Name(), p)
			}
			if !slices.Contains(views[p], n.Name()) {
				return fmt.Sprintf("%s holds %s but not the other way round", n.Name(), p)
			}
			if !slices.Contains(live, p) {
				return fmt.Sprintf("%s holds %s without a channel (Nodes %v)", n.Name(), p, live)
			}
		}
	}
	seen := map[string]bool{nodes[0].Name(): true}
	queue := []string{nodes[0].Name()}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		for _, p := range views[cur] {
			if !seen[p] {
				seen[p] = true
				queue = append(queue, p)
			}
		}
	}
	if len(seen) != len(nodes) {
		return fmt.Sprintf("overlay is partitioned: %d of %d nodes reachable", len(seen), len(nodes))
	}
	return ""
}

// waitHealthy polls until overlayProblem has found nothing for one
// shuffle period without a break, and returns when that period began.
// The timeout is scaled by raceSlowdown.
func waitHealthy(tb testing.TB, nodes []*testNode, timeout time.Duration) time.Time {
	tb.Helper()
	start := time.Now()
	timeout *= raceSlowdown
	deadline := start.Add(timeout)
	var healthySince time.Time
	for {
		now := time.Now()
		if now.After(deadline) {
			tb.Fatalf("overlay not healthy for a shuffle period within %v: %s", timeout, overlayProblem(nodes))
		}
		switch problem := overlayProblem(nodes); {
		case problem != "":
			healthySince = time.Time{}
		case healthySince.IsZero():
			healthySince = now
		case now.Sub(healthySince) >= testShufflePeriod:
			return healthySince
		}
		time.Sleep(testShufflePeriod / 10)
	}
}

// stats asks a node's membership actor for its counters.
func stats(tb testing.TB, n *testNode) *membership.Stats {
	tb.Helper()
	res, err := n.Root().RequestFuture(n.Membership(), &membership.GetStats{}, 5*time.Second).Result()
	if err != nil {
		tb.Fatalf("%s: GetStats: %v", n.Name(), err)
	}
	return res.(*membership.Stats)
}
