package membership_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"
)

// Bounds of TestOverlay_PartitionHeal (scaled by raceSlowdown): a half
// settles once the cut sessions are declared down (testIdleTimeout plus
// the default SessionGrace, 15 s) and its views refilled from its own
// nodes; after the heal a reconnect attempt comes within 1.5
// testReconnectPeriods, a dist reconnect backoff may hold the connect
// for up to 5 s, and the join's random walk and the views' repair take a
// few shuffle periods. Both are generous for a loaded 2-core machine.
const (
	halvesSettleBound = testIdleTimeout + 15*time.Second + 45*time.Second
	overlayHealBound  = 40 * time.Second
)

// startHalves starts 2×half nodes whose ContactNodes stay within their
// half (node 0 and node half have none, the others list the first node
// of their half), and bridges the halves with one Join from node half
// to node 0. So only what nodes learn while the overlay is whole can
// bring the halves back together.
func startHalves(t *testing.T, c *cluster, half int) (left, right []*testNode) {
	t.Helper()
	for i := range 2 * half {
		var contacts []string
		switch {
		case i == 0 || i == half:
		case i < half:
			contacts = []string{nodeName(0)}
		default:
			contacts = []string{nodeName(half)}
		}
		n := c.start(i, contacts...)
		if i < half {
			left = append(left, n)
		} else {
			right = append(right, n)
		}
		if i == half {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second*raceSlowdown)
			err := n.Join(ctx, nodeName(0))
			cancel()
			if err != nil {
				t.Fatalf("bridge at start: %v", err)
			}
		}
	}
	return left, right
}

// cutBetween blackholes (on) or restores the paths between two sets of
// nodes, both ways.
func cutBetween(left, right []*testNode, on bool) {
	for _, a := range left {
		for _, b := range right {
			a.fault.Dest(b.Addr()).SetBlackhole(on)
			b.fault.Dest(a.Addr()).SetBlackhole(on)
		}
	}
}

// crossSessions describes a live session from a node of one set to a
// node of the other, or returns "".
func crossSessions(left, right []*testNode) string {
	names := func(ns []*testNode) []string {
		var s []string
		for _, n := range ns {
			s = append(s, n.Name())
		}
		return s
	}
	for _, pair := range [][2][]*testNode{{left, right}, {right, left}} {
		others := names(pair[1])
		for _, n := range pair[0] {
			for _, p := range n.Nodes() {
				if slices.Contains(others, p) {
					return fmt.Sprintf("%s still has a session to %s", n.Name(), p)
				}
			}
		}
	}
	return ""
}

// sumStats adds up the reconnect counters of nodes.
func sumStats(t *testing.T, nodes []*testNode) (reconnects, rejoins uint64) {
	for _, n := range nodes {
		s := stats(t, n)
		reconnects += s.Reconnects
		rejoins += s.Rejoins
	}
	return reconnects, rejoins
}

// TestOverlay_PartitionHeal: twelve nodes cut into two halves of six
// until every session across the cut is declared down; each half
// settles into an overlay of its own. When the cut heals, with no Join
// from anyone, the nodes that lost peers across the cut reach them again
// (Config.ReconnectPeriod) and join through them: within
// overlayHealBound the twelve form one connected overlay over their
// active views, symmetric, with no peer that is not a live session.
// Before the cut, a steady cluster makes no reconnect attempt.
func TestOverlay_PartitionHeal(t *testing.T) {
	c := newCluster(t)
	left, right := startHalves(t, c, 6)
	nodes := append(slices.Clone(left), right...)
	waitHealthy(t, nodes, 60*time.Second)

	// Steady: five reconnect periods without a rejoin.
	r0, j0 := sumStats(t, nodes)
	time.Sleep(5 * testReconnectPeriod)
	r1, j1 := sumStats(t, nodes)
	if j1 != j0 {
		t.Errorf("a steady cluster rejoined %d times in %v (%d reconnect attempts)", j1-j0, 5*testReconnectPeriod, r1-r0)
	}
	t.Logf("steady cluster: %d reconnect attempts, %d rejoins in %v", r1-r0, j1-j0, 5*testReconnectPeriod)

	cutBetween(left, right, true)
	start := time.Now()
	bound := halvesSettleBound * raceSlowdown
	for {
		problem := crossSessions(left, right)
		if problem == "" {
			if p := overlayProblem(left); p != "" {
				problem = "left half: " + p
			} else if p := overlayProblem(right); p != "" {
				problem = "right half: " + p
			}
		}
		if problem == "" {
			break
		}
		if time.Since(start) > bound {
			t.Fatalf("halves not settled within %v: %s", bound, problem)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("cut: sessions across declared down, each half an overlay of its own after %v", time.Since(start).Round(time.Millisecond))
	// Stay cut for a few reconnect periods: the attempts fail, the halves
	// stay apart and whole.
	time.Sleep(3 * testReconnectPeriod)
	if p := overlayProblem(left); p != "" {
		t.Fatalf("left half while cut: %s", p)
	}
	if p := overlayProblem(right); p != "" {
		t.Fatalf("right half while cut: %s", p)
	}
	lost := 0
	for _, n := range nodes {
		lost += stats(t, n).Lost
	}
	if lost == 0 {
		t.Fatalf("no node remembers a node lost across the cut")
	}
	_, rejoinsBefore := sumStats(t, nodes)

	cutBetween(left, right, false)
	healed := time.Now()
	waitHealthy(t, nodes, overlayHealBound)
	_, rejoinsAfter := sumStats(t, nodes)
	t.Logf("healed: one overlay of %d nodes after %v, %d rejoins through lost nodes (%d remembered lost at the heal)",
		len(nodes), time.Since(healed).Round(time.Millisecond), rejoinsAfter-rejoinsBefore, lost)
	if rejoinsAfter == rejoinsBefore {
		t.Errorf("the overlay healed without a rejoin through a lost node")
	}
	for _, n := range nodes {
		n.rec.check(t, n.Name())
	}
}
