package hyparview

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// Defaults used when a Config field is zero. They follow the HyParView
// paper and the Erlang implementation (barrel_p2p).
const (
	// DefaultActiveSize is the size of the active view (log10(n)+1 for
	// about 10,000 nodes).
	DefaultActiveSize = 5
	// DefaultPassiveSize is the size of the passive view (6 × active).
	DefaultPassiveSize = 30
	// DefaultActiveRandomWalkLength is ARWL: the TTL a ForwardJoin starts with.
	DefaultActiveRandomWalkLength = 6
	// DefaultPassiveRandomWalkLength is PRWL: the TTL at which a
	// ForwardJoin leaves the joining node in the passive view of the
	// node it passes through.
	DefaultPassiveRandomWalkLength = 3
	// DefaultShuffleActive is ka: active ids carried by a Shuffle.
	DefaultShuffleActive = 3
	// DefaultShufflePassive is kp: passive ids carried by a Shuffle.
	DefaultShufflePassive = 4
	// DefaultShuffleTTL is the TTL a Shuffle random walk starts with.
	DefaultShuffleTTL = 6
	// DefaultMaxFailures is how many consecutive failed connection
	// attempts drop a node from the passive view.
	DefaultMaxFailures = 5
	// DefaultBackoffMin is the wait after the first failed attempt.
	DefaultBackoffMin = time.Second
	// DefaultBackoffMax caps the doubling backoff.
	DefaultBackoffMax = 5 * time.Minute
	// DefaultPassiveMaxAge is how long a passive entry lives without
	// direct evidence that its node is alive.
	DefaultPassiveMaxAge = 5 * time.Minute
	// DefaultShufflePeriod is how often the actor should call Tick. The
	// state machine itself never reads a clock; the constant is here so
	// the actor and the simulation agree on one number.
	DefaultShufflePeriod = 10 * time.Second
)

// ErrInvalidConfig is returned (wrapped, with the offending field) by
// Config.Validate and New.
var ErrInvalidConfig = errors.New("hyparview: invalid config")

// Config configures a State. A zero field means the documented default;
// Self and Rand have no default and are required.
type Config struct {
	// Self is this node's name. It never appears in its own views.
	Self string
	// ActiveSize bounds the active view (default DefaultActiveSize).
	ActiveSize int
	// PassiveSize bounds the passive view (default DefaultPassiveSize).
	PassiveSize int
	// ActiveRandomWalkLength is the paper's ARWL: the TTL of a
	// ForwardJoin (default DefaultActiveRandomWalkLength).
	ActiveRandomWalkLength int
	// PassiveRandomWalkLength is the paper's PRWL: a node that sees a
	// ForwardJoin with this TTL puts the joining node in its passive
	// view (default DefaultPassiveRandomWalkLength). Must not exceed
	// ActiveRandomWalkLength.
	PassiveRandomWalkLength int
	// ShuffleActive is ka, the active ids sent in a Shuffle.
	ShuffleActive int
	// ShufflePassive is kp, the passive ids sent in a Shuffle.
	ShufflePassive int
	// ShuffleTTL is the TTL a Shuffle random walk starts with.
	ShuffleTTL int
	// MaxFailures consecutive failed attempts to reach a passive node
	// remove it from the passive view.
	MaxFailures int
	// BackoffMin is the wait before retrying a node after its first
	// failure; each further failure doubles it, up to BackoffMax.
	BackoffMin time.Duration
	// BackoffMax caps the retry backoff.
	BackoffMax time.Duration
	// PassiveMaxAge ages out passive entries with no direct evidence of
	// life for longer than this (checked on Tick).
	PassiveMaxAge time.Duration
	// Rand is the only source of randomness of the state machine. It
	// must be seeded by the caller so runs replay exactly. Required.
	Rand *rand.Rand
}

// WithDefaults returns c with every zero field set to its default (the
// layer around the state machine uses it to read the effective values).
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
	setInt(&c.ActiveSize, DefaultActiveSize)
	setInt(&c.PassiveSize, DefaultPassiveSize)
	setInt(&c.ActiveRandomWalkLength, DefaultActiveRandomWalkLength)
	setInt(&c.PassiveRandomWalkLength, DefaultPassiveRandomWalkLength)
	setInt(&c.ShuffleActive, DefaultShuffleActive)
	setInt(&c.ShufflePassive, DefaultShufflePassive)
	setInt(&c.ShuffleTTL, DefaultShuffleTTL)
	setInt(&c.MaxFailures, DefaultMaxFailures)
	setDur(&c.BackoffMin, DefaultBackoffMin)
	setDur(&c.BackoffMax, DefaultBackoffMax)
	setDur(&c.PassiveMaxAge, DefaultPassiveMaxAge)
	return c
}

// Validate reports whether c, with defaults filled in, is usable. The
// error wraps ErrInvalidConfig.
func (c Config) Validate() error {
	c = c.WithDefaults()
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
	}
	switch {
	case c.Self == "":
		return bad("Self is empty")
	case c.Rand == nil:
		return bad("Rand is nil (a seeded *rand.Rand is required)")
	}
	ints := []struct {
		name string
		v    int
	}{
		{"ActiveSize", c.ActiveSize},
		{"PassiveSize", c.PassiveSize},
		{"ActiveRandomWalkLength", c.ActiveRandomWalkLength},
		{"PassiveRandomWalkLength", c.PassiveRandomWalkLength},
		{"ShuffleActive", c.ShuffleActive},
		{"ShufflePassive", c.ShufflePassive},
		{"ShuffleTTL", c.ShuffleTTL},
		{"MaxFailures", c.MaxFailures},
	}
	for _, f := range ints {
		if f.v < 0 {
			return bad("%s is negative (%d)", f.name, f.v)
		}
	}
	durs := []struct {
		name string
		v    time.Duration
	}{
		{"BackoffMin", c.BackoffMin},
		{"BackoffMax", c.BackoffMax},
		{"PassiveMaxAge", c.PassiveMaxAge},
	}
	for _, f := range durs {
		if f.v < 0 {
			return bad("%s is negative (%s)", f.name, f.v)
		}
	}
	if c.PassiveRandomWalkLength > c.ActiveRandomWalkLength {
		return bad("PassiveRandomWalkLength %d exceeds ActiveRandomWalkLength %d",
			c.PassiveRandomWalkLength, c.ActiveRandomWalkLength)
	}
	if c.BackoffMin > c.BackoffMax {
		return bad("BackoffMin %s exceeds BackoffMax %s", c.BackoffMin, c.BackoffMax)
	}
	return nil
}
