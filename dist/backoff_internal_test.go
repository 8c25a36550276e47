package dist

import (
	"fmt"
	"testing"
	"time"
)

// TestReconnectDelay: the backoff doubles from the minimum to the
// maximum, each delay within ±20 % of its nominal value and never above
// the maximum.
func TestReconnectDelay(t *testing.T) {
	lo, hi := 100*time.Millisecond, 5*time.Second
	nominal := []time.Duration{100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000}
	for i, n := range nominal {
		n *= time.Millisecond
		failures := i + 1
		if got := reconnectDelay(failures, lo, hi, 0.5); got != n {
			t.Errorf("failure %d: delay %v at mid jitter, want %v", failures, got, n)
		}
		low, high := reconnectDelay(failures, lo, hi, 0), reconnectDelay(failures, lo, hi, 0.999999)
		if want := time.Duration(float64(n) * 0.8); low != want {
			t.Errorf("failure %d: lowest delay %v, want %v", failures, low, want)
		}
		if want := min(time.Duration(float64(n)*1.2), hi); high < want-time.Millisecond || high > want {
			t.Errorf("failure %d: highest delay %v, want %v", failures, high, want)
		}
	}
	if got := reconnectDelay(1000, lo, hi, 0.999); got > hi {
		t.Errorf("delay after 1000 failures %v is above the maximum %v", got, hi)
	}
}

// TestFailureMemory: the manager actor's failure counts are handed out
// once, forgotten when they run out, and never more than
// maxRememberedFailures of them are kept, however many names fail.
func TestFailureMemory(t *testing.T) {
	var f failureMemory
	now := time.Now()
	f.put("a@h", rememberedFailures{failures: 3, forgetAt: now.Add(time.Second)}, now)
	f.put("b@h", rememberedFailures{failures: 2, forgetAt: now.Add(time.Second)}, now)
	if got := f.take("a@h", now.Add(500*time.Millisecond)); got != 3 {
		t.Errorf("take a = %d, want 3", got)
	}
	if got := f.take("a@h", now.Add(500*time.Millisecond)); got != 0 {
		t.Errorf("second take a = %d, want 0 (taken)", got)
	}
	if got := f.take("b@h", now.Add(2*time.Second)); got != 0 {
		t.Errorf("take b after it ran out = %d, want 0", got)
	}

	// A name put again outlives the first put's record in the queue.
	f.put("c@h", rememberedFailures{failures: 1, forgetAt: now.Add(time.Second)}, now)
	f.put("c@h", rememberedFailures{failures: 4, forgetAt: now.Add(3 * time.Second)}, now.Add(500*time.Millisecond))
	f.expire(now.Add(2 * time.Second)) // pops c's first record only
	if got := f.take("c@h", now.Add(2*time.Second)); got != 4 {
		t.Errorf("take c = %d, want 4 (put again)", got)
	}

	// A flood of names: bounded, oldest out first, newest kept.
	const flood = 10 * maxRememberedFailures
	for i := range flood {
		f.put(fmt.Sprintf("n%d@h", i), rememberedFailures{failures: 1, forgetAt: now.Add(time.Hour)}, now)
		if len(f.byNode) > maxRememberedFailures || len(f.order) > maxRememberedFailures {
			t.Fatalf("after %d names: %d counts, %d queued, want at most %d", i+1, len(f.byNode), len(f.order), maxRememberedFailures)
		}
	}
	if got := f.take("n0@h", now); got != 0 {
		t.Errorf("oldest name still remembered (%d)", got)
	}
	if got := f.take(fmt.Sprintf("n%d@h", flood-1), now); got != 1 {
		t.Errorf("newest name = %d, want 1", got)
	}
	if c := cap(f.order); c > 2*maxRememberedFailures+1 {
		t.Errorf("queue capacity %d after the flood, want about %d at most", c, maxRememberedFailures)
	}

	// Everything runs out: the next put empties the queue.
	f.put("d@h", rememberedFailures{failures: 1, forgetAt: now.Add(2 * time.Hour)}, now.Add(90*time.Minute))
	if len(f.order) != 1 || len(f.byNode) != 1 {
		t.Errorf("after expiry: %d counts, %d queued, want 1 and 1", len(f.byNode), len(f.order))
	}
}
