package plumtree

import (
	"testing"
	"time"
)

var fuzzNames = []string{"self", "", "a", "b", "c", "d"}

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
func (r *fuzzReader) id() ID       { return ID{Origin: r.name(), Seq: uint64(r.byte() % 8)} }

// FuzzStep drives one node with arbitrary inputs: it must never panic,
// its sets stay disjoint and free of self, and its caches stay bounded.
func FuzzStep(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0, 2, 0, 3, 1, 2, 2, 1, 3, 4, 5, 2, 1, 2, 3, 4})
	f.Add([]byte{0, 2, 2, 3, 2, 1, 3, 1, 2, 5, 5, 1, 6, 7, 9, 9, 9})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := &fuzzReader{data: data}
		s, err := New(Config{Self: "self", CacheSize: 1 + int(r.byte())%6, MaxMissing: 1 + int(r.byte())%4, MaxAnnouncers: 1 + int(r.byte())%3, MaxIHaveBatch: 1 + int(r.byte())%4})
		if err != nil {
			t.Fatal(err)
		}
		now := time.Unix(0, 0)
		for range 300 {
			if len(r.data) == 0 {
				return
			}
			var out Output
			switch r.byte() % 7 {
			case 0:
				out = s.NeighborUp(r.name(), now)
			case 1:
				out = s.NeighborDown(r.name(), now)
			case 2:
				_, out = s.Broadcast([]byte{r.byte()}, now)
			case 3, 4:
				m := Message{Type: MessageType(r.byte() % 6), From: r.name(), ID: r.id(), Round: uint32(r.byte())}
				for range int(r.byte()) % 5 {
					m.IHave = append(m.IHave, Announcement{ID: r.id(), Round: uint32(r.byte())})
					m.IDs = append(m.IDs, r.id())
				}
				out = s.Step(m, now)
			case 5, 6:
				now = now.Add(time.Duration(r.byte()) * 10 * time.Millisecond)
				out = s.Tick(now)
			}
			for _, e := range out.Send {
				if e.To == "" || e.To == "self" || e.Msg.From != "self" {
					t.Fatalf("bad envelope %+v", e)
				}
			}
			if len(s.cache) > s.cfg.CacheSize || len(s.missing) > s.cfg.MaxMissing || len(s.index) != len(s.cache) || len(s.byID) != len(s.missing) {
				t.Fatalf("caches out of bounds: cache %d index %d missing %d byID %d", len(s.cache), len(s.index), len(s.missing), len(s.byID))
			}
			for _, p := range s.eager {
				if p == "self" || p == "" || containsStr(s.lazy, p) {
					t.Fatalf("bad sets: eager %v lazy %v", s.eager, s.lazy)
				}
			}
		}
	})
}

func containsStr(l []string, s string) bool {
	for _, v := range l {
		if v == s {
			return true
		}
	}
	return false
}
