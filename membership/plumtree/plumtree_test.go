package plumtree

import (
	"slices"
	"testing"
	"time"
)

var t0 = time.Unix(1_000_000, 0)

func newState(t *testing.T, self string, peers ...string) *State {
	t.Helper()
	s, err := New(Config{Self: self})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range peers {
		s.NeighborUp(p, t0)
	}
	return s
}

func sends(out Output, typ MessageType) []Envelope {
	var r []Envelope
	for _, e := range out.Send {
		if e.Msg.Type == typ {
			r = append(r, e)
		}
	}
	return r
}

func TestConfigValidate(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Fatal("empty Self accepted")
	}
	if _, err := New(Config{Self: "a", CacheTTL: -1}); err == nil {
		t.Fatal("negative CacheTTL accepted")
	}
	c := Config{Self: "a"}.WithDefaults()
	if c.LazyDelay != DefaultLazyDelay || c.CacheSize != DefaultCacheSize || c.FirstSeq != 1 {
		t.Fatalf("defaults not applied: %+v", c)
	}
}

// §3.2: a broadcast goes eagerly to the eager peers; lazy peers get an
// IHave after the lazy delay.
func TestBroadcast_EagerAndLazyPush(t *testing.T) {
	s := newState(t, "a", "b", "c", "d")
	s.Step(Message{Type: Prune, From: "d"}, t0)
	id, out := s.Broadcast([]byte("x"), t0)
	if id != (ID{Origin: "a", Seq: 1}) {
		t.Fatalf("id %v", id)
	}
	g := sends(out, Gossip)
	if len(g) != 2 || g[0].To != "b" || g[1].To != "c" || string(g[0].Msg.Payload) != "x" || g[0].Msg.Round != 0 {
		t.Fatalf("gossip %+v", g)
	}
	if len(sends(out, IHave)) != 0 || !out.Deadline.Equal(t0.Add(DefaultLazyDelay)) {
		t.Fatalf("IHave not batched: %+v", out)
	}
	out = s.Tick(t0.Add(DefaultLazyDelay))
	ih := sends(out, IHave)
	if len(ih) != 1 || ih[0].To != "d" || len(ih[0].Msg.IHave) != 1 || ih[0].Msg.IHave[0].ID != id {
		t.Fatalf("IHave %+v", ih)
	}
	if !out.Deadline.IsZero() {
		t.Fatalf("deadline left after flush: %v", out.Deadline)
	}
}

// §3.3: the first copy is delivered and forwarded; a duplicate prunes
// the link it came over.
func TestGossip_DeliverForwardAndPrune(t *testing.T) {
	s := newState(t, "b", "a", "c", "d")
	id := ID{Origin: "a", Seq: 7}
	out := s.Step(Message{Type: Gossip, From: "a", ID: id, Round: 0, Payload: []byte("p")}, t0)
	if len(out.Deliver) != 1 || out.Deliver[0].Hops != 1 || out.Deliver[0].From != "a" {
		t.Fatalf("deliver %+v", out.Deliver)
	}
	g := sends(out, Gossip)
	if len(g) != 2 || g[0].To != "c" || g[1].To != "d" || g[0].Msg.Round != 1 {
		t.Fatalf("forward %+v", g)
	}
	out = s.Step(Message{Type: Gossip, From: "c", ID: id, Round: 3, Payload: []byte("p")}, t0)
	if len(out.Deliver) != 0 {
		t.Fatal("duplicate delivered")
	}
	if p := sends(out, Prune); len(p) != 1 || p[0].To != "c" {
		t.Fatalf("prune %+v", out.Send)
	}
	if !slices.Equal(s.LazyPeers(), []string{"c"}) || !slices.Equal(s.EagerPeers(), []string{"a", "d"}) {
		t.Fatalf("eager %v lazy %v", s.EagerPeers(), s.LazyPeers())
	}
}

// §3.4: an id announced by IHave and not received within the graft
// timeout is grafted from its first announcer, then from the next.
func TestIHave_GraftAfterTimeout(t *testing.T) {
	s := newState(t, "b", "a", "c")
	s.Step(Message{Type: Prune, From: "a"}, t0)
	s.Step(Message{Type: Prune, From: "c"}, t0)
	id := ID{Origin: "z", Seq: 1}
	out := s.Step(Message{Type: IHave, From: "a", IHave: []Announcement{{ID: id, Round: 2}}}, t0)
	s.Step(Message{Type: IHave, From: "c", IHave: []Announcement{{ID: id, Round: 1}}}, t0)
	if !out.Deadline.Equal(t0.Add(DefaultGraftTimeout)) {
		t.Fatalf("deadline %v", out.Deadline)
	}
	if out := s.Tick(t0.Add(DefaultGraftTimeout - time.Millisecond)); len(out.Send) != 0 {
		t.Fatalf("graft before timeout: %+v", out.Send)
	}
	out = s.Tick(t0.Add(DefaultGraftTimeout))
	gr := sends(out, Graft)
	if len(gr) != 1 || gr[0].To != "a" || !slices.Equal(gr[0].Msg.IDs, []ID{id}) {
		t.Fatalf("graft %+v", out.Send)
	}
	if !slices.Contains(s.EagerPeers(), "a") {
		t.Fatal("grafted peer not eager")
	}
	out = s.Tick(t0.Add(DefaultGraftTimeout + DefaultGraftRetry))
	if gr := sends(out, Graft); len(gr) != 1 || gr[0].To != "c" {
		t.Fatalf("second graft %+v", out.Send)
	}
	// The payload arrives: nothing is missing any more.
	s.Step(Message{Type: Gossip, From: "c", ID: id, Round: 1, Payload: []byte("p")}, t0.Add(time.Second))
	if s.MissingLen() != 0 {
		t.Fatalf("missing %d after delivery", s.MissingLen())
	}
}

// §3.4: a Graft makes the link eager and is answered from the cache.
func TestGraft_AnsweredFromCache(t *testing.T) {
	s := newState(t, "a", "b")
	s.Step(Message{Type: Prune, From: "b"}, t0)
	id, _ := s.Broadcast([]byte("x"), t0)
	out := s.Step(Message{Type: Graft, From: "b", IDs: []ID{id, {Origin: "q", Seq: 9}}}, t0)
	g := sends(out, Gossip)
	if len(g) != 1 || g[0].To != "b" || g[0].Msg.ID != id || string(g[0].Msg.Payload) != "x" {
		t.Fatalf("graft answer %+v", out.Send)
	}
	if !slices.Equal(s.EagerPeers(), []string{"b"}) {
		t.Fatalf("eager %v", s.EagerPeers())
	}
}

// §3.6: a neighbour that goes down is dropped everywhere, including as
// an announcer.
func TestNeighborDown_ForgetsAnnouncer(t *testing.T) {
	s := newState(t, "b", "a")
	id := ID{Origin: "z", Seq: 1}
	s.Step(Message{Type: IHave, From: "a", IHave: []Announcement{{ID: id}}}, t0)
	out := s.NeighborDown("a", t0)
	if !out.Deadline.IsZero() {
		t.Fatalf("a graft timer survives its only announcer: %v", out.Deadline)
	}
	if out := s.Tick(t0.Add(time.Hour)); len(out.Send) != 0 {
		t.Fatalf("graft to a lost neighbour: %+v", out.Send)
	}
	if len(s.EagerPeers())+len(s.LazyPeers()) != 0 {
		t.Fatal("neighbour kept")
	}
}

func TestCache_BoundedAndExpiring(t *testing.T) {
	s, _ := New(Config{Self: "a", CacheSize: 3, CacheTTL: time.Minute})
	for i := range 5 {
		s.Step(Message{Type: Gossip, From: "b", ID: ID{Origin: "o", Seq: uint64(i + 1)}}, t0.Add(time.Duration(i)*time.Second))
	}
	if s.CacheLen() != 3 {
		t.Fatalf("cache %d, want 3", s.CacheLen())
	}
	// The evicted first id counts as new again, the others as duplicates;
	// this node's own ids never do.
	if out := s.Step(Message{Type: Gossip, From: "b", ID: ID{Origin: "o", Seq: 1}}, t0.Add(5*time.Second)); len(out.Deliver) != 1 {
		t.Fatal("evicted id not delivered")
	}
	if out := s.Step(Message{Type: Gossip, From: "b", ID: ID{Origin: "o", Seq: 5}}, t0.Add(5*time.Second)); len(out.Deliver) != 0 {
		t.Fatal("cached id delivered again")
	}
	if out := s.Step(Message{Type: Gossip, From: "b", ID: ID{Origin: "a", Seq: 1}}, t0.Add(5*time.Second)); len(out.Deliver) != 0 {
		t.Fatal("own id delivered")
	}
	s.Tick(t0.Add(2 * time.Minute))
	if s.CacheLen() != 0 {
		t.Fatalf("cache %d after TTL", s.CacheLen())
	}
	m, _ := New(Config{Self: "b", MaxMissing: 2, MaxAnnouncers: 1})
	m.Step(Message{Type: IHave, From: "x", IHave: []Announcement{{ID: ID{"o", 1}}, {ID: ID{"o", 2}}, {ID: ID{"o", 3}}}}, t0)
	m.Step(Message{Type: IHave, From: "y", IHave: []Announcement{{ID: ID{"o", 1}}}}, t0)
	if m.MissingLen() != 2 || len(m.byID[ID{"o", 1}].announcers) != 1 {
		t.Fatalf("missing %d, announcers %d", m.MissingLen(), len(m.byID[ID{"o", 1}].announcers))
	}
}

func TestIHave_FlushedWhenBatchFull(t *testing.T) {
	s, _ := New(Config{Self: "a", MaxIHaveBatch: 2})
	s.NeighborUp("b", t0)
	s.Step(Message{Type: Prune, From: "b"}, t0)
	_, out := s.Broadcast(nil, t0)
	if len(out.Send) != 0 {
		t.Fatalf("sent early: %+v", out.Send)
	}
	_, out = s.Broadcast(nil, t0)
	if ih := sends(out, IHave); len(ih) != 1 || len(ih[0].Msg.IHave) != 2 {
		t.Fatalf("full batch not flushed: %+v", out.Send)
	}
}

func TestStep_IgnoresBadSenders(t *testing.T) {
	s := newState(t, "a", "b")
	for _, m := range []Message{{Type: Gossip, ID: ID{"o", 1}}, {Type: Gossip, From: "a", ID: ID{"o", 1}}, {Type: 99, From: "b"}} {
		if out := s.Step(m, t0); len(out.Send)+len(out.Deliver) != 0 {
			t.Fatalf("%+v produced %+v", m, out)
		}
	}
}
