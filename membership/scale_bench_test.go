package membership_test

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkScale measures in-process clusters (real QUIC on 127.0.0.1,
// one contact, contact-only discovery: a node is told only the
// contact's address and learns the others' from membership) of each
// size in CASK_SCALE_SIZES (default "25,50,100,200"), with the shuffle
// period CASK_SCALE_SHUFFLE (default 1s) and idle sessions reaped after
// CASK_SCALE_REAP (default 5s, as Dist.ReapIdleAfter and ReapMinAge;
// their 60 s defaults keep the sessions shuffles open on demand to nodes
// outside the active view for up to two minutes, so goroutines and heap
// grow until the reaper runs, which says nothing about a leak). Per size
// it reports
//
//   - converge-s: from the first Start to an overlay that stays healthy
//     (overlayProblem finds nothing) for a shuffle period;
//   - msgs/node/round: membership messages sent per node per shuffle
//     period over the 10 periods after convergence;
//   - steady-rejoins: joins started through lost nodes or contacts
//     (Config.ReconnectPeriod) over those 10 periods, all nodes; zero
//     in a healthy cluster;
//   - heap-KiB/node and goroutines/node: the process's live heap (after
//     a GC) and goroutine count, less what they were before the first
//     Start, divided by the size;
//
// then churn: for CASK_SCALE_CHURN (default 3m), 20% of the nodes per
// minute are replaced (one stopped, a new name started joining through
// the contact, at even intervals; the contact stays), and it reports
//
//   - refill-s: from the last replacement to a healthy overlay again;
//     the figures below are taken after twice CASK_SCALE_REAP more (or 10
//     shuffle periods, whichever is longer), as the first ones are;
//   - heap-KiB/node-after and goroutines/node-after, as above;
//   - rejoins-after: joins through lost nodes or contacts over the
//     whole run, all nodes still running (replaced nodes leave when
//     they stop, so they are not lost: expect zero).
//
// It is not a test: go test ./... does not run it. Run it with
//
//	CASK_SCALE_SIZES=25,50,100 CASK_SCALE_CHURN=1m go test -run XXX -bench Scale -benchtime 1x -timeout 60m ./membership/
func BenchmarkScale(b *testing.B) {
	sizes := []int{25, 50, 100, 200}
	if env := os.Getenv("CASK_SCALE_SIZES"); env != "" {
		sizes = nil
		for f := range strings.SplitSeq(env, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 2 {
				b.Fatalf("CASK_SCALE_SIZES %q: want sizes of 2 or more, comma-separated", env)
			}
			sizes = append(sizes, n)
		}
	}
	shuffle := envDuration(b, "CASK_SCALE_SHUFFLE", time.Second)
	churn := envDuration(b, "CASK_SCALE_CHURN", 3*time.Minute)
	reap := envDuration(b, "CASK_SCALE_REAP", 5*time.Second)
	for _, size := range sizes {
		b.Run(fmt.Sprintf("nodes=%d", size), func(b *testing.B) {
			for b.Loop() {
				scaleRun(b, size, shuffle, churn, reap)
			}
		})
	}
}

func envDuration(b *testing.B, name string, def time.Duration) time.Duration {
	env := os.Getenv(name)
	if env == "" {
		return def
	}
	d, err := time.ParseDuration(env)
	if err != nil || d < 0 {
		b.Fatalf("%s %q: want a duration", name, env)
	}
	return d
}

// usage is the live heap after a GC and the goroutine count.
func usage() (heap uint64, goroutines int) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc, runtime.NumGoroutine()
}

func perNode(heap0, heap uint64, g0, g, size int) (kib, gs float64) {
	return float64(int64(heap)-int64(heap0)) / 1024 / float64(size), float64(g-g0) / float64(size)
}

// waitStable polls until overlayProblem finds nothing for one shuffle
// period without a break and returns when that period began.
func waitStable(b *testing.B, nodes []*testNode, shuffle, timeout time.Duration) time.Time {
	deadline := time.Now().Add(timeout)
	var since time.Time
	for {
		now := time.Now()
		if now.After(deadline) {
			b.Fatalf("overlay of %d nodes not healthy for a shuffle period within %v: %s", len(nodes), timeout, overlayProblem(nodes))
		}
		switch problem := overlayProblem(nodes); {
		case problem != "":
			since = time.Time{}
		case since.IsZero():
			since = now
		case now.Sub(since) >= shuffle:
			return since
		}
		time.Sleep(shuffle / 5)
	}
}

func scaleRun(b *testing.B, size int, shuffle, churn, reap time.Duration) {
	heap0, g0 := usage()
	c := newCluster(b)
	c.contactOnly, c.shufflePeriod, c.reapIdle = true, shuffle, reap
	start := time.Now()
	c.start(0)
	for i := 1; i < size; i++ {
		c.start(i, nodeName(0))
	}
	converged := waitStable(b, c.nodes, shuffle, 5*time.Minute).Sub(start)

	const steadyRounds = 10
	var sent0, rounds0, rejoins0 uint64
	for _, n := range c.nodes {
		s := stats(b, n)
		sent0, rounds0, rejoins0 = sent0+s.Sent, rounds0+s.Rounds, rejoins0+s.Rejoins
	}
	time.Sleep(steadyRounds * shuffle)
	var sent1, rounds1, rejoins1 uint64
	for _, n := range c.nodes {
		s := stats(b, n)
		sent1, rounds1, rejoins1 = sent1+s.Sent, rounds1+s.Rounds, rejoins1+s.Rejoins
	}
	heap, g := usage()
	kib, gs := perNode(heap0, heap, g0, g, size)
	b.ReportMetric(converged.Seconds(), "converge-s")
	b.ReportMetric(float64(sent1-sent0)/float64(rounds1-rounds0), "msgs/node/round")
	b.ReportMetric(float64(rejoins1-rejoins0), "steady-rejoins")
	b.ReportMetric(kib, "heap-KiB/node")
	b.ReportMetric(gs, "goroutines/node")

	if churn > 0 {
		replacements := max(1, int(float64(size)*0.2*churn.Minutes()))
		every := churn / time.Duration(replacements)
		next := size
		for r := range replacements {
			time.Sleep(every)
			// Replace a node other than the contact (index 0), in turn.
			victim := 1 + r%(len(c.nodes)-1)
			old := c.nodes[victim]
			c.nodes = slices.Delete(c.nodes, victim, victim+1)
			if err := old.Stop(); err != nil {
				b.Fatalf("stop %s: %v", old.Name(), err)
			}
			c.start(next, nodeName(0))
			next++
		}
		last := time.Now()
		refilled := waitStable(b, c.nodes, shuffle, 5*time.Minute).Sub(last)
		// Let the reaper close what the churn left idle, as before the
		// first measurement (which comes 10 periods after convergence).
		time.Sleep(max(2*reap, steadyRounds*shuffle))
		heap, g := usage()
		kib, gs := perNode(heap0, heap, g0, g, size)
		b.ReportMetric(max(0, refilled.Seconds()), "refill-s")
		b.ReportMetric(float64(replacements), "replaced")
		var rejoins uint64
		for _, n := range c.nodes {
			rejoins += stats(b, n).Rejoins
		}
		b.ReportMetric(float64(rejoins), "rejoins-after")
		b.ReportMetric(kib, "heap-KiB/node-after")
		b.ReportMetric(gs, "goroutines/node-after")
	}

	stopAll(c.nodes)
}
