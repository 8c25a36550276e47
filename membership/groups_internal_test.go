package membership

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/cask-p2p/cask/proto/caskpb"
)

var rt0 = time.Unix(1_700_000_000, 0)

// remote returns a's own state as b would receive it.
func transfer(t *testing.T, from, to *registry, node string) (changed, refute bool) {
	t.Helper()
	n, st, err := decodeState(from.encodeState(node))
	if err != nil {
		t.Fatal(err)
	}
	return to.merge(n, st, rt0)
}

func TestRegistry_JoinLeaveVersions(t *testing.T) {
	r := newRegistry("a@h", 100)
	if !r.join("g", []string{"2", "1", "1"}) || r.own().version != 101 {
		t.Fatalf("join: version %d", r.own().version)
	}
	if r.join("g", []string{"1"}) {
		t.Fatal("joining twice changed the state")
	}
	if got := r.own().groups["g"]; !slices.Equal(got, []string{"1", "2"}) {
		t.Fatalf("members %v", got)
	}
	if !r.leave("g", []string{"1", "9"}) || r.leave("g", []string{"9"}) {
		t.Fatal("leave")
	}
	if !r.drop("2") || len(r.own().groups) != 0 || r.drop("2") {
		t.Fatalf("drop: groups %v", r.own().groups)
	}
	if r.own().version != 103 {
		t.Fatalf("version %d, want 103", r.own().version)
	}
}

func TestRegistry_MergeNewerWinsDownWinsTies(t *testing.T) {
	a, b := newRegistry("a@h", 10), newRegistry("b@h", 20)
	a.join("g", []string{"x"})
	if changed, _ := transfer(t, a, b, "a@h"); !changed {
		t.Fatal("first state not taken")
	}
	if changed, _ := transfer(t, a, b, "a@h"); changed {
		t.Fatal("same version taken twice")
	}
	if v := b.view(); len(v.groups["g"]) != 1 || v.groups["g"][0].Address != "a@h" {
		t.Fatalf("view %v", v.groups)
	}
	// b loses its session to a: a's members go, at the same version.
	if !b.markDown("a@h", rt0) || b.markDown("a@h", rt0) {
		t.Fatal("markDown")
	}
	if len(b.view().groups["g"]) != 0 {
		t.Fatal("members of a down node kept")
	}
	// An up state of the same version does not undo the tombstone...
	if changed, _ := transfer(t, a, b, "a@h"); changed {
		t.Fatal("tombstone lost to an equal version")
	}
	// ...but a, hearing of it, refutes with a newer version.
	if _, refute := transfer(t, b, a, "a@h"); !refute || a.own().version != 12 {
		t.Fatalf("no refutation: version %d", a.own().version)
	}
	if changed, _ := transfer(t, a, b, "a@h"); !changed || len(b.view().groups["g"]) != 1 {
		t.Fatal("refuted state not taken")
	}
	// Tombstones expire after the TTL.
	b.markDown("a@h", rt0)
	b.expire(rt0.Add(time.Minute), time.Hour)
	if b.states["a@h"] == nil {
		t.Fatal("tombstone expired early")
	}
	b.expire(rt0.Add(2*time.Hour), time.Hour)
	if b.states["a@h"] != nil {
		t.Fatal("tombstone kept past its TTL")
	}
}

func TestRegistry_DigestCompare(t *testing.T) {
	a, b := newRegistry("a@h", 10), newRegistry("b@h", 20)
	a.join("g", []string{"x"})
	push, behind, refute := a.compare(b.digest())
	if !slices.Equal(push, []string{"a@h"}) || !behind || refute {
		t.Fatalf("a vs b: push %v behind %v refute %v", push, behind, refute)
	}
	transfer(t, a, b, "a@h")
	transfer(t, b, a, "b@h")
	if push, behind, _ := a.compare(b.digest()); len(push) != 0 || behind {
		t.Fatalf("after exchange: push %v behind %v", push, behind)
	}
	b.markDown("a@h", rt0)
	if _, _, refute := a.compare(b.digest()); !refute {
		t.Fatal("a does not see its own tombstone")
	}
}

// The name conflict rule: the lower Lamport stamp wins, then the lower
// node name; a claim made after seeing another one has a higher stamp.
func TestRegistry_NameConflictRule(t *testing.T) {
	a, b, c := newRegistry("a@h", 1), newRegistry("b@h", 1), newRegistry("c@h", 1)
	b.claim("leader", "pb")
	c.claim("leader", "pc")
	for _, r := range []*registry{a, b, c} {
		for _, o := range []*registry{b, c} {
			if r != o {
				transfer(t, o, r, o.self)
			}
		}
	}
	for _, r := range []*registry{a, b, c} {
		w := r.view().names["leader"]
		if w.node != "b@h" || w.pid.Id != "pb" {
			t.Fatalf("%s: winner %+v, want b@h/pb (equal stamps, lower node)", r.self, w)
		}
	}
	// a saw the claims (clock 1): its own claim of another name is later.
	a.claim("other", "pa")
	if a.own().names["other"].stamp != 2 {
		t.Fatalf("stamp %d, want 2", a.own().names["other"].stamp)
	}
	c2 := newRegistry("0@h", 1) // lowest name, but a later stamp
	transfer(t, b, c2, "b@h")
	c2.claim("leader", "p0")
	transfer(t, c2, a, "0@h")
	if w := a.view().names["leader"]; w.node != "b@h" {
		t.Fatalf("a later claim won: %+v", w)
	}
}

func TestDecodeState_Rejects(t *testing.T) {
	for _, p := range []*caskpb.GroupNodeState{
		{},
		{Node: "a@h", Groups: []*caskpb.GroupMembers{{Group: "", Ids: []string{"1"}}}},
		{Node: "a@h", Groups: []*caskpb.GroupMembers{{Group: "g", Ids: []string{""}}}},
		{Node: "a@h", Names: []*caskpb.NameClaim{{Name: "n"}}},
	} {
		if _, _, err := decodeState(p); !errors.Is(err, ErrBadMessage) {
			t.Errorf("%v: err %v", p, err)
		}
	}
	_, st, err := decodeState(&caskpb.GroupNodeState{Node: "a@h", Down: true, Groups: []*caskpb.GroupMembers{{Group: "g", Ids: []string{"1"}}}})
	if err != nil || len(st.groups) != 0 {
		t.Fatalf("down state kept groups: %v %v", st, err)
	}
}

func TestDiffPIDs(t *testing.T) {
	p := func(a, id string) *actor.PID { return actor.NewPID(a, id) }
	old := []*actor.PID{p("a", "1"), p("a", "2"), p("b", "1")}
	cur := []*actor.PID{p("a", "2"), p("b", "1"), p("c", "1")}
	j, l := diffPIDs(old, cur)
	if len(j) != 1 || j[0].Address != "c" || len(l) != 1 || l[0].Id != "1" || l[0].Address != "a" {
		t.Fatalf("joined %v left %v", j, l)
	}
}

// A node whose heartbeat stops rising is left out of the view after the
// timeout (here only), unless a live session vouches for it, and taken
// back when its heartbeat rises again.
func TestRegistry_HeartbeatSuspicion(t *testing.T) {
	a, b, c, d := newRegistry("a@h", 1), newRegistry("b@h", 1), newRegistry("c@h", 1), newRegistry("d@h", 1)
	for _, r := range []*registry{b, c, d} {
		r.join("g", []string{"1"})
		transfer(t, r, a, r.self)
	}
	for i := 1; i <= 10; i++ {
		now := rt0.Add(time.Duration(i) * time.Second)
		b.heartbeat(now)
		a.observe(b.digest(), now)
	}
	alive := func(node string) bool { return node == "d@h" }
	if gone := a.suspect(rt0.Add(10*time.Second), 5*time.Second, alive); !slices.Equal(gone, []string{"c@h"}) {
		t.Fatalf("suspected %v, want [c@h]", gone)
	}
	if got := a.view().groups["g"]; len(got) != 2 || got[0].Address != "b@h" || got[1].Address != "d@h" {
		t.Fatalf("view %v, want b and d", got)
	}
	// The suspicion is not spread: a's digest still lists c as up.
	if _, _, refute := c.compare(a.digest()); refute {
		t.Fatal("c sees itself down in a's digest")
	}
	// c's heartbeat rises: it is back.
	c.heartbeat(rt0.Add(11 * time.Second))
	if !a.observe(c.digest(), rt0.Add(11*time.Second)) || len(a.view().groups["g"]) != 3 {
		t.Fatal("c not taken back")
	}
}
