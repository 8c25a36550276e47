package membership

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/cask-p2p/cask/membership/hyparview"
	"github.com/cask-p2p/cask/membership/plumtree"
	"github.com/cask-p2p/cask/proto/caskpb"
)

// FuzzMembership decodes arbitrary bytes as a caskpb.Membership, maps it
// to a hyparview.Message and steps a state machine with it: none of it
// may panic, and a message that decodes must encode back to the same
// protocol message, and the addresses read from it are bounded by the
// nodes it names. Seeded with the encoding of every message type.
func FuzzMembership(f *testing.F) {
	for _, m := range wireSamples() {
		b, err := proto.Marshal(encode(m, sampleAddresses(m)))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{0x08, 0x63, 0x12, 0x03, 'a', '@', 'h'})
	now := time.Unix(1_700_000_000, 0)
	f.Fuzz(func(t *testing.T, data []byte) {
		var p caskpb.Membership
		if proto.Unmarshal(data, &p) != nil {
			return
		}
		m, err := decode(&p)
		if err != nil {
			return
		}
		addrs := addresses(&p, m)
		if len(addrs) > maxAddresses || len(addrs) > len(names(m)) {
			t.Fatalf("%d addresses read from a message naming %d nodes", len(addrs), len(names(m)))
		}
		again, err := decode(encode(m, addrs))
		if err != nil {
			t.Fatalf("re-decode of %+v: %v", m, err)
		}
		if again.Type != m.Type || again.From != m.From || again.TTL != m.TTL || len(again.Nodes) != len(m.Nodes) {
			t.Fatalf("round trip changed %+v into %+v", m, again)
		}
		st, err := hyparview.New(hyparview.Config{Self: "self@h", Rand: rand.New(rand.NewPCG(1, 2))})
		if err != nil {
			t.Fatal(err)
		}
		st.Join("c@h", now)
		st.Step(m, now)
		st.Tick(now.Add(time.Second))
	})
}

// FuzzBroadcastWire decodes arbitrary bytes as a caskpb.Membership and
// feeds the broadcast and group parts to their decoders: a Plumtree
// message (stepped through a state machine, and re-encoded to the same
// message), a Gossip payload as a group node state, the group states and
// the digest of an anti-entropy message (merged into a registry). None
// of it may panic; every accepted state stays within its limits.
// Seeded with the encoding of every Plumtree and group message type.
func FuzzBroadcastWire(f *testing.F) {
	state := &caskpb.GroupNodeState{Node: "a@h", Version: 9, Groups: []*caskpb.GroupMembers{{Group: "g", Ids: []string{"1", "2"}}},
		Names: []*caskpb.NameClaim{{Name: "n", Id: "1", Stamp: 3}}}
	payload, _ := proto.Marshal(state)
	seeds := []*caskpb.Membership{
		encodePlumtree(plumtree.Message{Type: plumtree.Gossip, From: "a@h", ID: plumtree.ID{Origin: "o@h", Seq: 5}, Round: 2, Payload: payload}),
		encodePlumtree(plumtree.Message{Type: plumtree.IHave, From: "a@h", IHave: []plumtree.Announcement{{ID: plumtree.ID{Origin: "o@h", Seq: 5}, Round: 1}}}),
		encodePlumtree(plumtree.Message{Type: plumtree.Graft, From: "a@h", IDs: []plumtree.ID{{Origin: "o@h", Seq: 5}}}),
		encodePlumtree(plumtree.Message{Type: plumtree.Prune, From: "a@h"}),
		{Type: caskpb.MembershipType_MEMBERSHIP_TYPE_GROUP_DIGEST, From: "a@h", GroupDigest: &caskpb.GroupDigest{Reply: true,
			Versions: []*caskpb.GroupVersion{{Node: "a@h", Version: 9}, {Node: "self@h", Version: 1 << 40, Down: true}}}},
		{Type: caskpb.MembershipType_MEMBERSHIP_TYPE_GROUP_STATES, From: "a@h", GroupStates: []*caskpb.GroupNodeState{state, {Node: "b@h", Version: 1, Down: true}}},
	}
	for _, s := range seeds {
		b, err := proto.Marshal(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	now := time.Unix(1_700_000_000, 0)
	f.Fuzz(func(t *testing.T, data []byte) {
		var p caskpb.Membership
		if proto.Unmarshal(data, &p) != nil {
			return
		}
		reg := newRegistry("self@h", 1)
		checkState := func(ps *caskpb.GroupNodeState) {
			node, st, err := decodeState(ps)
			if err != nil {
				return
			}
			ids := 0
			for g, l := range st.groups {
				if g == "" || len(g) > maxGroupNameLen || !slices.IsSorted(l) {
					t.Fatalf("accepted group %q with ids %v", g, l)
				}
				ids += len(l)
			}
			if ids > maxIDsPerNode || (st.down && ids+len(st.names) != 0) {
				t.Fatalf("accepted state: %d ids, down %v, %d names", ids, st.down, len(st.names))
			}
			reg.merge(node, st, now)
			_ = reg.view()
		}
		switch {
		case isPlumtree(&p):
			m, err := decodePlumtree(&p)
			if err != nil {
				return
			}
			if len(m.IHave)+len(m.IDs) > maxPlumtreeIDs {
				t.Fatalf("%d ids read", len(m.IHave)+len(m.IDs))
			}
			again, err := decodePlumtree(encodePlumtree(m))
			if err != nil || again.Type != m.Type || again.ID != m.ID || len(again.IHave) != len(m.IHave) || len(again.IDs) != len(m.IDs) {
				t.Fatalf("round trip changed %+v into %+v (%v)", m, again, err)
			}
			st, _ := plumtree.New(plumtree.Config{Self: "self@h"})
			st.NeighborUp(m.From, now)
			out := st.Step(m, now)
			for _, d := range out.Deliver {
				var ps caskpb.GroupNodeState
				if proto.Unmarshal(d.Payload, &ps) == nil {
					checkState(&ps)
				}
			}
			st.Tick(now.Add(time.Second))
		case isGroupMessage(&p):
			for _, ps := range p.GetGroupStates() {
				checkState(ps)
			}
			reg.compare(p.GetGroupDigest().GetVersions())
			_ = reg.digest()
		}
	})
}
