package plumtree

import (
	"container/heap"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cask-p2p/cask/membership/hyparview"
)

// The simulation: HyParView states (package hyparview) build the overlay
// and Plumtree states run over their active views, in one discrete-event
// network. Every message takes a random latency (per ordered pair in
// FIFO order, as over one QUIC connection); a node that fails stops at
// once, its neighbours learn it after simDetect (a transport noticing a
// dead connection), and so does a node that sends to it.

const (
	simNodes        = 1000
	simShuffleRound = 50
	simSeed         = 2007
	simWarmup       = 50                    // broadcasts before the failure
	simAfter        = 50                    // broadcasts after it
	simSpacing      = time.Second           // one broadcast at a time, as in the paper
	simBurstSpacing = 20 * time.Millisecond // overlapping broadcasts
	simLatencyMin   = 5 * time.Millisecond
	simLatencyMax   = 15 * time.Millisecond
	simDetect       = 300 * time.Millisecond
	simMaxEvents    = 200_000_000
)

var simFailureRates = []int{0, 20, 40}

type simKind uint8

const (
	evHyParView simKind = iota
	evPlumtree
	evLinkUp
	evLinkDown
	evTick
	evBroadcast
	// The eager-push baseline: a flood over the same active views.
	evFloodStart
	evFlood
)

type simEvent struct {
	at   time.Time
	seq  uint64
	kind simKind
	to   int32
	peer int32
	hv   hyparview.Message
	pt   Message
	// flood and hops: the baseline's broadcast index and hop count.
	flood int32
	hops  uint32
}

type eventQueue []simEvent

func (q eventQueue) Len() int { return len(q) }
func (q eventQueue) Less(i, j int) bool {
	if !q[i].at.Equal(q[j].at) {
		return q[i].at.Before(q[j].at)
	}
	return q[i].seq < q[j].seq
}
func (q eventQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *eventQueue) Push(x any)   { *q = append(*q, x.(simEvent)) }
func (q *eventQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

type simNode struct {
	name     string
	hv       *hyparview.State
	pt       *State
	failed   bool
	links    map[int32]bool
	nextTick time.Time
	flooded  map[int32]bool // baseline broadcasts already delivered
}

// bcastStats follows one broadcast.
type bcastStats struct {
	origin    int32
	delivered int // nodes that delivered it, origin included
	payloads  int // Gossip messages carrying it
	maxHops   uint32
}

type sim struct {
	t      testing.TB
	nodes  []*simNode
	index  map[string]int32
	q      eventQueue
	seq    uint64
	now    time.Time
	rng    *rand.Rand
	last   map[[2]int32]time.Time // latest arrival per ordered pair
	events int

	bcasts map[ID]*bcastStats
	order  []ID
	// sent counts all Plumtree messages by type; ihaveIDs counts the ids
	// they announced.
	sent     map[MessageType]int
	ihaveIDs int

	floods []*bcastStats // the baseline's broadcasts, by index
}

func newSim(t testing.TB, n int, seed uint64) *sim {
	s := &sim{
		t:      t,
		index:  make(map[string]int32, n),
		now:    time.Date(2007, 10, 10, 0, 0, 0, 0, time.UTC),
		rng:    rand.New(rand.NewPCG(seed, 0)),
		last:   map[[2]int32]time.Time{},
		bcasts: map[ID]*bcastStats{},
		sent:   map[MessageType]int{},
	}
	for i := range n {
		name := fmt.Sprintf("n%04d", i)
		hv, err := hyparview.New(hyparview.Config{Self: name, Rand: rand.New(rand.NewPCG(seed, uint64(i)+1))})
		if err != nil {
			t.Fatal(err)
		}
		pt, err := New(Config{Self: name})
		if err != nil {
			t.Fatal(err)
		}
		s.nodes = append(s.nodes, &simNode{name: name, hv: hv, pt: pt, links: map[int32]bool{}, flooded: map[int32]bool{}})
		s.index[name] = int32(i)
	}
	return s
}

func (s *sim) push(e simEvent) {
	s.seq++
	e.seq = s.seq
	heap.Push(&s.q, e)
}

// message schedules a message from a to b with a random latency, after
// any earlier message of the same pair.
func (s *sim) message(a, b int32, e simEvent) {
	at := s.now.Add(simLatencyMin + time.Duration(s.rng.Int64N(int64(simLatencyMax-simLatencyMin))))
	key := [2]int32{a, b}
	if l := s.last[key]; !at.After(l) {
		at = l.Add(time.Microsecond)
	}
	s.last[key] = at
	e.at, e.to, e.peer = at, b, a
	s.push(e)
}

func (s *sim) linkDownLater(to, peer int32) {
	s.push(simEvent{at: s.now.Add(simDetect), kind: evLinkDown, to: to, peer: peer})
}

func (s *sim) applyHV(a int32, out hyparview.Output) {
	for _, name := range out.Open {
		b := s.index[name]
		if s.nodes[b].failed {
			s.linkDownLater(a, b)
			continue
		}
		s.nodes[a].links[b], s.nodes[b].links[a] = true, true
		s.push(simEvent{at: s.now, kind: evLinkUp, to: a, peer: b})
	}
	for _, env := range out.Send {
		b := s.index[env.To]
		if s.nodes[b].failed {
			s.linkDownLater(a, b)
			continue
		}
		s.nodes[a].links[b], s.nodes[b].links[a] = true, true
		s.message(a, b, simEvent{kind: evHyParView, hv: env.Msg})
	}
	for _, name := range out.Close {
		b := s.index[name]
		delete(s.nodes[a].links, b)
		delete(s.nodes[b].links, a)
	}
	for _, ev := range out.Events {
		switch ev.Kind {
		case hyparview.PeerUp:
			s.applyPT(a, s.nodes[a].pt.NeighborUp(ev.Node, s.now))
		case hyparview.PeerDown:
			s.applyPT(a, s.nodes[a].pt.NeighborDown(ev.Node, s.now))
		}
	}
}

func (s *sim) applyPT(a int32, out Output) {
	n := s.nodes[a]
	for _, env := range out.Send {
		b := s.index[env.To]
		s.sent[env.Msg.Type]++
		s.ihaveIDs += len(env.Msg.IHave)
		if env.Msg.Type == Gossip {
			if st := s.bcasts[env.Msg.ID]; st != nil {
				st.payloads++
			}
		}
		if s.nodes[b].failed {
			s.linkDownLater(a, b)
			continue
		}
		s.message(a, b, simEvent{kind: evPlumtree, pt: env.Msg})
	}
	for _, d := range out.Deliver {
		if st := s.bcasts[d.ID]; st != nil {
			st.delivered++
			st.maxHops = max(st.maxHops, d.Hops)
		}
	}
	if !out.Deadline.IsZero() && (n.nextTick.IsZero() || out.Deadline.Before(n.nextTick) || !n.nextTick.After(s.now)) {
		n.nextTick = out.Deadline
		s.push(simEvent{at: out.Deadline, kind: evTick, to: a})
	}
}

// run handles events until the queue is empty.
func (s *sim) run() {
	for s.q.Len() > 0 {
		e := heap.Pop(&s.q).(simEvent)
		s.events++
		if s.events > simMaxEvents {
			s.t.Fatalf("simulation did not go quiet after %d events", simMaxEvents)
		}
		if e.at.After(s.now) {
			s.now = e.at
		}
		n := s.nodes[e.to]
		if n.failed {
			continue
		}
		peer := ""
		if e.kind != evTick && e.kind != evBroadcast && e.kind != evFloodStart {
			peer = s.nodes[e.peer].name
		}
		switch e.kind {
		case evHyParView:
			s.applyHV(e.to, n.hv.Step(e.hv, s.now))
		case evPlumtree:
			s.applyPT(e.to, n.pt.Step(e.pt, s.now))
		case evLinkUp:
			s.applyHV(e.to, n.hv.LinkUp(peer, s.now))
		case evLinkDown:
			s.applyHV(e.to, n.hv.LinkDown(peer, s.now))
		case evTick:
			if !n.nextTick.After(s.now) {
				n.nextTick = time.Time{}
			}
			s.applyPT(e.to, n.pt.Tick(s.now))
		case evBroadcast:
			id, out := n.pt.Broadcast([]byte(fmt.Sprintf("b%d", len(s.order))), s.now)
			s.bcasts[id] = &bcastStats{origin: e.to, delivered: 1}
			s.order = append(s.order, id)
			// Count the payloads of this first hop too.
			s.applyPT(e.to, out)
		case evFloodStart:
			id := int32(len(s.floods))
			s.floods = append(s.floods, &bcastStats{origin: e.to, delivered: 1})
			n.flooded[id] = true
			s.floodOut(e.to, -1, id, 1)
		case evFlood:
			if n.flooded[e.flood] {
				continue
			}
			n.flooded[e.flood] = true
			st := s.floods[e.flood]
			st.delivered++
			st.maxHops = max(st.maxHops, e.hops)
			s.floodOut(e.to, e.peer, e.flood, e.hops+1)
		}
	}
}

// floodOut is the eager-push baseline: node a sends the payload of
// flood id to every node in its active view but the one it came from.
// As for Plumtree, a payload counts when sent, and a send to a failed
// node is noticed simDetect later.
func (s *sim) floodOut(a, from, id int32, hops uint32) {
	st := s.floods[id]
	for _, name := range s.nodes[a].hv.ActiveView() {
		b := s.index[name]
		if b == from {
			continue
		}
		st.payloads++
		if s.nodes[b].failed {
			s.linkDownLater(a, b)
			continue
		}
		s.message(a, b, simEvent{kind: evFlood, flood: id, hops: hops})
	}
}

// build joins the nodes one by one through a random node already in,
// then runs the shuffle rounds.
func (s *sim) build() {
	for i := 1; i < len(s.nodes); i++ {
		s.now = s.now.Add(100 * time.Millisecond)
		s.applyHV(int32(i), s.nodes[i].hv.Join(s.nodes[s.rng.IntN(i)].name, s.now))
		s.run()
	}
	for range simShuffleRound {
		s.now = s.now.Add(hyparview.DefaultShufflePeriod)
		for i, n := range s.nodes {
			s.applyHV(int32(i), n.hv.Tick(s.now))
		}
		s.run()
	}
}

// broadcasts schedules k broadcasts from random live nodes, spacing
// apart, and runs the network until quiet. It returns their ids.
func (s *sim) broadcasts(k int, spacing time.Duration) []ID {
	start := len(s.order)
	s.startFromLive(k, spacing, evBroadcast)
	return slices.Clone(s.order[start:])
}

// floodsFrom is broadcasts for the baseline: k floods from random live
// nodes, spacing apart; it returns their stats.
func (s *sim) floodsFrom(k int, spacing time.Duration) []*bcastStats {
	start := len(s.floods)
	s.startFromLive(k, spacing, evFloodStart)
	return slices.Clone(s.floods[start:])
}

// startFromLive schedules k events of kind at random live nodes, spacing
// apart, and runs the network until quiet.
func (s *sim) startFromLive(k int, spacing time.Duration, kind simKind) {
	live := s.live()
	for i := range k {
		src := live[s.rng.IntN(len(live))]
		s.push(simEvent{at: s.now.Add(time.Duration(i) * spacing), kind: kind, to: src})
	}
	s.run()
}

func (s *sim) live() []int32 {
	var l []int32
	for i, n := range s.nodes {
		if !n.failed {
			l = append(l, int32(i))
		}
	}
	return l
}

// fail stops the given nodes; their live neighbours learn it after
// simDetect.
func (s *sim) fail(victims []int32) {
	for _, v := range victims {
		s.nodes[v].failed = true
	}
	for _, v := range victims {
		var ns []int32
		for b := range s.nodes[v].links {
			ns = append(ns, b)
		}
		slices.Sort(ns)
		for _, b := range ns {
			delete(s.nodes[b].links, v)
			if !s.nodes[b].failed {
				s.linkDownLater(b, v)
			}
		}
		s.nodes[v].links = map[int32]bool{}
	}
}

// phase summarises a run of broadcasts.
type phase struct {
	n                 int
	relFirst, relMin  float64
	relMean, relLast  float64 // mean over all, mean over the last 10
	allLast           bool    // every one of the last 10 reached every live node
	rmrFirst, rmrLast float64 // RMR of the first, mean RMR of the last 10
	ldhLast           float64 // mean last delivery hop over the last 10
	ldhMax            uint32
}

func (s *sim) summarise(ids []ID, liveCount int) phase {
	sts := make([]*bcastStats, len(ids))
	for i, id := range ids {
		sts[i] = s.bcasts[id]
	}
	return summarise(sts, liveCount)
}

func summarise(sts []*bcastStats, liveCount int) phase {
	ids := sts
	p := phase{n: len(ids), relMin: 2, allLast: true}
	tail := max(0, len(ids)-10)
	for i, st := range sts {
		rel := float64(st.delivered) / float64(liveCount)
		rmr := 0.0
		if st.delivered > 1 {
			rmr = float64(st.payloads)/float64(st.delivered-1) - 1
		}
		if i == 0 {
			p.relFirst, p.rmrFirst = rel, rmr
		}
		p.relMin = min(p.relMin, rel)
		p.relMean += rel / float64(len(ids))
		p.ldhMax = max(p.ldhMax, st.maxHops)
		if i >= tail {
			n := float64(len(ids) - tail)
			p.relLast += rel / n
			p.allLast = p.allLast && st.delivered == liveCount
			p.rmrLast += rmr / n
			p.ldhLast += float64(st.maxHops) / n
		}
	}
	return p
}

type simRow struct {
	failPct int
	before  phase
	after   phase
	perNode string
	// burst: the same overlay, broadcasts simBurstSpacing apart (they
	// overlap), only without failures.
	burst        *phase
	burstPerNode string
}

// perNode is the messages sent per broadcast per live node, by type.
func perNode(sent map[MessageType]int, ihaveIDs, broadcasts, nodes int) string {
	d := float64(broadcasts * nodes)
	return fmt.Sprintf("Gossip %.2f, IHave %.2f (%.2f ids), Graft %.3f, Prune %.3f",
		float64(sent[Gossip])/d, float64(sent[IHave])/d, float64(ihaveIDs)/d, float64(sent[Graft])/d, float64(sent[Prune])/d)
}

func runSimulation(t testing.TB, nodes int, seed uint64, pct int) simRow {
	s := newSim(t, nodes, seed)
	s.build()
	row := simRow{failPct: pct}
	row.before = s.summarise(s.broadcasts(simWarmup, simSpacing), nodes)
	s.fail(victims(nodes, seed, pct))
	clear(s.sent)
	s.ihaveIDs = 0
	row.after = s.summarise(s.broadcasts(simAfter, simSpacing), len(s.live()))
	row.perNode = perNode(s.sent, s.ihaveIDs, simAfter, len(s.live()))
	if pct == 0 {
		clear(s.sent)
		s.ihaveIDs = 0
		c := s.summarise(s.broadcasts(simAfter, simBurstSpacing), nodes)
		row.burst = &c
		row.burstPerNode = perNode(s.sent, s.ihaveIDs, simAfter, nodes)
	}
	return row
}

// victims picks pct% of the nodes, by the seed alone, so that the
// baseline fails the same nodes as Plumtree.
func victims(nodes int, seed uint64, pct int) []int32 {
	perm := rand.New(rand.NewPCG(seed, 99)).Perm(nodes)
	v := make([]int32, nodes*pct/100)
	for i := range v {
		v[i] = int32(perm[i])
	}
	return v
}

// floodRow is the eager-push baseline at one failure rate.
type floodRow struct {
	failPct       int
	before, after phase
}

// runFlood builds the overlay runSimulation builds (the same seed gives
// the same overlay), floods simWarmup broadcasts over it one at a time,
// fails the same nodes and floods simAfter more.
func runFlood(t testing.TB, nodes int, seed uint64, pct int) floodRow {
	s := newSim(t, nodes, seed)
	s.build()
	row := floodRow{failPct: pct}
	row.before = summarise(s.floodsFrom(simWarmup, simSpacing), nodes)
	s.fail(victims(nodes, seed, pct))
	row.after = summarise(s.floodsFrom(simAfter, simSpacing), len(s.live()))
	return row
}

func floodTable(rows []floodRow) string {
	var b strings.Builder
	fmt.Fprintf(&b, "eager push over the same overlay (a flood: each node sends the payload to every active peer but the sender)\n")
	fmt.Fprintf(&b, "%5s | %8s %8s %8s %6s | %8s %8s %8s %8s | %8s %8s %6s\n",
		"fail", "rel min", "RMR end", "LDH end", "LDH max", "rel 1st", "rel min", "rel mean", "rel end", "RMR end", "LDH end", "LDH max")
	for _, r := range rows {
		fmt.Fprintf(&b, "%4d%% | %7.2f%% %8.3f %8.1f %6d | %7.2f%% %7.2f%% %7.2f%% %7.2f%% | %8.3f %8.1f %6d\n",
			r.failPct, 100*r.before.relMin, r.before.rmrLast, r.before.ldhLast, r.before.ldhMax,
			100*r.after.relFirst, 100*r.after.relMin, 100*r.after.relMean, 100*r.after.relLast,
			r.after.rmrLast, r.after.ldhLast, r.after.ldhMax)
	}
	return b.String()
}

func table(rows []simRow) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d nodes, HyParView active view %d, %d broadcasts before and %d after the failure, %s apart\n",
		simNodes, hyparview.DefaultActiveSize, simWarmup, simAfter, simSpacing)
	fmt.Fprintf(&b, "%5s | %8s %8s %8s | %8s %8s %8s %8s | %8s %8s %6s\n",
		"fail", "rel 1st", "RMR 1st", "RMR end", "rel 1st", "rel min", "rel mean", "rel end", "RMR end", "LDH end", "LDH max")
	for _, r := range rows {
		fmt.Fprintf(&b, "%4d%% | %7.2f%% %8.2f %8.3f | %7.2f%% %7.2f%% %7.2f%% %7.2f%% | %8.3f %8.1f %6d\n",
			r.failPct, 100*r.before.relFirst, r.before.rmrFirst, r.before.rmrLast,
			100*r.after.relFirst, 100*r.after.relMin, 100*r.after.relMean, 100*r.after.relLast,
			r.after.rmrLast, r.after.ldhLast, r.after.ldhMax)
	}
	for _, r := range rows {
		fmt.Fprintf(&b, "messages per broadcast per node after %d%%: %s\n", r.failPct, r.perNode)
	}
	for _, r := range rows {
		if c := r.burst; c != nil {
			fmt.Fprintf(&b, "overlapping broadcasts (%s apart, no failure): rel min %.2f%%, RMR end %.3f, LDH end %.1f, max %d; per node: %s\n",
				simBurstSpacing, 100*c.relMin, c.rmrLast, c.ldhLast, c.ldhMax, r.burstPerNode)
		}
	}
	return b.String()
}

// TestSimulation runs Plumtree over a 1,000-node HyParView overlay and
// fails 0%, 20% and 40% of the nodes. Run it with
//
//	go test -run TestSimulation -v ./membership/plumtree/
func TestSimulation(t *testing.T) {
	start := time.Now()
	var rows []simRow
	var floods []floodRow
	for _, pct := range simFailureRates {
		rows = append(rows, runSimulation(t, simNodes, simSeed, pct))
		floods = append(floods, runFlood(t, simNodes, simSeed, pct))
	}
	t.Logf("simulation took %s\n%s%s", time.Since(start).Round(time.Millisecond), table(rows), floodTable(floods))
	for i, f := range floods {
		if f.before.relMin != 1 {
			t.Errorf("eager push: a broadcast before the failure reached %.4f of the nodes, want 1", f.before.relMin)
		}
		// The baseline must be the redundant protocol it stands for,
		// and Plumtree's tree must beat it once built.
		if f.before.rmrLast < 1 {
			t.Errorf("eager push: RMR %.3f, want a flood's (about the active view size less 2)", f.before.rmrLast)
		}
		if r := rows[i]; r.before.rmrLast >= f.before.rmrLast {
			t.Errorf("%d%%: Plumtree RMR %.3f, not below eager push's %.3f", r.failPct, r.before.rmrLast, f.before.rmrLast)
		}
	}
	for _, r := range rows {
		if r.before.relMin != 1 {
			t.Errorf("%d%%: reliability before the failure %.4f, want 1", r.failPct, r.before.relMin)
		}
		if r.before.rmrLast > 0.05 {
			t.Errorf("%d%%: steady-state RMR %.3f, want about 0 (a tree)", r.failPct, r.before.rmrLast)
		}
		if !r.after.allLast {
			t.Errorf("%d%%: reliability of the last broadcasts after the failure %.4f, want 1", r.failPct, r.after.relLast)
		}
		if r.failPct == 0 && r.after.relMin != 1 {
			t.Errorf("no failure: a broadcast reached %.4f of the nodes", r.after.relMin)
		}
		if r.failPct == 0 && r.after.rmrLast > 0.05 {
			t.Errorf("no failure: RMR %.3f after %d broadcasts, want about 0", r.after.rmrLast, simWarmup+simAfter)
		}
		if c := r.burst; c != nil && c.relMin != 1 {
			t.Errorf("overlapping broadcasts: one reached %.4f of the nodes, want 1", c.relMin)
		}
	}
}

// TestSimulation_Deterministic: the same seed gives the same figures,
// Plumtree's and the baseline's (a smaller network, twice, with 20%
// failures).
func TestSimulation_Deterministic(t *testing.T) {
	run := func() string {
		return table([]simRow{runSimulation(t, 200, 7, 20)}) + floodTable([]floodRow{runFlood(t, 200, 7, 20)})
	}
	first := run()
	if again := run(); again != first {
		t.Fatalf("same seed, different figures:\n%s\nthen:\n%s", first, again)
	}
}
