package membership_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/cask-p2p/cask/membership"
)

// BenchmarkGroupJoinSpread measures how fast a process-group join is
// seen by every node, on in-process clusters (real QUIC on 127.0.0.1,
// contact-only discovery, shuffle period 1s, idle sessions reaped after
// 5s, as BenchmarkScale; the default AntiEntropyPeriod and
// HeartbeatTimeout) of each size in CASK_GROUPS_SIZES (default
// "25,100,200"). Once the overlay is healthy and has been quiet for 10
// shuffle periods, it makes CASK_GROUPS_JOINS (default 10) joins, one at
// a time, each of a new actor on a random node, and reports
//
//   - healthy-s: first Start until the overlay was healthy (as
//     BenchmarkScale's "converged");
//   - first-join-ms: the first join, until every node lists the member
//     (the Plumtree tree is not built yet: it floods);
//   - join-ms and join-max-ms: the mean and the slowest of the others;
//   - bcast-msgs/node/join: Plumtree messages (Gossip, IHave, Graft,
//     Prune) sent per node per join, over the joins after the first,
//     counted once the last IHave and Graft timers have run;
//   - startup-bcast-msgs/node and ae-msgs/node/s: broadcast messages
//     sent per node while the cluster formed (every node's state spreads
//     once) and anti-entropy messages per node per second while quiet.
//
// It is not a test: go test ./... does not run it. Run it with
//
//	CASK_GROUPS_SIZES=25,100,200 go test -run XXX -bench GroupJoinSpread -benchtime 1x -timeout 60m ./membership/
func BenchmarkGroupJoinSpread(b *testing.B) {
	sizes := []int{25, 100, 200}
	if env := os.Getenv("CASK_GROUPS_SIZES"); env != "" {
		sizes = nil
		for f := range strings.SplitSeq(env, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 2 {
				b.Fatalf("CASK_GROUPS_SIZES %q: want sizes of 2 or more, comma-separated", env)
			}
			sizes = append(sizes, n)
		}
	}
	joins := 10
	if env := os.Getenv("CASK_GROUPS_JOINS"); env != "" {
		n, err := strconv.Atoi(env)
		if err != nil || n < 2 {
			b.Fatalf("CASK_GROUPS_JOINS %q: want 2 or more", env)
		}
		joins = n
	}
	for _, size := range sizes {
		b.Run(fmt.Sprintf("nodes=%d", size), func(b *testing.B) {
			for b.Loop() {
				groupSpreadRun(b, size, joins)
			}
		})
	}
}

func broadcastCounts(b *testing.B, nodes []*testNode) (bcast, ae uint64) {
	for _, n := range nodes {
		s := stats(b, n)
		bcast += s.BroadcastSent
		ae += s.AntiEntropySent
	}
	return bcast, ae
}

// flaps sums the refutations and suspicions of all nodes.
func flaps(b *testing.B, nodes []*testNode) (refuted, suspected, payloads uint64) {
	for _, n := range nodes {
		s := stats(b, n)
		refuted += s.Refuted
		suspected += s.Suspected
		payloads += s.BroadcastPayloads
	}
	return refuted, suspected, payloads
}

func groupSpreadRun(b *testing.B, size, joins int) {
	const shuffle = time.Second
	c := newCluster(b)
	c.contactOnly, c.shufflePeriod, c.reapIdle = true, shuffle, 5*time.Second
	// The default anti-entropy timings: the tests' (500 ms, 10 s) cost a
	// 200-node process more CPU than a loaded 2-core machine has to
	// spare, and starved sessions time out.
	c.antiEntropy, c.heartbeat = membership.DefaultAntiEntropyPeriod, membership.DefaultHeartbeatTimeout
	start0 := time.Now()
	c.start(0)
	for i := 1; i < size; i++ {
		c.start(i, nodeName(0))
	}
	// The phases are logged as they pass, so that a run that fails
	// (a loaded machine) still says how far it got.
	b.Logf("%d nodes started after %s", size, time.Since(start0).Round(time.Millisecond))
	healthy := waitStable(b, c.nodes, shuffle, 10*time.Minute).Sub(start0)
	b.Logf("overlay healthy after %s", healthy.Round(time.Millisecond))
	time.Sleep(10 * shuffle)
	startup, ae0 := broadcastCounts(b, c.nodes)
	quiet0 := time.Now()

	rng := rand.New(rand.NewPCG(uint64(size), 16))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var took []time.Duration
	var msgs uint64
	for j := range joins {
		before, _ := broadcastCounts(b, c.nodes)
		n := c.nodes[rng.IntN(len(c.nodes))]
		pid := n.Root().Spawn(actor.PropsFromFunc(func(actor.Context) {}))
		start := time.Now()
		if err := n.JoinGroup(ctx, "bench", pid); err != nil {
			b.Fatal(err)
		}
		for !seenEverywhere(c.nodes, pid) {
			if time.Since(start) > 2*time.Minute {
				b.Fatalf("join %d not seen everywhere within 2m", j)
			}
			time.Sleep(2 * time.Millisecond)
		}
		took = append(took, time.Since(start))
		b.Logf("join %d seen everywhere after %s", j, took[j].Round(time.Millisecond))
		// Let the IHave batches and any Graft timers run out.
		time.Sleep(2 * time.Second)
		after, _ := broadcastCounts(b, c.nodes)
		if j > 0 {
			msgs += after - before
		}
	}
	_, ae1 := broadcastCounts(b, c.nodes)
	quiet := time.Since(quiet0)

	rest := took[1:]
	var sum time.Duration
	for _, d := range rest {
		sum += d
	}
	b.ReportMetric(healthy.Seconds(), "healthy-s")
	b.ReportMetric(float64(took[0].Microseconds())/1000, "first-join-ms")
	b.ReportMetric(float64(sum.Microseconds())/1000/float64(len(rest)), "join-ms")
	b.ReportMetric(float64(slices.Max(rest).Microseconds())/1000, "join-max-ms")
	b.ReportMetric(float64(msgs)/float64(len(rest))/float64(size), "bcast-msgs/node/join")
	b.ReportMetric(float64(startup)/float64(size), "startup-bcast-msgs/node")
	b.ReportMetric(float64(ae1-ae0)/float64(size)/quiet.Seconds(), "ae-msgs/node/s")
	refuted, suspected, payloads := flaps(b, c.nodes)
	b.ReportMetric(float64(refuted), "refuted")
	b.ReportMetric(float64(suspected), "suspected")
	b.ReportMetric(float64(payloads)/float64(size), "payloads/node")

	stopAll(c.nodes)
}

func seenEverywhere(nodes []*testNode, pid *actor.PID) bool {
	for _, n := range nodes {
		if !slices.ContainsFunc(n.GroupMembers("bench"), func(p *actor.PID) bool { return p.Equal(pid) }) {
			return false
		}
	}
	return true
}
