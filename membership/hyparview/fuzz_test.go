package hyparview

import (
	"math/rand/v2"
	"testing"
	"time"
)

// fuzzNames is the small world a fuzzed node lives in: "self" and ""
// are included on purpose.
var fuzzNames = []string{"self", "", "a", "b", "c", "d", "e", "f", "g", "h"}

// fuzzReader hands out bytes of the input, then zeros.
type fuzzReader struct{ data []byte }

func (r *fuzzReader) byte() byte {
	if len(r.data) == 0 {
		return 0
	}
	b := r.data[0]
	r.data = r.data[1:]
	return b
}

func (r *fuzzReader) name() string { return fuzzNames[int(r.byte())%len(fuzzNames)] }

func (r *fuzzReader) message() Message {
	m := Message{
		Type:         MessageType(int(r.byte()) % 9), // includes 0 and 8: invalid types
		From:         r.name(),
		Node:         r.name(),
		TTL:          int(int8(r.byte())),
		HighPriority: r.byte()&1 == 1,
		Accepted:     r.byte()&1 == 1,
		Leaving:      r.byte()&1 == 1,
	}
	for range int(r.byte()) % 12 {
		m.Nodes = append(m.Nodes, r.name())
	}
	return m
}

// FuzzStep drives one node with arbitrary inputs and checks that it
// never panics and that its views stay well formed.
func FuzzStep(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0, 2, 3, 0, 2, 3, 2, 0, 0, 0})                               // joins
	f.Add([]byte{1, 1, 2, 3, 4, 5, 0, 0, 0, 0, 5, 6, 7, 1, 2, 3, 4, 5, 6, 7}) // shuffle walk
	f.Add([]byte{0, 3, 2, 4, 5, 1, 3, 1, 0, 0, 0, 0, 2, 3, 4, 3, 0, 2, 2})    // neighbor, link events, tick
	f.Add([]byte{7, 3, 1, 3, 5, 1, 1, 1, 2, 2, 3, 4, 6, 3, 1, 4, 5, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := &fuzzReader{data: data}
		cfg := Config{
			Self:        "self",
			ActiveSize:  1 + int(r.byte())%4,
			PassiveSize: 1 + int(r.byte())%6,
			Rand:        rand.New(rand.NewPCG(uint64(r.byte()), 0)),
		}
		s, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		now := time.Unix(0, 0)
		for range 200 {
			if len(r.data) == 0 {
				return
			}
			var out Output
			switch r.byte() % 8 {
			case 0:
				out = s.Join(r.name(), now)
			case 1, 2, 3:
				out = s.Step(r.message(), now)
			case 4:
				out = s.LinkUp(r.name(), now)
			case 5:
				out = s.LinkDown(r.name(), now)
			case 6:
				now = now.Add(time.Duration(r.byte()) * 3 * time.Second)
				out = s.Tick(now)
			case 7:
				if r.byte()%4 == 0 {
					out = s.Leave(now)
				}
			}
			checkInvariants(t, s)
			for _, e := range out.Send {
				if e.To == "" || e.To == "self" || e.Msg.From != "self" {
					t.Fatalf("bad envelope %+v", e)
				}
			}
			for _, n := range append(append([]string{}, out.Open...), out.Close...) {
				if n == "" || n == "self" {
					t.Fatalf("bad link request %q in %+v", n, out)
				}
			}
		}
	})
}
