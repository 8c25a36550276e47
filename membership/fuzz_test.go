package membership

import (
	"math/rand/v2"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/cask-p2p/cask/membership/hyparview"
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
