package membership_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/cask-p2p/cask/dist"
	"github.com/cask-p2p/cask/membership"
)

// Agreement bounds of the group and name tests. A change spreads by
// Plumtree in well under a second on loopback; a node blackholed is
// declared down once its sessions end, after the transport's IdleTimeout
// (testIdleTimeout, 3 s) and the dist layer's SessionGrace (15 s by
// default), and its groups are dropped everywhere by the broadcast that
// follows; a healed node is back after its rejoin and one anti-entropy
// exchange. The bounds are generous for a loaded machine (two cores
// shared with other test runs); waitFor scales them under the race
// detector, as waitHealthy does.
const (
	spreadBound = 15 * time.Second
	downBound   = testIdleTimeout + dist.DefaultSessionGrace + 20*time.Second
	healBound   = 45 * time.Second
)

// startGroupCluster starts n nodes: node 0 with no contact, the others
// through node 0, then (for a second way in) node n/2; it waits for a
// healthy overlay.
func startGroupCluster(t *testing.T, n int) (*cluster, []*testNode) {
	t.Helper()
	c := newCluster(t)
	var nodes []*testNode
	for i := range n {
		var contacts []string
		switch {
		case i == 0:
		case i == n/2:
			contacts = []string{nodeName(0)}
		default:
			contacts = []string{nodeName(0), nodeName(n / 2)}
		}
		nodes = append(nodes, c.start(i, contacts...))
	}
	waitHealthy(t, nodes, 60*time.Second)
	return c, nodes
}

// joinOneEach spawns an idle actor on every node and joins it to group;
// it returns them in the order of nodes.
func joinOneEach(ctx context.Context, t *testing.T, nodes []*testNode, group string) []*actor.PID {
	t.Helper()
	pids := make([]*actor.PID, len(nodes))
	for i, n := range nodes {
		pids[i] = spawnIdle(n)
		if err := n.JoinGroup(ctx, group, pids[i]); err != nil {
			t.Fatalf("%s: JoinGroup: %v", n.Name(), err)
		}
	}
	return pids
}

func spawnIdle(n *testNode) *actor.PID {
	return n.Root().Spawn(actor.PropsFromFunc(func(actor.Context) {}))
}

func pidList(pids []*actor.PID) string {
	var s []string
	for _, p := range pids {
		s = append(s, p.Address+"/"+p.Id)
	}
	return "[" + strings.Join(s, " ") + "]"
}

func sortedPIDs(pids ...*actor.PID) []*actor.PID {
	out := slices.Clone(pids)
	slices.SortFunc(out, func(a, b *actor.PID) int {
		if c := strings.Compare(a.Address, b.Address); c != 0 {
			return c
		}
		return strings.Compare(a.Id, b.Id)
	})
	return out
}

func samePIDs(a, b []*actor.PID) bool {
	return slices.EqualFunc(a, b, func(x, y *actor.PID) bool { return x.Address == y.Address && x.Id == y.Id })
}

// waitFor polls cond (which returns "" when satisfied) until timeout and
// returns how long it took.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() string) time.Duration {
	t.Helper()
	return waitForDiag(t, timeout, what, cond, nil)
}

// waitForDiag is waitFor that adds diag's report when it fails.
func waitForDiag(t *testing.T, timeout time.Duration, what string, cond, diag func() string) time.Duration {
	t.Helper()
	timeout *= raceSlowdown
	start := time.Now()
	for {
		problem := cond()
		if problem == "" {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			if diag != nil {
				problem += "\n" + diag()
			}
			t.Fatalf("%s: not within %v: %s", what, timeout, problem)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitGroup waits until every node sees exactly want in group.
func waitGroup(t *testing.T, nodes []*testNode, group string, timeout time.Duration, want ...*actor.PID) time.Duration {
	t.Helper()
	want = sortedPIDs(want...)
	d := waitForDiag(t, timeout, fmt.Sprintf("group %q on %d nodes", group, len(nodes)), func() string {
		var wrong []string
		for _, n := range nodes {
			if got := n.GroupMembers(group); !samePIDs(got, want) {
				wrong = append(wrong, fmt.Sprintf("%s sees %s", n.Name(), pidList(got)))
			}
		}
		if len(wrong) == 0 {
			return ""
		}
		return fmt.Sprintf("%s; want %s", strings.Join(wrong, "; "), pidList(want))
	}, func() string { return groupDiag(t, nodes) })
	t.Logf("group %q: %d nodes agree on %d members after %v", group, len(nodes), len(want), d.Round(time.Millisecond))
	return d
}

// waitName waits until every node resolves name to want (nil: unknown).
func waitName(t *testing.T, nodes []*testNode, name string, timeout time.Duration, want *actor.PID) time.Duration {
	t.Helper()
	d := waitFor(t, timeout, fmt.Sprintf("name %q on %d nodes", name, len(nodes)), func() string {
		for _, n := range nodes {
			got, ok := n.Whereis(name)
			switch {
			case want == nil && ok:
				return fmt.Sprintf("%s still resolves it to %s", n.Name(), got)
			case want != nil && (!ok || !got.Equal(want)):
				return fmt.Sprintf("%s resolves it to %v (%v), want %s", n.Name(), got, ok, want)
			}
		}
		return ""
	})
	t.Logf("name %q: %d nodes agree on %v after %v", name, len(nodes), want, d.Round(time.Millisecond))
	return d
}

// probe records the group and name events an actor receives.
type probe struct {
	pid *actor.PID

	mu      sync.Mutex
	changes []*membership.GroupChanged
	lost    []*membership.NameLost
}

func newProbe(n *testNode) *probe {
	p := &probe{}
	p.pid = n.Root().Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		p.mu.Lock()
		defer p.mu.Unlock()
		switch m := ctx.Message().(type) {
		case *membership.GroupChanged:
			p.changes = append(p.changes, m)
		case *membership.NameLost:
			p.lost = append(p.lost, m)
		}
	}))
	return p
}

// members replays the GroupChanged events into a member set.
func (p *probe) members() []*actor.PID {
	p.mu.Lock()
	defer p.mu.Unlock()
	set := map[string]*actor.PID{}
	for _, c := range p.changes {
		for _, j := range c.Joined {
			set[j.String()] = j
		}
		for _, l := range c.Left {
			delete(set, l.String())
		}
	}
	var out []*actor.PID
	for _, v := range set {
		out = append(out, v)
	}
	return sortedPIDs(out...)
}

func (p *probe) lostNames() []*membership.NameLost {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.lost)
}

func without(nodes []*testNode, drop ...*testNode) []*testNode {
	return slices.DeleteFunc(slices.Clone(nodes), func(n *testNode) bool { return slices.Contains(drop, n) })
}

// TestGroups_SixNodes: members joining, leaving, stopping; a node that
// stops gracefully; a node blackholed until its sessions are declared
// down, then healed. Every step: all live nodes agree, a monitor's
// events add up to the same set.
func TestGroups_SixNodes(t *testing.T) {
	c, nodes := startGroupCluster(t, 6)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	mon := newProbe(nodes[5])
	nodes[5].MonitorGroup("workers", mon.pid)
	workers := joinOneEach(ctx, t, nodes, "workers")
	waitGroup(t, nodes, "workers", spreadBound, workers...)
	// The monitor's events are messages: they may still be on their way
	// when every node's snapshot agrees.
	waitFor(t, spreadBound, "monitor events", func() string {
		if got := mon.members(); !samePIDs(got, sortedPIDs(workers...)) {
			return "monitor events add up to " + pidList(got)
		}
		return ""
	})

	// Bad input.
	if err := nodes[0].JoinGroup(ctx, "workers", workers[1]); !errors.Is(err, membership.ErrNotLocal) {
		t.Fatalf("joining another node's actor: %v, want ErrNotLocal", err)
	}
	if err := nodes[0].JoinGroup(ctx, "", workers[0]); !errors.Is(err, membership.ErrBadName) {
		t.Fatalf("empty group: %v, want ErrBadName", err)
	}

	// Leave, and a member that stops.
	if err := nodes[1].LeaveGroup(ctx, "workers", workers[1]); err != nil {
		t.Fatal(err)
	}
	nodes[2].Root().Stop(workers[2])
	live := []*actor.PID{workers[0], workers[3], workers[4], workers[5]}
	waitGroup(t, nodes, "workers", spreadBound, live...)

	// A graceful stop: node 3's members go with it.
	c.nodes = without(c.nodes, nodes[3])
	if err := nodes[3].Stop(); err != nil {
		t.Fatal(err)
	}
	rest := without(nodes, nodes[3])
	live = []*actor.PID{workers[0], workers[4], workers[5]}
	waitGroup(t, rest, "workers", spreadBound, live...)

	// Node 4, blackholed, is declared down when its sessions time out:
	// its member and its name are dropped on every other node.
	if err := nodes[4].RegisterName(ctx, "four", workers[4]); err != nil {
		t.Fatal(err)
	}
	waitName(t, rest, "four", spreadBound, workers[4])
	nodes[4].fault.SetBlackhole(true)
	others := without(rest, nodes[4])
	waitGroup(t, others, "workers", downBound, workers[0], workers[5])
	waitName(t, others, "four", spreadBound, nil)

	// Healed, it rejoins and its member and name come back everywhere.
	nodes[4].fault.SetBlackhole(false)
	waitGroup(t, rest, "workers", healBound, live...)
	waitName(t, rest, "four", spreadBound, workers[4])
	waitFor(t, spreadBound, "monitor events", func() string {
		if got := mon.members(); !samePIDs(got, sortedPIDs(live...)) {
			return "monitor events add up to " + pidList(got)
		}
		return ""
	})
}

// TestGroups_LeaverBroadcastLost: a node stops gracefully but its own
// broadcast of its down state never gets out (a node whose eager set is
// empty only announces, and is gone before anyone can Graft). Its
// neighbours, told by its Disconnect that it leaves, drop its members
// and spread that; the NodeDown that follows does not count (it is no
// longer an active peer). Before that, its members stayed everywhere.
func TestGroups_LeaverBroadcastLost(t *testing.T) {
	c, nodes := startGroupCluster(t, 4)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	workers := joinOneEach(ctx, t, nodes, "workers")
	waitGroup(t, nodes, "workers", spreadBound, workers...)

	leaver := nodes[3]
	membership.MuteBroadcasts(leaver.Root(), leaver.Membership())
	c.nodes = without(c.nodes, leaver)
	if err := leaver.Stop(); err != nil {
		t.Fatal(err)
	}
	waitGroup(t, nodes[:3], "workers", spreadBound, workers[:3]...)
}

// TestGroups_PartitionHeal: two halves cut apart until their sessions
// are declared down; each half drops the other's members; after the
// heal, with no Join from anyone, the halves find each other again
// (Config.ReconnectPeriod) and anti-entropy and refutation bring every
// member back everywhere, over one overlay.
func TestGroups_PartitionHeal(t *testing.T) {
	_, nodes := startGroupCluster(t, 6)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	workers := joinOneEach(ctx, t, nodes, "g")
	waitGroup(t, nodes, "g", spreadBound, workers...)

	left, right := nodes[:3], nodes[3:]
	cut := func(on bool) {
		for _, a := range left {
			for _, b := range right {
				a.fault.Dest(b.Addr()).SetBlackhole(on)
				b.fault.Dest(a.Addr()).SetBlackhole(on)
			}
		}
	}
	cut(true)
	// Each half loses the other's members.
	d := waitFor(t, downBound+spreadBound, "halves drop each other", func() string {
		for i, n := range nodes {
			got := n.GroupMembers("g")
			for j, w := range workers {
				sameHalf := (i < 3) == (j < 3)
				has := slices.ContainsFunc(got, func(p *actor.PID) bool { return p.Equal(w) })
				if has != sameHalf {
					return fmt.Sprintf("%s sees %s", n.Name(), pidList(got))
				}
			}
		}
		return ""
	})
	t.Logf("partitioned: each half dropped the other's members after %v", d.Round(time.Millisecond))
	// A member joins on each side during the partition.
	extraL, extraR := spawnIdle(nodes[1]), spawnIdle(nodes[4])
	if err := nodes[1].JoinGroup(ctx, "g", extraL); err != nil {
		t.Fatal(err)
	}
	if err := nodes[4].JoinGroup(ctx, "g", extraR); err != nil {
		t.Fatal(err)
	}
	cut(false)
	// No Join: the nodes that lost peers across the cut reach them again
	// within 1.5 testReconnectPeriods (or a dist reconnect backoff of up
	// to 5 s later) and join through them; anti-entropy and refutation
	// then bring every member back. healBound (45 s) covers that with
	// room for a loaded machine.
	waitGroup(t, nodes, "g", healBound, append(slices.Clone(workers), extraL, extraR)...)
	waitHealthy(t, nodes, healBound)
}

// TestNames_SixNodes: six nodes register one name at the same moment;
// every node ends up resolving it to the same actor, every other
// registrant is told (an error at once, or NameLost later), a later
// registration of a known name fails, and the name is released when
// its actor stops.
func TestNames_SixNodes(t *testing.T) {
	_, nodes := startGroupCluster(t, 6)
	concurrentRegistration(t, nodes, "leader")
}

func concurrentRegistration(t *testing.T, nodes []*testNode, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	probes := make([]*probe, len(nodes))
	errs := make([]error, len(nodes))
	for i, n := range nodes {
		probes[i] = newProbe(n)
	}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = n.RegisterName(ctx, name, probes[i].pid)
		}()
	}
	close(start)
	wg.Wait()
	var winner *actor.PID
	waitFor(t, spreadBound, "one owner everywhere", func() string {
		w, ok := nodes[0].Whereis(name)
		if !ok {
			return nodes[0].Name() + " knows no owner"
		}
		for _, n := range nodes[1:] {
			if got, ok := n.Whereis(name); !ok || !got.Equal(w) {
				return fmt.Sprintf("%s resolves to %v, %s to %s", n.Name(), got, nodes[0].Name(), w)
			}
		}
		winner = w
		return ""
	})
	accepted := 0
	waitFor(t, spreadBound, "every loser told", func() string {
		accepted = 0
		for i, p := range probes {
			lost := p.lostNames()
			switch {
			case errs[i] != nil && !errors.Is(errs[i], membership.ErrNameTaken):
				t.Fatalf("%s: RegisterName: %v", nodes[i].Name(), errs[i])
			case errs[i] != nil:
				if len(lost) != 0 {
					return fmt.Sprintf("%s refused at once and also told NameLost", nodes[i].Name())
				}
			case p.pid.Equal(winner):
				accepted++
				if len(lost) != 0 {
					return fmt.Sprintf("winner %s told NameLost", p.pid)
				}
			default:
				accepted++
				// Told once; Winner is the claim that beat it as its node
				// knew then, a registrant, not always the final owner.
				if len(lost) != 1 || lost[0].Name != name || !slices.ContainsFunc(probes, func(q *probe) bool { return q.pid.Equal(lost[0].Winner) }) {
					return fmt.Sprintf("%s (registered) told %d NameLost", p.pid, len(lost))
				}
			}
		}
		return ""
	})
	t.Logf("%d nodes registered %q at once: %d accepted at first, winner %s", len(nodes), name, accepted, winner)
	// Known now: refused at once, everywhere.
	for _, n := range nodes {
		late := spawnIdle(n)
		if err := n.RegisterName(ctx, name, late); !errors.Is(err, membership.ErrNameTaken) && !late.Equal(winner) {
			t.Fatalf("%s: late RegisterName: %v, want ErrNameTaken", n.Name(), err)
		}
	}
	var owner *testNode
	for _, n := range nodes {
		if n.Name() == winner.Address {
			owner = n
		}
	}
	for _, n := range nodes {
		if n != owner {
			if err := n.UnregisterName(ctx, name); !errors.Is(err, membership.ErrNameNotHeld) {
				t.Fatalf("%s: UnregisterName of a remote name: %v", n.Name(), err)
			}
			break
		}
	}
	// The owner stops: the name is free everywhere, and can be taken.
	owner.Root().Stop(winner)
	waitName(t, nodes, name, spreadBound, nil)
	next := spawnIdle(nodes[0])
	if err := nodes[0].RegisterName(ctx, name, next); err != nil {
		t.Fatalf("register a released name: %v", err)
	}
	waitName(t, nodes, name, spreadBound, next)
	if err := nodes[0].UnregisterName(ctx, name); err != nil {
		t.Fatal(err)
	}
	waitName(t, nodes, name, spreadBound, nil)
}

// TestGroupsAndNames_24Nodes: the same on 24 nodes: one member per node
// seen by all, a concurrent registration on all 24, three nodes
// blackholed until declared down and then healed.
func TestGroupsAndNames_24Nodes(t *testing.T) {
	_, nodes := startGroupCluster(t, 24)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	workers := joinOneEach(ctx, t, nodes, "workers")
	waitGroup(t, nodes, "workers", spreadBound, workers...)
	concurrentRegistration(t, nodes, "leader")

	victims := []*testNode{nodes[5], nodes[11], nodes[17]}
	for _, v := range victims {
		v.fault.SetBlackhole(true)
	}
	survivors := without(nodes, victims...)
	var live []*actor.PID
	for i, n := range nodes {
		if !slices.Contains(victims, n) {
			live = append(live, workers[i])
		}
	}
	waitGroup(t, survivors, "workers", downBound, live...)
	for _, v := range victims {
		v.fault.SetBlackhole(false)
	}
	waitGroup(t, nodes, "workers", healBound, workers...)
}

// groupDiag describes every node's group layer, for a failure message.
func groupDiag(t *testing.T, nodes []*testNode) string {
	var b strings.Builder
	for _, n := range nodes {
		res, err := n.Root().RequestFuture(n.Membership(), &membership.GetStats{}, 5*time.Second).Result()
		if err != nil {
			fmt.Fprintf(&b, "%s: %v\n", n.Name(), err)
			continue
		}
		s := res.(*membership.Stats)
		fmt.Fprintf(&b, "%s: active %v, states %d, refuted %d, suspected %d, bcast sent %d recv %d delivered %d, ae %d\n\tstates:%s\n",
			n.Name(), n.ActiveView(), s.GroupNodes, s.Refuted, s.Suspected, s.BroadcastSent, s.BroadcastReceived, s.BroadcastDelivered, s.AntiEntropySent,
			membership.DescribeStates(n.Root(), n.Membership()))
	}
	return b.String()
}
