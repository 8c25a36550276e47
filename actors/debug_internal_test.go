package actors

import "testing"

// TestDebugRingKeepsTheLastSamples: the SRTT history is bounded and
// returned oldest first, before and after it wraps.
func TestDebugRingKeepsTheLastSamples(t *testing.T) {
	var r debugRing
	for i := range 10 {
		r.add(debugSample{T: int64(i)})
	}
	if got := r.samples(); len(got) != 10 || got[0].T != 0 || got[9].T != 9 {
		t.Fatalf("before wrapping: %v", got)
	}
	total := 3*debugHistory + 7
	for i := 10; i < total; i++ {
		r.add(debugSample{T: int64(i)})
	}
	got := r.samples()
	if len(got) != debugHistory || cap(r.buf) > 2*debugHistory {
		t.Fatalf("kept %d samples (buffer cap %d), want %d", len(got), cap(r.buf), debugHistory)
	}
	for i, s := range got {
		if want := int64(total - debugHistory + i); s.T != want {
			t.Fatalf("sample %d is %d, want %d (oldest first)", i, s.T, want)
		}
	}
}
