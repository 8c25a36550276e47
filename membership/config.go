package membership

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"go.opentelemetry.io/otel/metric"

	"github.com/cask-p2p/cask/dist"
	"github.com/cask-p2p/cask/internal/fielderr"
	"github.com/cask-p2p/cask/membership/hyparview"
)

// Defaults used when a Config field is zero. They are the reference
// values of the HyParView paper and of barrel_p2p, shared with the state
// machine (package hyparview) so the two never disagree.
const (
	// DefaultActiveSize is the size of the active view.
	DefaultActiveSize = hyparview.DefaultActiveSize // 5
	// DefaultPassiveSize is the size of the passive view.
	DefaultPassiveSize = hyparview.DefaultPassiveSize // 30
	// DefaultActiveRandomWalkLength is ARWL, the TTL of a ForwardJoin.
	DefaultActiveRandomWalkLength = hyparview.DefaultActiveRandomWalkLength // 6
	// DefaultPassiveRandomWalkLength is PRWL.
	DefaultPassiveRandomWalkLength = hyparview.DefaultPassiveRandomWalkLength // 3
	// DefaultShuffleActive is ka, active ids carried by a Shuffle.
	DefaultShuffleActive = hyparview.DefaultShuffleActive // 3
	// DefaultShufflePassive is kp, passive ids carried by a Shuffle.
	DefaultShufflePassive = hyparview.DefaultShufflePassive // 4
	// DefaultShuffleTTL is the TTL a Shuffle random walk starts with.
	DefaultShuffleTTL = hyparview.DefaultShuffleTTL // 6
	// DefaultShufflePeriod is the membership round: one Shuffle (and one
	// passive-view ageing and active-view refill) per period.
	DefaultShufflePeriod = hyparview.DefaultShufflePeriod // 10 s
	// DefaultMaxFailures consecutive failed attempts drop a passive node.
	DefaultMaxFailures = hyparview.DefaultMaxFailures // 5
	// DefaultBackoffMin is the first retry delay, for passive nodes and
	// for ContactNodes alike.
	DefaultBackoffMin = hyparview.DefaultBackoffMin // 1 s
	// DefaultBackoffMax caps the doubling retry delay.
	DefaultBackoffMax = hyparview.DefaultBackoffMax // 5 min
	// DefaultPassiveMaxAge ages out passive entries not heard from.
	DefaultPassiveMaxAge = hyparview.DefaultPassiveMaxAge // 5 min
	// DefaultAntiEntropyPeriod is how often a node compares the versions
	// of its process-group and name states with one random active peer.
	DefaultAntiEntropyPeriod = 5 * time.Second
	// DefaultTombstoneTTL is how long the down state of a node is kept,
	// so a stale copy of its groups cannot come back through
	// anti-entropy.
	DefaultTombstoneTTL = 10 * time.Minute
	// DefaultHeartbeatTimeout is how long a node's heartbeat may stay
	// still before this node leaves its groups and names out (until the
	// heartbeat rises again): the fallback for nodes it has no session
	// with, whose session end it cannot see (a partition). 24
	// anti-entropy periods at the default.
	DefaultHeartbeatTimeout = 2 * time.Minute
	// DefaultReconnectPeriod is how often, on average, a node tries to
	// reach one node that dropped out of its views (or a contact node it
	// has no news of): three shuffle periods at the default. A healed
	// partition re-merges through these attempts.
	DefaultReconnectPeriod = 30 * time.Second
	// MaxLostNodes bounds the nodes a node remembers as lost (the
	// oldest go first).
	MaxLostNodes = 64
)

// ErrInvalidConfig is returned (wrapped, with the offending field) by
// Config.Validate and Start.
var ErrInvalidConfig = errors.New("membership: invalid config")

// Config configures the membership actor of a node. It is a plain struct:
// every zero field means the documented default (WithDefaults fills them
// in, Validate checks the result), and no field is required (the node's
// own name comes from the dist layer). Inside actors.Config (the
// Membership section) a nil Logger is the node's.
type Config struct {
	// ContactNodes are joined at start, one at a time in order, until a
	// Join succeeds; a failed attempt moves on to the next contact after
	// a backoff (BackoffMin doubling up to BackoffMax). Whenever the node
	// has not left and its active view is empty at a shuffle period with
	// nothing left to try in its passive view, it joins through them
	// again; and a contact it has heard of that is now down or suspected
	// is tried every ReconnectPeriod. Empty: the node waits for others
	// to join through it, or for an explicit Join.
	ContactNodes []string

	// ActiveSize bounds the active view (default DefaultActiveSize).
	ActiveSize int
	// PassiveSize bounds the passive view (default DefaultPassiveSize).
	PassiveSize int
	// ActiveRandomWalkLength is ARWL (default DefaultActiveRandomWalkLength).
	ActiveRandomWalkLength int
	// PassiveRandomWalkLength is PRWL (default
	// DefaultPassiveRandomWalkLength); at most ActiveRandomWalkLength.
	PassiveRandomWalkLength int
	// ShuffleActive is ka (default DefaultShuffleActive).
	ShuffleActive int
	// ShufflePassive is kp (default DefaultShufflePassive).
	ShufflePassive int
	// ShuffleTTL is the TTL of a Shuffle walk (default DefaultShuffleTTL).
	ShuffleTTL int
	// ShufflePeriod is the membership round (default DefaultShufflePeriod).
	ShufflePeriod time.Duration
	// MaxFailures consecutive failures drop a passive node (default
	// DefaultMaxFailures).
	MaxFailures int
	// BackoffMin and BackoffMax bound the doubling retry delay for
	// passive nodes and contact nodes (defaults DefaultBackoffMin,
	// DefaultBackoffMax).
	BackoffMin time.Duration
	BackoffMax time.Duration
	// PassiveMaxAge drops passive entries with no sign of life for this
	// long (default DefaultPassiveMaxAge).
	PassiveMaxAge time.Duration
	// AntiEntropyPeriod is how often the process-group and name states
	// are compared with one random active peer (default
	// DefaultAntiEntropyPeriod). They are also compared with every peer
	// entering the active view.
	AntiEntropyPeriod time.Duration
	// TombstoneTTL is how long a down node's state is remembered
	// (default DefaultTombstoneTTL).
	TombstoneTTL time.Duration
	// HeartbeatTimeout leaves a node's groups and names out of this
	// node's view while its heartbeat, spread by anti-entropy, has not
	// risen for this long and no session to it is live (default
	// DefaultHeartbeatTimeout). Keep it many AntiEntropyPeriods long: the
	// heartbeat crosses the overlay one exchange at a time.
	HeartbeatTimeout time.Duration
	// ReconnectPeriod is the mean period (jittered ±50 %) at which the
	// node tries to reach one node it lost: an active peer whose session
	// ended with connection_lost, or a node whose heartbeat stood still,
	// remembered up to TombstoneTTL (at most MaxLostNodes), and its
	// ContactNodes once heard of. A node is tried only while this node
	// has no news of it through the overlay (its group state is down,
	// suspected, or for a lost node unknown) and it is not an active
	// peer; if a session comes up, the
	// node joins through it, which bridges two halves of a healed
	// partition (docs/membership.md, "Partitions"). Default
	// DefaultReconnectPeriod; negative turns it off.
	ReconnectPeriod time.Duration

	// Seed seeds every random choice of the protocol and of the actor
	// (shuffle targets, evictions, timer jitter). Zero draws a random
	// seed at Start; set it to replay a run.
	Seed uint64
	// Now is the clock the protocol reads (passive ageing, backoff).
	// Nil means time.Now. Timers (the shuffle period, join retries)
	// always run on real time.
	Now func() time.Time
	// Logger receives structured logs; nil means slog.Default().
	Logger *slog.Logger
	// MeterProvider receives the membership instruments
	// (cask.membership.active_view, passive_view and events;
	// docs/observability.md). nil means none.
	MeterProvider metric.MeterProvider
}

// WithDefaults returns c with every zero field set to its default. The
// protocol knobs take the state machine's own defaults (package
// hyparview), so the two never disagree; this is the only place they are
// applied to a Config.
func (c Config) WithDefaults() Config {
	p := c.stateConfig("", nil).WithDefaults()
	c.ActiveSize, c.PassiveSize = p.ActiveSize, p.PassiveSize
	c.ActiveRandomWalkLength, c.PassiveRandomWalkLength = p.ActiveRandomWalkLength, p.PassiveRandomWalkLength
	c.ShuffleActive, c.ShufflePassive, c.ShuffleTTL = p.ShuffleActive, p.ShufflePassive, p.ShuffleTTL
	c.MaxFailures, c.BackoffMin, c.BackoffMax, c.PassiveMaxAge = p.MaxFailures, p.BackoffMin, p.BackoffMax, p.PassiveMaxAge
	if c.ShufflePeriod == 0 {
		c.ShufflePeriod = DefaultShufflePeriod
	}
	if c.AntiEntropyPeriod == 0 {
		c.AntiEntropyPeriod = DefaultAntiEntropyPeriod
	}
	if c.TombstoneTTL == 0 {
		c.TombstoneTTL = DefaultTombstoneTTL
	}
	if c.HeartbeatTimeout == 0 {
		c.HeartbeatTimeout = DefaultHeartbeatTimeout
	}
	if c.ReconnectPeriod == 0 {
		c.ReconnectPeriod = DefaultReconnectPeriod
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate reports whether c, with its defaults filled in, is usable. It
// names every bad field relative to Config ("ShufflePeriod -1s is
// negative"); the error wraps ErrInvalidConfig, and Start prefixes
// "membership: invalid config".
func (c Config) Validate() error {
	c = c.WithDefaults()
	var errs []error
	if c.ShufflePeriod < 0 {
		errs = append(errs, fielderr.New("ShufflePeriod", "%s is negative", c.ShufflePeriod).WithKind(ErrInvalidConfig))
	}
	if c.AntiEntropyPeriod < 0 {
		errs = append(errs, fielderr.New("AntiEntropyPeriod", "%s is negative", c.AntiEntropyPeriod).WithKind(ErrInvalidConfig))
	}
	if c.HeartbeatTimeout < 0 {
		errs = append(errs, fielderr.New("HeartbeatTimeout", "%s is negative", c.HeartbeatTimeout).WithKind(ErrInvalidConfig))
	}
	if c.TombstoneTTL < 0 {
		errs = append(errs, fielderr.New("TombstoneTTL", "%s is negative", c.TombstoneTTL).WithKind(ErrInvalidConfig))
	}
	for i, n := range c.ContactNodes {
		if err := dist.ValidateNodeName(n); err != nil {
			errs = append(errs, fielderr.Wrap(fmt.Sprintf("ContactNodes[%d]", i), err).WithKind(ErrInvalidConfig))
		}
	}
	// The protocol knobs are checked by the state machine itself; its
	// error names the field.
	if err := c.stateConfig("validate", rand.New(rand.NewPCG(0, 0))).Validate(); err != nil {
		errs = append(errs, fielderr.Wrap("", err).WithKind(ErrInvalidConfig))
	}
	return errors.Join(errs...)
}

// Config is the configuration m runs with, defaults filled in.
func (m *Membership) Config() Config { return m.cfg }

// stateConfig is the state machine's share of c.
func (c Config) stateConfig(self string, rng *rand.Rand) hyparview.Config {
	return hyparview.Config{
		Self:                    self,
		ActiveSize:              c.ActiveSize,
		PassiveSize:             c.PassiveSize,
		ActiveRandomWalkLength:  c.ActiveRandomWalkLength,
		PassiveRandomWalkLength: c.PassiveRandomWalkLength,
		ShuffleActive:           c.ShuffleActive,
		ShufflePassive:          c.ShufflePassive,
		ShuffleTTL:              c.ShuffleTTL,
		MaxFailures:             c.MaxFailures,
		BackoffMin:              c.BackoffMin,
		BackoffMax:              c.BackoffMax,
		PassiveMaxAge:           c.PassiveMaxAge,
		Rand:                    rng,
	}
}
