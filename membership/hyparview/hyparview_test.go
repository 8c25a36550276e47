package hyparview

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

var t0 = time.Date(2007, 6, 25, 12, 0, 0, 0, time.UTC)

// newNode returns the state of "self" with a fixed seed; edit adjusts
// the config before New.
func newNode(t *testing.T, edit func(*Config)) *State {
	t.Helper()
	cfg := Config{Self: "self", Rand: rand.New(rand.NewPCG(1, 2))}
	if edit != nil {
		edit(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// withActive makes each node join through s, so s holds them actively.
func withActive(t *testing.T, s *State, nodes ...string) {
	t.Helper()
	for _, n := range nodes {
		s.Step(Message{Type: Join, From: n}, t0)
	}
	if got := s.ActiveView(); !isSubset(nodes, got) {
		t.Fatalf("active view %v, want it to hold %v", got, nodes)
	}
}

// withPassive feeds nodes into the passive view through ShuffleReplies.
func withPassive(t *testing.T, s *State, at time.Time, nodes ...string) {
	t.Helper()
	for chunk := range slices.Chunk(nodes, 4) {
		s.Step(Message{Type: ShuffleReply, From: "shuffler", Nodes: chunk}, at)
	}
	if got := s.PassiveView(); !isSubset(nodes, got) {
		t.Fatalf("passive view %v, want it to hold %v", got, nodes)
	}
}

func isSubset(sub, set []string) bool {
	for _, v := range sub {
		if !slices.Contains(set, v) {
			return false
		}
	}
	return true
}

func names(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return out
}

// sent returns the messages of type typ in out.
func sent(out Output, typ MessageType) []Envelope {
	var envs []Envelope
	for _, e := range out.Send {
		if e.Msg.Type == typ {
			envs = append(envs, e)
		}
	}
	return envs
}

func checkInvariants(t testing.TB, s *State) {
	t.Helper()
	active, passive := s.ActiveView(), s.PassiveView()
	if len(active) > s.cfg.ActiveSize {
		t.Fatalf("active view %v larger than %d", active, s.cfg.ActiveSize)
	}
	if len(passive) > s.cfg.PassiveSize {
		t.Fatalf("passive view has %d entries, more than %d", len(passive), s.cfg.PassiveSize)
	}
	for _, v := range [][]string{active, passive} {
		if slices.Contains(v, s.cfg.Self) || slices.Contains(v, "") {
			t.Fatalf("self or empty name in a view: active %v passive %v", active, passive)
		}
		if len(slices.Compact(slices.Clone(v))) != len(v) {
			t.Fatalf("duplicate in view %v", v)
		}
	}
	for _, a := range active {
		if slices.Contains(passive, a) {
			t.Fatalf("%s is in both views", a)
		}
		if s.pendingIndex(a) >= 0 {
			t.Fatalf("%s is active and pending", a)
		}
	}
}

func TestConfig_DefaultsAndValidate(t *testing.T) {
	s := newNode(t, nil)
	want := Config{
		Self: "self", ActiveSize: 5, PassiveSize: 30, ActiveRandomWalkLength: 6, PassiveRandomWalkLength: 3,
		ShuffleActive: 3, ShufflePassive: 4, ShuffleTTL: 6, MaxFailures: 5,
		BackoffMin: time.Second, BackoffMax: 5 * time.Minute, PassiveMaxAge: 5 * time.Minute,
	}
	got := s.cfg
	got.Rand = nil
	if got != want {
		t.Errorf("defaults = %+v\nwant %+v", got, want)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	bad := []Config{
		{Rand: rng},
		{Self: "x"},
		{Self: "x", Rand: rng, ActiveSize: -1},
		{Self: "x", Rand: rng, BackoffMin: -time.Second},
		{Self: "x", Rand: rng, ActiveRandomWalkLength: 2, PassiveRandomWalkLength: 3},
		{Self: "x", Rand: rng, BackoffMin: time.Hour},
	}
	for _, c := range bad {
		if _, err := New(c); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("New(%+v) error = %v, want ErrInvalidConfig", c, err)
		}
	}
}

func TestStep_IgnoresMalformed(t *testing.T) {
	s := newNode(t, nil)
	for _, m := range []Message{
		{Type: Join},
		{Type: Join, From: "self"},
		{Type: MessageType(99), From: "a"},
		{Type: ForwardJoin, From: "a", Node: ""},
		{Type: ForwardJoin, From: "a", Node: "self"},
		{Type: Shuffle, From: "a", Node: "self"},
	} {
		if out := s.Step(m, t0); len(out.Events) != 0 || len(s.ActiveView()) != 0 {
			t.Errorf("Step(%+v) changed the active view: %+v", m, out)
		}
	}
}

// §4.2 Join: the joining node holds its contact at once; the contact
// holds the joiner and starts a ForwardJoin walk on each other link.
func TestJoin_ContactAddsAndForwards(t *testing.T) {
	joiner := newNode(t, nil)
	out := joiner.Join("contact", t0)
	if got := joiner.ActiveView(); !slices.Equal(got, []string{"contact"}) {
		t.Errorf("joiner active view = %v, want [contact]", got)
	}
	if j := sent(out, Join); len(j) != 1 || j[0].To != "contact" || j[0].Msg.From != "self" {
		t.Errorf("joiner sent %+v, want one Join to contact", out.Send)
	}
	if !slices.Equal(out.Open, []string{"contact"}) || out.Events[0] != (Event{PeerUp, "contact", ReasonJoin}) {
		t.Errorf("joiner output = %+v", out)
	}

	contact := newNode(t, nil)
	withActive(t, contact, "a", "b")
	out = contact.Step(Message{Type: Join, From: "new"}, t0)
	if !slices.Contains(contact.ActiveView(), "new") {
		t.Errorf("contact active view %v lacks the joiner", contact.ActiveView())
	}
	var to []string
	for _, e := range sent(out, ForwardJoin) {
		to = append(to, e.To)
		if e.Msg.Node != "new" || e.Msg.TTL != DefaultActiveRandomWalkLength || e.Msg.From != "self" {
			t.Errorf("ForwardJoin = %+v", e.Msg)
		}
	}
	slices.Sort(to)
	if !slices.Equal(to, []string{"a", "b"}) {
		t.Errorf("ForwardJoin sent to %v, want [a b]", to)
	}
}

// §4.2 Join: the ForwardJoin random walk, hop by hop.
func TestJoin_ForwardJoinWalk(t *testing.T) {
	fj := func(from string, ttl int) Message {
		return Message{Type: ForwardJoin, From: from, Node: "new", TTL: ttl}
	}
	t.Run("forwards with TTL-1 to an active peer other than the sender", func(t *testing.T) {
		for seed := range uint64(20) {
			s := newNode(t, func(c *Config) { c.Rand = rand.New(rand.NewPCG(seed, 0)) })
			withActive(t, s, "a", "b", "c")
			out := s.Step(fj("a", 5), t0)
			f := sent(out, ForwardJoin)
			if len(f) != 1 || f[0].To == "a" || f[0].Msg.TTL != 4 || f[0].Msg.Node != "new" || f[0].Msg.From != "self" {
				t.Fatalf("forward = %+v", out.Send)
			}
			if slices.Contains(s.ActiveView(), "new") || slices.Contains(s.PassiveView(), "new") {
				t.Fatalf("joiner kept at TTL 5: active %v passive %v", s.ActiveView(), s.PassiveView())
			}
		}
	})
	t.Run("TTL equal to PRWL leaves the joiner in the passive view", func(t *testing.T) {
		s := newNode(t, nil)
		withActive(t, s, "a", "b")
		out := s.Step(fj("a", DefaultPassiveRandomWalkLength), t0)
		if !slices.Contains(s.PassiveView(), "new") || slices.Contains(s.ActiveView(), "new") {
			t.Errorf("active %v passive %v, want new in passive only", s.ActiveView(), s.PassiveView())
		}
		if f := sent(out, ForwardJoin); len(f) != 1 || f[0].To != "b" || f[0].Msg.TTL != DefaultPassiveRandomWalkLength-1 {
			t.Errorf("forward = %+v", out.Send)
		}
	})
	accepts := func(t *testing.T, s *State, out Output) {
		t.Helper()
		if !slices.Contains(s.ActiveView(), "new") {
			t.Fatalf("active view %v lacks the joiner", s.ActiveView())
		}
		n := sent(out, Neighbor)
		if len(n) != 1 || n[0].To != "new" || !n[0].Msg.HighPriority {
			t.Fatalf("want a high-priority Neighbor to the joiner, sent %+v", out.Send)
		}
		if len(sent(out, ForwardJoin)) != 0 {
			t.Fatalf("walk continued: %+v", out.Send)
		}
		if !slices.Contains(out.Events, Event{PeerUp, "new", ReasonForwardJoin}) {
			t.Fatalf("events %+v lack PeerUp(new)", out.Events)
		}
	}
	t.Run("TTL 0 ends the walk in the active view", func(t *testing.T) {
		s := newNode(t, nil)
		withActive(t, s, "a", "b")
		accepts(t, s, s.Step(fj("a", 0), t0))
	})
	t.Run("a node with one active peer ends the walk", func(t *testing.T) {
		s := newNode(t, nil)
		withActive(t, s, "a")
		accepts(t, s, s.Step(fj("a", 5), t0))
	})
	t.Run("the joiner completes the symmetric link", func(t *testing.T) {
		joiner := newNode(t, nil)
		joiner.Join("contact", t0)
		out := joiner.Step(Message{Type: Neighbor, From: "walker", HighPriority: true}, t0)
		if r := sent(out, NeighborReply); len(r) != 1 || !r[0].Msg.Accepted || r[0].To != "walker" {
			t.Fatalf("reply = %+v", out.Send)
		}
		if got := joiner.ActiveView(); !slices.Equal(got, []string{"contact", "walker"}) {
			t.Fatalf("joiner active view = %v", got)
		}
	})
}

// §4.2: a full active view drops a random member, which is told with a
// Disconnect and kept in the passive view.
func TestJoin_EvictionOnFullActiveView(t *testing.T) {
	s := newNode(t, nil)
	peers := names("p", DefaultActiveSize)
	withActive(t, s, peers...)
	out := s.Step(Message{Type: Join, From: "new"}, t0)
	active := s.ActiveView()
	if len(active) != DefaultActiveSize || !slices.Contains(active, "new") {
		t.Fatalf("active view = %v", active)
	}
	d := sent(out, Disconnect)
	if len(d) != 1 || !slices.Contains(peers, d[0].To) || slices.Contains(active, d[0].To) || d[0].Msg.Leaving {
		t.Fatalf("Disconnect = %+v, active %v", d, active)
	}
	victim := d[0].To
	if !slices.Equal(s.PassiveView(), []string{victim}) {
		t.Errorf("passive view = %v, want [%s]", s.PassiveView(), victim)
	}
	if !slices.Contains(out.Close, victim) || !slices.Contains(out.Events, Event{PeerDown, victim, ReasonEvicted}) {
		t.Errorf("output = %+v, want Close and PeerDown(evicted) for %s", out, victim)
	}
	if f := sent(out, ForwardJoin); len(f) != DefaultActiveSize-1 {
		t.Errorf("%d ForwardJoins, want %d", len(f), DefaultActiveSize-1)
	}
}

// §4.3 Active view management: a Disconnect moves its sender to the
// passive view.
func TestActiveViewManagement_DisconnectMovesToPassive(t *testing.T) {
	s := newNode(t, nil)
	withActive(t, s, "a", "b")
	out := s.Step(Message{Type: Disconnect, From: "a"}, t0)
	if !slices.Equal(s.ActiveView(), []string{"b"}) || !slices.Equal(s.PassiveView(), []string{"a"}) {
		t.Errorf("active %v passive %v", s.ActiveView(), s.PassiveView())
	}
	if !slices.Equal(out.Events, []Event{{PeerDown, "a", ReasonDisconnected}}) || !slices.Equal(out.Close, []string{"a"}) {
		t.Errorf("output = %+v", out)
	}
}

func TestActiveViewManagement_HighPriorityNeighbor(t *testing.T) {
	s := newNode(t, nil)
	withActive(t, s, names("p", DefaultActiveSize)...)
	out := s.Step(Message{Type: Neighbor, From: "lonely", HighPriority: true}, t0)
	if r := sent(out, NeighborReply); len(r) != 1 || !r[0].Msg.Accepted || r[0].To != "lonely" {
		t.Fatalf("reply = %+v", out.Send)
	}
	if a := s.ActiveView(); len(a) != DefaultActiveSize || !slices.Contains(a, "lonely") {
		t.Errorf("active view = %v", a)
	}
	if len(sent(out, Disconnect)) != 1 || len(s.PassiveView()) != 1 {
		t.Errorf("want one evicted peer, sent %+v passive %v", out.Send, s.PassiveView())
	}
}

func TestActiveViewManagement_LowPriorityRefusedWhenFull(t *testing.T) {
	s := newNode(t, nil)
	withActive(t, s, names("p", DefaultActiveSize-1)...)
	out := s.Step(Message{Type: Neighbor, From: "x"}, t0)
	if r := sent(out, NeighborReply); len(r) != 1 || !r[0].Msg.Accepted {
		t.Fatalf("with a free slot: reply = %+v", out.Send)
	}
	out = s.Step(Message{Type: Neighbor, From: "y"}, t0)
	if r := sent(out, NeighborReply); len(r) != 1 || r[0].Msg.Accepted {
		t.Fatalf("when full: reply = %+v", out.Send)
	}
	if slices.Contains(s.ActiveView(), "y") || len(sent(out, Disconnect)) != 0 {
		t.Errorf("refusal changed the view: active %v, sent %+v", s.ActiveView(), out.Send)
	}
}

// §4.3: when an active peer fails, passive peers are asked, with high
// priority only if the active view is empty; a refusal moves on to
// another passive peer.
func TestActiveViewManagement_FailureRepair(t *testing.T) {
	s := newNode(t, func(c *Config) { c.ActiveSize = 2 })
	withActive(t, s, "a", "b")
	withPassive(t, s, t0, "p", "q")

	out := s.LinkDown("a", t0)
	if !slices.Equal(out.Events, []Event{{PeerDown, "a", ReasonFailed}}) || len(out.Open) != 1 {
		t.Fatalf("LinkDown output = %+v", out)
	}
	if slices.Contains(s.PassiveView(), "a") {
		t.Errorf("failed peer kept in passive view %v", s.PassiveView())
	}
	first := out.Open[0]
	out = s.LinkUp(first, t0)
	if n := sent(out, Neighbor); len(n) != 1 || n[0].To != first || n[0].Msg.HighPriority {
		t.Fatalf("want low-priority Neighbor to %s, sent %+v", first, out.Send)
	}

	// Refused: the other passive peer is tried at once.
	out = s.Step(Message{Type: NeighborReply, From: first, Accepted: false}, t0)
	second := "p"
	if first == "p" {
		second = "q"
	}
	if !slices.Equal(out.Open, []string{second}) || !slices.Equal(out.Close, []string{first}) {
		t.Fatalf("after refusal output = %+v, want Open [%s]", out, second)
	}
	// Losing the last active peer makes the next request high priority.
	s.LinkDown("b", t0)
	out = s.LinkUp(second, t0)
	if n := sent(out, Neighbor); len(n) != 1 || !n[0].Msg.HighPriority {
		t.Fatalf("want high-priority Neighbor, sent %+v", out.Send)
	}
	out = s.Step(Message{Type: NeighborReply, From: second, Accepted: true}, t0)
	if !slices.Equal(s.ActiveView(), []string{second}) || !slices.Contains(out.Events, Event{PeerUp, second, ReasonNeighbor}) {
		t.Fatalf("after accept: active %v, output %+v", s.ActiveView(), out)
	}
	checkInvariants(t, s)
}

// A reply that finds no room any more (or that nobody waits for) is
// answered with a Disconnect, so the other side does not keep a
// one-sided link.
func TestActiveViewManagement_AcceptWithoutRoom(t *testing.T) {
	s := newNode(t, func(c *Config) { c.ActiveSize = 1 })
	out := s.Step(Message{Type: NeighborReply, From: "stranger", Accepted: true}, t0)
	if d := sent(out, Disconnect); len(d) != 1 || d[0].To != "stranger" {
		t.Fatalf("unsolicited accept: sent %+v", out.Send)
	}
	withPassive(t, s, t0, "p")
	s.Tick(t0) // empty active view: asks p
	s.LinkUp("p", t0)
	s.Step(Message{Type: Join, From: "j"}, t0) // fills the only slot meanwhile
	out = s.Step(Message{Type: NeighborReply, From: "p", Accepted: true}, t0)
	if d := sent(out, Disconnect); len(d) != 1 || d[0].To != "p" {
		t.Fatalf("accept without room: sent %+v", out.Send)
	}
	if !slices.Equal(s.ActiveView(), []string{"j"}) || !slices.Contains(s.PassiveView(), "p") {
		t.Errorf("active %v passive %v", s.ActiveView(), s.PassiveView())
	}
}

// A link that takes several rounds to come up (a loaded machine, a slow
// handshake) does not cost the request: it waits for LinkUp or LinkDown,
// and the Neighbor goes out when the link is up.
func TestActiveViewManagement_SlowLinkKeepsRequest(t *testing.T) {
	s := newNode(t, func(c *Config) { c.ActiveSize = 2 })
	withActive(t, s, "a")
	withPassive(t, s, t0, "p")
	out := s.Tick(t0)
	if !slices.Equal(out.Open, []string{"p"}) {
		t.Fatalf("Tick opened %v, want [p]", out.Open)
	}
	now := t0
	for i := range 5 {
		now = now.Add(time.Second)
		if out := s.Tick(now); len(out.Open) != 0 || len(out.Close) != 0 {
			t.Fatalf("round %d while p's link opens: %+v", i+1, out)
		}
	}
	out = s.LinkUp("p", now)
	if n := sent(out, Neighbor); len(n) != 1 || n[0].To != "p" {
		t.Fatalf("LinkUp after 5 rounds sent %+v, want a Neighbor to p", out.Send)
	}
	// From now on an unanswered request expires two rounds later.
	s.Tick(now.Add(time.Second))
	if out := s.Tick(now.Add(2 * time.Second)); !slices.Equal(out.Close, []string{"p"}) {
		t.Fatalf("sent request not expired after two rounds: %+v", out)
	}
	checkInvariants(t, s)
}

// A link that does not come up within two rounds (a dead node: over
// QUIC its connect fails only at the handshake timeout) gives up its
// slot, so another passive node is asked meanwhile; when it does come
// up, it gets its Neighbor only if a slot is still free.
func TestActiveViewManagement_SlowLinkDoesNotBlockRefill(t *testing.T) {
	s := newNode(t, func(c *Config) { c.ActiveSize = 2 })
	withActive(t, s, "a")
	withPassive(t, s, t0, "p", "q")
	out := s.Tick(t0)
	if len(out.Open) != 1 {
		t.Fatalf("Tick opened %v, want one node", out.Open)
	}
	slow := out.Open[0]
	other := "p"
	if slow == "p" {
		other = "q"
	}
	if out := s.Tick(t0.Add(time.Second)); len(out.Open) != 0 {
		t.Fatalf("second round opened %v while %s's link opens", out.Open, slow)
	}
	if out := s.Tick(t0.Add(2 * time.Second)); !slices.Equal(out.Open, []string{other}) {
		t.Fatalf("third round opened %v, want [%s] while %s's link still opens", out.Open, other, slow)
	}
	if n := sent(s.LinkUp(other, t0.Add(2*time.Second)), Neighbor); len(n) != 1 {
		t.Fatalf("no Neighbor to %s on LinkUp", other)
	}
	// The slot is taken: the slow link, up at last, is let go.
	out = s.LinkUp(slow, t0.Add(3*time.Second))
	if len(sent(out, Neighbor)) != 0 || !slices.Equal(out.Close, []string{slow}) {
		t.Fatalf("late LinkUp of %s with no free slot: %+v", slow, out)
	}
	checkInvariants(t, s)
	// Had the slot stayed free, the late link would have been used.
	s2 := newNode(t, func(c *Config) { c.ActiveSize = 2 })
	withActive(t, s2, "a")
	withPassive(t, s2, t0, "p")
	s2.Tick(t0)
	s2.Tick(t0.Add(time.Second))
	s2.Tick(t0.Add(2 * time.Second))
	if n := sent(s2.LinkUp("p", t0.Add(3*time.Second)), Neighbor); len(n) != 1 {
		t.Fatalf("late LinkUp of p with a free slot sent no Neighbor")
	}
}

// An accepting reply that arrives after its request expired is taken
// while there is room: the peer already holds us, and telling it to let
// go (the reply to a stranger) would leave both with a free slot and
// show, for the reply's round trip, a one-sided link.
func TestActiveViewManagement_LateAcceptTaken(t *testing.T) {
	s := newNode(t, func(c *Config) { c.ActiveSize = 2 })
	withActive(t, s, "a")
	withPassive(t, s, t0, "p")
	s.Tick(t0)
	s.LinkUp("p", t0)
	s.Tick(t0.Add(time.Second))
	if out := s.Tick(t0.Add(2 * time.Second)); !slices.Equal(out.Close, []string{"p"}) {
		t.Fatalf("request to p did not expire: %+v", out)
	}
	out := s.Step(Message{Type: NeighborReply, From: "p", Accepted: true}, t0.Add(3*time.Second))
	if len(sent(out, Disconnect)) != 0 || !slices.Equal(out.Events, []Event{{PeerUp, "p", ReasonNeighbor}}) {
		t.Fatalf("late accept: output %+v, want p taken", out)
	}
	if !slices.Equal(s.ActiveView(), []string{"a", "p"}) {
		t.Fatalf("active view %v, want [a p]", s.ActiveView())
	}
	checkInvariants(t, s)
}

// Messages that only travel over active links, arriving from a node we
// do not hold, are answered with a Disconnect.
func TestActiveViewManagement_OneSidedLinkIsCut(t *testing.T) {
	s := newNode(t, nil)
	withActive(t, s, "a", "b")
	out := s.Step(Message{Type: Shuffle, From: "stranger", Node: "origin", TTL: 3, Nodes: []string{"origin"}}, t0)
	if d := sent(out, Disconnect); len(d) != 1 || d[0].To != "stranger" {
		t.Fatalf("sent %+v, want Disconnect to stranger", out.Send)
	}
}

// §4.4 Passive view management: a Shuffle carries self, ka active and
// kp passive ids; both ends merge, evicting the ids they sent first.
func TestShuffle_MergeAndEvictionOrder(t *testing.T) {
	s := newNode(t, func(c *Config) { c.PassiveSize = 6 })
	withActive(t, s, "a1", "a2", "a3", "a4", "a5")
	withPassive(t, s, t0, names("old", 6)...)

	out := s.Tick(t0)
	sh := sent(out, Shuffle)
	if len(sh) != 1 {
		t.Fatalf("Tick sent %+v, want one Shuffle", out.Send)
	}
	m := sh[0].Msg
	if m.Node != "self" || m.TTL != DefaultShuffleTTL || m.Nodes[0] != "self" || len(m.Nodes) != 1+3+4 {
		t.Fatalf("Shuffle = %+v", m)
	}
	if !slices.Contains(s.ActiveView(), sh[0].To) || slices.Contains(m.Nodes[1:4], sh[0].To) {
		t.Errorf("Shuffle to %s carrying %v", sh[0].To, m.Nodes)
	}
	sentPassive := m.Nodes[4:]

	// The reply brings four new ids, one of them already active and one
	// self: two are merged, and they replace ids we sent, in order.
	s.Step(Message{Type: ShuffleReply, From: "far", Nodes: []string{"new1", "a1", "self", "new2"}}, t0)
	passive := s.PassiveView()
	want := slices.Clone(names("old", 6))
	want = slices.DeleteFunc(want, func(n string) bool { return n == sentPassive[0] || n == sentPassive[1] })
	want = append(want, "new1", "new2")
	slices.Sort(want)
	if !slices.Equal(passive, want) {
		t.Errorf("passive after merge = %v, want %v (sent %v)", passive, want, sentPassive)
	}
	checkInvariants(t, s)

	// The receiving end: TTL 0 accepts, answers with as many passive
	// ids, and evicts the ids it answered with first.
	r := newNode(t, func(c *Config) { c.PassiveSize = 4 })
	withActive(t, r, "x", "y")
	withPassive(t, r, t0, "r0", "r1", "r2", "r3")
	out = r.Step(Message{Type: Shuffle, From: "x", Node: "origin", TTL: 0, Nodes: []string{"origin", "s1"}}, t0)
	rep := sent(out, ShuffleReply)
	if len(rep) != 1 || rep[0].To != "origin" || len(rep[0].Msg.Nodes) != 2 {
		t.Fatalf("reply = %+v", out.Send)
	}
	want = []string{"origin", "s1"}
	for _, n := range []string{"r0", "r1", "r2", "r3"} {
		if !slices.Contains(rep[0].Msg.Nodes, n) {
			want = append(want, n)
		}
	}
	slices.Sort(want)
	if got := r.PassiveView(); !slices.Equal(got, want) {
		t.Errorf("receiver passive = %v, want %v (replied %v)", got, want, rep[0].Msg.Nodes)
	}
}

func TestShuffle_RandomWalk(t *testing.T) {
	s := newNode(t, nil)
	withActive(t, s, "a", "b", "c")
	out := s.Step(Message{Type: Shuffle, From: "a", Node: "origin", TTL: 4, Nodes: []string{"origin", "z"}}, t0)
	f := sent(out, Shuffle)
	if len(f) != 1 || f[0].To == "a" || f[0].Msg.TTL != 3 || f[0].Msg.Node != "origin" || f[0].Msg.From != "self" {
		t.Fatalf("forward = %+v", out.Send)
	}
	if len(s.PassiveView()) != 0 {
		t.Errorf("forwarding node merged: %v", s.PassiveView())
	}
	// A node with a single active peer accepts whatever the TTL.
	one := newNode(t, nil)
	withActive(t, one, "a")
	out = one.Step(Message{Type: Shuffle, From: "a", Node: "origin", TTL: 4, Nodes: []string{"origin", "z"}}, t0)
	if len(sent(out, ShuffleReply)) != 1 || !slices.Equal(one.PassiveView(), []string{"origin", "z"}) {
		t.Errorf("sent %+v, passive %v", out.Send, one.PassiveView())
	}
}

// Failed attempts back off exponentially, from BackoffMin doubling up
// to BackoffMax.
func TestFailure_BackoffDoublesAndCaps(t *testing.T) {
	s := newNode(t, func(c *Config) { c.MaxFailures = 100; c.PassiveMaxAge = 1000 * time.Hour })
	withActive(t, s, "a")
	withPassive(t, s, t0, "x")
	now := t0
	if out := s.Tick(now); !slices.Equal(out.Open, []string{"x"}) {
		t.Fatalf("Tick opened %v, want [x]", out.Open)
	}
	want := time.Second
	for i := 1; i <= 12; i++ {
		s.LinkDown("x", now)
		if out := s.Tick(now.Add(want - time.Nanosecond)); len(out.Open) != 0 {
			t.Fatalf("failure %d: retried after %s, want %s", i, want-time.Nanosecond, want)
		}
		now = now.Add(want)
		if out := s.Tick(now); !slices.Equal(out.Open, []string{"x"}) {
			t.Fatalf("failure %d: not retried after %s (opened %v)", i, want, out.Open)
		}
		want = min(2*want, DefaultBackoffMax)
	}
	if want != DefaultBackoffMax {
		t.Fatalf("backoff never reached the cap")
	}
}

func TestFailure_DroppedAfterMaxFailures(t *testing.T) {
	s := newNode(t, nil)
	withActive(t, s, "a")
	withPassive(t, s, t0, "x")
	now := t0
	for i := 1; i <= DefaultMaxFailures; i++ {
		if out := s.Tick(now); !slices.Equal(out.Open, []string{"x"}) {
			t.Fatalf("attempt %d: opened %v", i, out.Open)
		}
		s.LinkDown("x", now)
		now = now.Add(time.Minute)
	}
	if len(s.PassiveView()) != 0 {
		t.Errorf("after %d failures passive view = %v", DefaultMaxFailures, s.PassiveView())
	}
}

func TestPassiveAgeing(t *testing.T) {
	s := newNode(t, nil)
	withActive(t, s, names("a", DefaultActiveSize)...) // full: Tick does not contact passive nodes
	withPassive(t, s, t0, "old", "fresh")
	s.Step(Message{Type: Disconnect, From: "fresh"}, t0.Add(time.Minute)) // direct evidence refreshes
	s.Tick(t0.Add(DefaultPassiveMaxAge))
	if got := s.PassiveView(); !slices.Equal(got, []string{"fresh", "old"}) {
		t.Fatalf("at max age: passive = %v", got)
	}
	s.Tick(t0.Add(DefaultPassiveMaxAge + time.Nanosecond))
	if got := s.PassiveView(); !slices.Equal(got, []string{"fresh"}) {
		t.Fatalf("past max age: passive = %v", got)
	}
	s.Tick(t0.Add(time.Minute + DefaultPassiveMaxAge + time.Nanosecond))
	if got := s.PassiveView(); len(got) != 0 {
		t.Fatalf("passive = %v, want empty", got)
	}
}

func TestLeave(t *testing.T) {
	s := newNode(t, nil)
	withActive(t, s, "a", "b")
	out := s.Leave(t0)
	if len(s.ActiveView()) != 0 {
		t.Errorf("active view after Leave = %v", s.ActiveView())
	}
	d := sent(out, Disconnect)
	if len(d) != 2 || !d[0].Msg.Leaving || !d[1].Msg.Leaving {
		t.Errorf("Leave sent %+v, want Disconnect(leaving) to a and b", out.Send)
	}
	if len(out.Close) != 2 || len(out.Events) != 2 || out.Events[0].Reason != ReasonLeave {
		t.Errorf("Leave output = %+v", out)
	}
	if out := s.Tick(t0); !out.IsEmpty() {
		t.Errorf("Tick after Leave = %+v", out)
	}
	out = s.Step(Message{Type: Neighbor, From: "c", HighPriority: true}, t0)
	if r := sent(out, NeighborReply); len(r) != 1 || r[0].Msg.Accepted {
		t.Errorf("Neighbor after Leave answered %+v", out.Send)
	}
	if out := s.Leave(t0); !out.IsEmpty() {
		t.Errorf("second Leave = %+v", out)
	}

	// The peer's side: a leaving node is dropped, not kept in passive.
	p := newNode(t, nil)
	withActive(t, p, "leaver", "other")
	out = p.Step(Message{Type: Disconnect, From: "leaver", Leaving: true}, t0)
	if !slices.Equal(p.ActiveView(), []string{"other"}) || len(p.PassiveView()) != 0 {
		t.Errorf("active %v passive %v", p.ActiveView(), p.PassiveView())
	}
	if !slices.Equal(out.Events, []Event{{PeerDown, "leaver", ReasonLeft}}) {
		t.Errorf("events = %+v", out.Events)
	}

	// Join after Leave takes part again.
	if out := s.Join("a", t0); len(sent(out, Join)) != 1 || !slices.Equal(s.ActiveView(), []string{"a"}) {
		t.Errorf("rejoin: %+v, active %v", out, s.ActiveView())
	}
}

// A small overlay built by joins alone is symmetric and connected.
func TestJoin_SmallOverlaySymmetric(t *testing.T) {
	s := newSim(t, 60, 7)
	s.build(t, 0)
	if a, b, ok := s.asymmetric(); ok {
		t.Fatalf("active link %s→%s is one-sided", a, b)
	}
	if rel, _ := s.reliability(); rel != 1 {
		t.Fatalf("reliability %.3f, want 1", rel)
	}
	for _, n := range s.nodes {
		checkInvariants(t, n.state)
	}
}
