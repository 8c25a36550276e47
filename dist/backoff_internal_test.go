package dist

import (
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
