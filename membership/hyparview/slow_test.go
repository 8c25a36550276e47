package hyparview

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// slowNet wires a few States through a network where everything takes
// delay rounds: a link opens delay rounds after Open, a message arrives
// delay rounds after it was sent, in order. It is the loaded machine of
// the cluster test (a connect or a round trip longer than two shuffle
// periods) in a form that replays exactly.
type slowNet struct {
	nodes map[string]*State
	queue []slowItem
	round int
	delay int
	start time.Time
	// lateRefusals counts accepting replies answered with Disconnect:
	// links both sides had agreed on, undone.
	lateRefusals int
}

type slowItem struct {
	due    int
	to     string
	linkUp string // the other end of a link that opened, or ""
	msg    Message
}

func (n *slowNet) now() time.Time { return n.start.Add(time.Duration(n.round) * time.Second) }

func (n *slowNet) apply(from string, out Output) {
	for _, o := range out.Open {
		n.queue = append(n.queue, slowItem{due: n.round + n.delay, to: from, linkUp: o})
	}
	for _, e := range out.Send {
		n.queue = append(n.queue, slowItem{due: n.round + n.delay, to: e.To, msg: e.Msg})
	}
}

// deliver hands over everything due by the current round, in order.
func (n *slowNet) deliver() {
	for len(n.queue) > 0 && n.queue[0].due <= n.round {
		it := n.queue[0]
		n.queue = n.queue[1:]
		s := n.nodes[it.to]
		if it.linkUp != "" {
			n.apply(it.to, s.LinkUp(it.linkUp, n.now()))
			continue
		}
		out := s.Step(it.msg, n.now())
		if it.msg.Type == NeighborReply && it.msg.Accepted && slices.ContainsFunc(out.Send, func(e Envelope) bool {
			return e.To == it.msg.From && e.Msg.Type == Disconnect
		}) {
			n.lateRefusals++
		}
		n.apply(it.to, out)
	}
}

// runSlowNet joins size nodes one per round through the first, runs
// rounds rounds (Tick on every node, then delivery), then delivers what
// is in flight without further Ticks.
func runSlowNet(t *testing.T, size, rounds, delay int) *slowNet {
	t.Helper()
	n := &slowNet{nodes: make(map[string]*State), delay: delay, start: t0}
	var names []string
	for i := range size {
		name := fmt.Sprintf("n%02d", i)
		s, err := New(Config{Self: name, Rand: rand.New(rand.NewPCG(7, uint64(i)))})
		if err != nil {
			t.Fatal(err)
		}
		n.nodes[name] = s
		names = append(names, name)
	}
	for n.round = 1; n.round <= rounds; n.round++ {
		if n.round < size {
			joiner := names[n.round]
			n.apply(joiner, n.nodes[joiner].Join(names[0], n.now()))
		}
		for _, name := range names {
			n.apply(name, n.nodes[name].Tick(n.now()))
		}
		n.deliver()
	}
	for quiet := n.round + 50*delay; len(n.queue) > 0; n.round++ {
		if n.round > quiet {
			t.Fatalf("delay %d: still %d items in flight %d rounds after the last Tick (first %+v)",
				delay, len(n.queue), 50*delay, n.queue[0])
		}
		n.deliver()
	}
	for _, name := range names {
		checkInvariants(t, n.nodes[name])
	}
	return n
}

// §4 on a slow network: when opening a link and a round trip take longer
// than the two Ticks a Neighbor request may wait for its answer, the
// views still settle, symmetric and connected. Before requests waited
// for their link and late acceptances were taken, a delay of three or
// five rounds kept Neighbor requests, acceptances and the Disconnects
// answering them going round long after the last Tick, and a delay of
// one round undid 74 agreed links (5 now, each for want of room).
func TestSlowNetwork_ViewsSettle(t *testing.T) {
	for _, delay := range []int{1, 3, 5} {
		t.Run(fmt.Sprintf("delay%d", delay), func(t *testing.T) {
			n := runSlowNet(t, 16, 80, delay)
			links := 0
			for name, s := range n.nodes {
				a := s.ActiveView()
				if len(a) == 0 {
					t.Errorf("%s is isolated", name)
				}
				for _, p := range a {
					if !n.nodes[p].isActive(name) {
						t.Errorf("%s holds %s but not the other way round", name, p)
					}
				}
				links += len(a)
			}
			reached := map[string]bool{"n00": true}
			for queue := []string{"n00"}; len(queue) > 0; queue = queue[1:] {
				for _, p := range n.nodes[queue[0]].ActiveView() {
					if !reached[p] {
						reached[p] = true
						queue = append(queue, p)
					}
				}
			}
			if len(reached) != len(n.nodes) {
				t.Errorf("overlay partitioned: %d of %d nodes reachable from n00", len(reached), len(n.nodes))
			}
			t.Logf("delay %d rounds: %d active links, %d accepting replies answered with Disconnect", delay, links/2, n.lateRefusals)
		})
	}
}
