package identity

import (
	"sync"
	"time"
)

// Refusal logging (docs/security.md): a refused peer usually tries again,
// often many times a second. Each side logs a refusal at most once per
// peer per RefusalLogInterval, and at most refusalLogPeers peers per
// interval, each line counting the refusals it stands for.
const (
	// RefusalLogInterval is the least time between two log lines about
	// refusals of (or by) one peer.
	RefusalLogInterval = time.Minute
	// refusalLogPeers bounds the peers remembered by the limiter, and so
	// the refusal lines logged per interval.
	refusalLogPeers = 256
)

// logLimiter decides which refusal log lines are written: one per key per
// interval, and at most max keys per interval; lines not written are
// counted and reported by the next line written. Time is an input.
// It is safe for concurrent use.
type logLimiter struct {
	interval time.Duration
	max      int

	mu        sync.Mutex
	keys      map[string]*logKey
	overflow  int // lines dropped because the table was full
	lastPrune time.Time
}

type logKey struct {
	logged     time.Time
	suppressed int
}

func newLogLimiter(interval time.Duration, max int) *logLimiter {
	return &logLimiter{interval: interval, max: max, keys: make(map[string]*logKey)}
}

// allow reports whether a line about key may be written at now, and how
// many lines were held back since the last one it allowed (for key, plus
// any dropped while the table was full).
func (l *logLimiter) allow(key string, now time.Time) (ok bool, suppressed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if k, found := l.keys[key]; found {
		if now.Sub(k.logged) < l.interval {
			k.suppressed++
			return false, 0
		}
		suppressed = k.suppressed + l.takeOverflow()
		k.logged, k.suppressed = now, 0
		return true, suppressed
	}
	if len(l.keys) >= l.max {
		l.prune(now)
	}
	if len(l.keys) >= l.max {
		l.overflow++
		return false, 0
	}
	l.keys[key] = &logKey{logged: now}
	return true, l.takeOverflow()
}

func (l *logLimiter) takeOverflow() int {
	n := l.overflow
	l.overflow = 0
	return n
}

// prune forgets keys last logged an interval or more ago; it scans the
// table at most four times per interval.
func (l *logLimiter) prune(now time.Time) {
	if !l.lastPrune.IsZero() && now.Sub(l.lastPrune) < l.interval/4 {
		return
	}
	l.lastPrune = now
	for key, k := range l.keys {
		if now.Sub(k.logged) >= l.interval {
			l.overflow += k.suppressed
			delete(l.keys, key)
		}
	}
}

// tokenBucket limits first contacts: up to burst at once, refilled at rate
// per second. Time is an input. It is safe for concurrent use.
type tokenBucket struct {
	rate  float64
	burst float64

	mu     sync.Mutex
	tokens float64
	last   time.Time
}

func newTokenBucket(rate float64, burst int, now time.Time) *tokenBucket {
	return &tokenBucket{rate: rate, burst: float64(burst), tokens: float64(burst), last: now}
}

// take removes one token at now, if there is one.
func (b *tokenBucket) take(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if dt := now.Sub(b.last); dt > 0 {
		b.tokens = min(b.burst, b.tokens+dt.Seconds()*b.rate)
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// giveBack returns a token taken for a first contact that then failed
// for another reason.
func (b *tokenBucket) giveBack() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.tokens = min(b.burst, b.tokens+1)
}
