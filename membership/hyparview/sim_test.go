package hyparview

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// The simulation: State instances wired by an in-process network that
// delivers everything in one global FIFO queue (so per-pair order holds),
// opens links instantly to live nodes and reports LinkDown to whoever
// tries to reach a failed one.

const (
	simNodes        = 1000
	simShuffleRound = 50
	simBroadcasts   = 20
	simHealCap      = 10
	simHealTarget   = 0.99
	simSeed         = 2007
	simMaxDeliver   = 50_000_000
)

var simFailureRates = []int{10, 30, 50, 70, 80, 90, 95}

type simItemKind uint8

const (
	simMessage simItemKind = iota
	simLinkUp
	simLinkDown
)

type simItem struct {
	kind simItemKind
	to   int32 // receiver
	peer int32 // sender (message) or the other end of the link
	msg  Message
}

type simNode struct {
	name   string
	state  *State
	pcg    *rand.PCG
	links  map[int32]struct{}
	failed bool
}

type sim struct {
	nodes []*simNode
	index map[string]int32
	queue []simItem
	head  int
	now   time.Time
	pcg   *rand.PCG  // source of rng, copied by clone
	rng   *rand.Rand // the simulation's own choices (contacts, broadcast sources)
	// delivered counts queue items handled, a guard against livelock.
	delivered int
}

func newSim(t testing.TB, n int, seed uint64) *sim {
	s := &sim{
		index: make(map[string]int32, n),
		now:   time.Date(2007, 6, 25, 0, 0, 0, 0, time.UTC),
		pcg:   rand.NewPCG(seed, 0),
	}
	s.rng = rand.New(s.pcg)
	for i := range n {
		name := fmt.Sprintf("n%04d", i)
		pcg := rand.NewPCG(seed, uint64(i)+1)
		st, err := New(Config{Self: name, Rand: rand.New(pcg)})
		if err != nil {
			t.Fatal(err)
		}
		s.nodes = append(s.nodes, &simNode{name: name, state: st, pcg: pcg, links: map[int32]struct{}{}})
		s.index[name] = int32(i)
	}
	return s
}

// clone deep-copies the simulation, random generators included, so each
// failure scenario starts from the same steady state.
func (s *sim) clone() *sim {
	c := &sim{
		index:     s.index,
		queue:     slices.Clone(s.queue[s.head:]),
		now:       s.now,
		delivered: s.delivered,
	}
	pcg := *s.pcg
	c.pcg = &pcg
	c.rng = rand.New(c.pcg)
	for _, n := range s.nodes {
		pcg := *n.pcg
		links := make(map[int32]struct{}, len(n.links))
		for k := range n.links {
			links[k] = struct{}{}
		}
		c.nodes = append(c.nodes, &simNode{
			name:   n.name,
			state:  n.state.clone(rand.New(&pcg)),
			pcg:    &pcg,
			links:  links,
			failed: n.failed,
		})
	}
	return c
}

func (s *sim) link(a, b int32) {
	s.nodes[a].links[b] = struct{}{}
	s.nodes[b].links[a] = struct{}{}
}

func (s *sim) unlink(a, b int32) {
	delete(s.nodes[a].links, b)
	delete(s.nodes[b].links, a)
}

func (s *sim) push(it simItem) { s.queue = append(s.queue, it) }

// apply carries out one Output of node a in the documented order: Open,
// then Send, then Close.
func (s *sim) apply(a int32, out Output) {
	for _, name := range out.Open {
		b, ok := s.index[name]
		if !ok || s.nodes[b].failed {
			s.push(simItem{kind: simLinkDown, to: a, peer: b})
			continue
		}
		s.link(a, b)
		s.push(simItem{kind: simLinkUp, to: a, peer: b})
	}
	for _, env := range out.Send {
		b, ok := s.index[env.To]
		if !ok || s.nodes[b].failed {
			s.push(simItem{kind: simLinkDown, to: a, peer: b})
			continue
		}
		s.link(a, b)
		s.push(simItem{kind: simMessage, to: b, peer: a, msg: env.Msg})
	}
	for _, name := range out.Close {
		if b, ok := s.index[name]; ok {
			s.unlink(a, b)
		}
	}
}

// deliver runs the queue until it is empty.
func (s *sim) deliver(t testing.TB) {
	for s.head < len(s.queue) {
		it := s.queue[s.head]
		s.queue[s.head] = simItem{}
		s.head++
		s.delivered++
		if s.delivered > simMaxDeliver {
			t.Fatalf("simulation did not go quiet after %d deliveries", simMaxDeliver)
		}
		n := s.nodes[it.to]
		if n.failed {
			if it.kind == simMessage && !s.nodes[it.peer].failed {
				s.push(simItem{kind: simLinkDown, to: it.peer, peer: it.to})
			}
			continue
		}
		peer := s.nodes[it.peer].name
		var out Output
		switch it.kind {
		case simMessage:
			out = n.state.Step(it.msg, s.now)
		case simLinkUp:
			out = n.state.LinkUp(peer, s.now)
		case simLinkDown:
			out = n.state.LinkDown(peer, s.now)
		}
		s.apply(it.to, out)
	}
	s.queue = s.queue[:0]
	s.head = 0
}

// round is one membership round: Tick on every live node in index
// order, then deliver until quiet.
func (s *sim) round(t testing.TB) {
	s.now = s.now.Add(DefaultShufflePeriod)
	for i, n := range s.nodes {
		if !n.failed {
			s.apply(int32(i), n.state.Tick(s.now))
		}
	}
	s.deliver(t)
}

// build joins the nodes one by one, each through a random node already
// in, then runs the shuffle rounds.
func (s *sim) build(t testing.TB, rounds int) {
	for i := 1; i < len(s.nodes); i++ {
		s.now = s.now.Add(100 * time.Millisecond)
		contact := s.nodes[s.rng.IntN(i)].name
		s.apply(int32(i), s.nodes[i].state.Join(contact, s.now))
		s.deliver(t)
	}
	for range rounds {
		s.round(t)
	}
}

// fail stops the given nodes at once; every live node with a link to
// one of them gets LinkDown (queued, not yet delivered).
func (s *sim) fail(victims []int32) {
	for _, v := range victims {
		s.nodes[v].failed = true
	}
	for _, v := range victims {
		neighbours := make([]int32, 0, len(s.nodes[v].links))
		for b := range s.nodes[v].links {
			neighbours = append(neighbours, b)
		}
		slices.Sort(neighbours)
		for _, b := range neighbours {
			s.unlink(v, b)
			if !s.nodes[b].failed {
				s.push(simItem{kind: simLinkDown, to: b, peer: v})
			}
		}
	}
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

// flood broadcasts from src over the active views (every node forwards
// to all its live active peers) and returns the live nodes reached and
// the largest hop count.
func (s *sim) flood(src int32) (reached, maxHops int) {
	hops := make([]int, len(s.nodes))
	for i := range hops {
		hops[i] = -1
	}
	hops[src] = 0
	frontier := []int32{src}
	reached = 1
	for len(frontier) > 0 {
		var next []int32
		for _, u := range frontier {
			for _, name := range s.nodes[u].state.active {
				v := s.index[name]
				if s.nodes[v].failed || hops[v] >= 0 {
					continue
				}
				hops[v] = hops[u] + 1
				maxHops = max(maxHops, hops[v])
				reached++
				next = append(next, v)
			}
		}
		frontier = next
	}
	return reached, maxHops
}

// reliability averages, over simBroadcasts floods from random live
// nodes, the fraction of live nodes reached.
func (s *sim) reliability() (rel float64, maxHops int) {
	live := s.live()
	if len(live) == 0 {
		return 0, 0
	}
	sum := 0.0
	for range simBroadcasts {
		r, h := s.flood(live[s.rng.IntN(len(live))])
		sum += float64(r) / float64(len(live))
		maxHops = max(maxHops, h)
	}
	return sum / simBroadcasts, maxHops
}

// asymmetric returns the first active link held by one side only.
func (s *sim) asymmetric() (a, b string, found bool) {
	for _, n := range s.nodes {
		if n.failed {
			continue
		}
		for _, p := range n.state.active {
			m := s.nodes[s.index[p]]
			if m.failed || !contains(m.state.active, n.name) {
				return n.name, p, true
			}
		}
	}
	return "", "", false
}

// clustering is the mean local clustering coefficient of the undirected
// active-view graph.
func (s *sim) clustering() float64 {
	sum, count := 0.0, 0
	for _, n := range s.nodes {
		if n.failed {
			continue
		}
		k := len(n.state.active)
		count++
		if k < 2 {
			continue
		}
		links := 0
		for i, a := range n.state.active {
			for _, b := range n.state.active[i+1:] {
				if contains(s.nodes[s.index[a]].state.active, b) {
					links++
				}
			}
		}
		sum += float64(links) / float64(k*(k-1)/2)
	}
	return sum / float64(count)
}

type simRow struct {
	failPct       int
	relImmediate  float64 // right after failure, nothing handled yet
	relReactive   float64 // LinkDowns handled, no Tick yet
	roundsToHeal  int     // Tick rounds until reliability >= 99% (-1: not within the cap)
	relHealed     float64 // reliability at that round (or at the cap)
	asymmetricEnd string  // an asymmetric active link after healing, if any
}

type simResult struct {
	steadyRel        float64
	steadyHops       int
	steadySym        string
	steadyComponents int
	meanActive       float64
	fullActive       float64
	meanPassive      float64
	clustering       float64
	rows             []simRow
}

func runSimulation(t testing.TB, seed uint64) simResult {
	s := newSim(t, simNodes, seed)
	s.build(t, simShuffleRound)

	var res simResult
	res.steadyComponents = len(s.components())
	res.steadyRel, res.steadyHops = s.reliability()
	if a, b, ok := s.asymmetric(); ok {
		res.steadySym = a + "→" + b
	}
	full := 0
	for _, n := range s.nodes {
		res.meanActive += float64(len(n.state.active))
		res.meanPassive += float64(len(n.state.passive))
		if len(n.state.active) == n.state.cfg.ActiveSize {
			full++
		}
	}
	res.meanActive /= float64(len(s.nodes))
	res.meanPassive /= float64(len(s.nodes))
	res.fullActive = float64(full) / float64(len(s.nodes))
	res.clustering = s.clustering()

	// One permutation: the failed sets are nested (the 30% set contains
	// the 10% set).
	perm := rand.New(rand.NewPCG(seed, 99)).Perm(len(s.nodes))
	for _, pct := range simFailureRates {
		c := s.clone()
		victims := make([]int32, len(s.nodes)*pct/100)
		for i := range victims {
			victims[i] = int32(perm[i])
		}
		c.fail(victims)
		row := simRow{failPct: pct, roundsToHeal: -1}
		row.relImmediate, _ = c.reliability()
		c.deliver(t)
		row.relReactive, _ = c.reliability()
		for r := 1; r <= simHealCap; r++ {
			c.round(t)
			row.relHealed, _ = c.reliability()
			if row.relHealed >= simHealTarget {
				row.roundsToHeal = r
				break
			}
		}
		if a, b, ok := c.asymmetric(); ok {
			row.asymmetricEnd = a + "→" + b
		}
		res.rows = append(res.rows, row)
	}
	return res
}

// paperFigures is what the reference (PeerSim, 10,000 nodes) reports.
func paperFigures(pct int) (reliability, heal string) {
	switch {
	case pct < 80:
		return "≈100%", "1–2"
	case pct < 90:
		return "≈100%", "n/a"
	case pct < 95:
		return "not stated", "n/a"
	default:
		return "≈90%", "n/a"
	}
}

func (r simResult) table() string {
	var b strings.Builder
	fmt.Fprintf(&b, "steady state (%d nodes, %d shuffle rounds): reliability %.2f%%, max hops %d, mean active %.2f (%.1f%% full), mean passive %.1f, clustering %.5f\n",
		simNodes, simShuffleRound, 100*r.steadyRel, r.steadyHops, r.meanActive, 100*r.fullActive, r.meanPassive, r.clustering)
	fmt.Fprintf(&b, "%5s | %14s | %14s | %13s | %14s || %15s | %11s\n",
		"fail", "rel. at fail", "after LinkDown", "rounds to 99%", "rel. then", "paper rel.", "paper heal")
	for _, row := range r.rows {
		heal := fmt.Sprintf(">%d", simHealCap)
		if row.roundsToHeal >= 0 {
			heal = fmt.Sprint(row.roundsToHeal)
		}
		pr, ph := paperFigures(row.failPct)
		fmt.Fprintf(&b, "%4d%% | %13.2f%% | %13.2f%% | %13s | %13.2f%% || %15s | %11s\n",
			row.failPct, 100*row.relImmediate, 100*row.relReactive, heal, 100*row.relHealed, pr, ph)
	}
	return b.String()
}

// TestSimulation builds a 1,000-node overlay, fails 10–95% of it at
// once and measures broadcast reliability and healing. Run it with
//
//	go test -run TestSimulation -v ./membership/hyparview/
func TestSimulation(t *testing.T) {
	start := time.Now()
	res := runSimulation(t, simSeed)
	t.Logf("simulation took %s\n%s", time.Since(start).Round(time.Millisecond), res.table())

	if c := res.steadyComponents; c != 1 {
		t.Errorf("steady state: active-view graph has %d components, want 1", c)
	}
	if res.steadyRel != 1 {
		t.Errorf("steady-state reliability = %.4f, want 1 (overlay connected)", res.steadyRel)
	}
	if res.steadySym != "" {
		t.Errorf("steady state: active link %s is not symmetric", res.steadySym)
	}
	for _, row := range res.rows {
		if row.asymmetricEnd != "" {
			t.Errorf("%d%% failures: after healing, active link %s is not symmetric", row.failPct, row.asymmetricEnd)
		}
		if row.failPct <= 80 && row.relHealed < simHealTarget {
			t.Errorf("%d%% failures: reliability %.4f after %d rounds, want ≥ %.2f", row.failPct, row.relHealed, simHealCap, simHealTarget)
		}
		if row.failPct < 80 && (row.roundsToHeal < 0 || row.roundsToHeal > 2) {
			t.Errorf("%d%% failures: healed in %d rounds, want ≤ 2", row.failPct, row.roundsToHeal)
		}
	}

	t.Run("Deterministic", func(t *testing.T) {
		again := runSimulation(t, simSeed)
		if got, want := again.table(), res.table(); got != want {
			t.Errorf("same seed, different table:\n%s\nwant:\n%s", got, want)
		}
	})
}

// components returns the sizes of the connected components of the
// active-view graph over live nodes.
func (s *sim) components() []int {
	seen := make([]bool, len(s.nodes))
	var sizes []int
	for i, n := range s.nodes {
		if seen[i] || n.failed {
			continue
		}
		seen[i] = true
		stack, size := []int32{int32(i)}, 0
		for len(stack) > 0 {
			u := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			size++
			for _, p := range s.nodes[u].state.active {
				if v := s.index[p]; !seen[v] && !s.nodes[v].failed {
					seen[v] = true
					stack = append(stack, v)
				}
			}
		}
		sizes = append(sizes, size)
	}
	return sizes
}

// TestSimulation_SteadyStateAcrossSeeds guards against a seed that
// happens to work: for several seeds the overlay built by 1,000 joins
// and 50 rounds must be one symmetric component. (Before a Disconnect
// triggered an immediate refill, most seeds left islands behind.)
func TestSimulation_SteadyStateAcrossSeeds(t *testing.T) {
	for seed := uint64(1); seed <= 5; seed++ {
		s := newSim(t, simNodes, seed)
		s.build(t, simShuffleRound)
		if c := s.components(); len(c) != 1 {
			t.Errorf("seed %d: active-view graph has components %v", seed, c)
		}
		if a, b, ok := s.asymmetric(); ok {
			t.Errorf("seed %d: active link %s→%s is one-sided", seed, a, b)
		}
	}
}
