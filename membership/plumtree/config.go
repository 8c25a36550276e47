package plumtree

import (
	"errors"
	"fmt"
	"time"
)

// Defaults used when a Config field is zero.
const (
	// DefaultLazyDelay is how long IHave announcements wait to be batched
	// before they go out (the paper's lazy-push scheduling).
	DefaultLazyDelay = 100 * time.Millisecond
	// DefaultGraftTimeout is how long a node that heard of a message only
	// through IHave waits for its payload before it sends a Graft (the
	// paper's first timer).
	DefaultGraftTimeout = 500 * time.Millisecond
	// DefaultGraftRetry is the wait before grafting the next announcer when
	// a Graft brought nothing (the paper's second, shorter timer).
	DefaultGraftRetry = 250 * time.Millisecond
	// DefaultCacheSize bounds the ids of received messages kept (with
	// their payloads, to answer Grafts).
	DefaultCacheSize = 4096
	// DefaultCacheTTL is how long a received id is remembered.
	DefaultCacheTTL = 2 * time.Minute
	// DefaultMaxMissing bounds the ids heard of through IHave but not yet
	// received.
	DefaultMaxMissing = 1024
	// DefaultMaxAnnouncers bounds the announcers remembered per missing id.
	DefaultMaxAnnouncers = 8
	// DefaultMaxIHaveBatch bounds the ids of one IHave; a fuller queue is
	// flushed at once.
	DefaultMaxIHaveBatch = 256
)

// ErrInvalidConfig is returned (wrapped, with the offending field) by
// Config.Validate and New.
var ErrInvalidConfig = errors.New("plumtree: invalid config")

// Config configures a State. A zero field means the documented default;
// Self is required.
type Config struct {
	// Self is this node's name; it is the Origin of the ids it makes.
	Self string
	// FirstSeq is the sequence number of this node's first broadcast.
	// Ids must not repeat across restarts of a node while peers still
	// remember them: the actor passes a value that grows with each start
	// (its start time in nanoseconds). Zero starts at 1.
	FirstSeq uint64
	// LazyDelay batches IHave announcements (default DefaultLazyDelay).
	LazyDelay time.Duration
	// GraftTimeout is the wait for a payload announced by IHave before
	// grafting (default DefaultGraftTimeout).
	GraftTimeout time.Duration
	// GraftRetry is the wait before grafting the next announcer (default
	// DefaultGraftRetry).
	GraftRetry time.Duration
	// CacheSize bounds the received-id cache (default DefaultCacheSize).
	CacheSize int
	// CacheTTL expires received ids (default DefaultCacheTTL). Time is
	// the now passed with each input: logical, never read from a clock.
	CacheTTL time.Duration
	// MaxMissing bounds the missing-id table (default DefaultMaxMissing).
	MaxMissing int
	// MaxAnnouncers bounds the announcers kept per missing id (default
	// DefaultMaxAnnouncers).
	MaxAnnouncers int
	// MaxIHaveBatch bounds the ids of one IHave (default
	// DefaultMaxIHaveBatch).
	MaxIHaveBatch int
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	setInt := func(v *int, def int) {
		if *v == 0 {
			*v = def
		}
	}
	setDur := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	setDur(&c.LazyDelay, DefaultLazyDelay)
	setDur(&c.GraftTimeout, DefaultGraftTimeout)
	setDur(&c.GraftRetry, DefaultGraftRetry)
	setInt(&c.CacheSize, DefaultCacheSize)
	setDur(&c.CacheTTL, DefaultCacheTTL)
	setInt(&c.MaxMissing, DefaultMaxMissing)
	setInt(&c.MaxAnnouncers, DefaultMaxAnnouncers)
	setInt(&c.MaxIHaveBatch, DefaultMaxIHaveBatch)
	if c.FirstSeq == 0 {
		c.FirstSeq = 1
	}
	return c
}

// Validate reports whether c, with defaults filled in, is usable. The
// error wraps ErrInvalidConfig.
func (c Config) Validate() error {
	c = c.WithDefaults()
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
	}
	if c.Self == "" {
		return bad("Self is empty")
	}
	for _, f := range []struct {
		name string
		v    time.Duration
	}{{"LazyDelay", c.LazyDelay}, {"GraftTimeout", c.GraftTimeout}, {"GraftRetry", c.GraftRetry}, {"CacheTTL", c.CacheTTL}} {
		if f.v < 0 {
			return bad("%s is negative (%s)", f.name, f.v)
		}
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"CacheSize", c.CacheSize}, {"MaxMissing", c.MaxMissing}, {"MaxAnnouncers", c.MaxAnnouncers}, {"MaxIHaveBatch", c.MaxIHaveBatch}} {
		if f.v < 0 {
			return bad("%s is negative (%d)", f.name, f.v)
		}
	}
	return nil
}
