package dist

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"go.opentelemetry.io/otel/metric"

	"github.com/cask-p2p/cask/internal/fielderr"
	"github.com/cask-p2p/cask/transport/identity"
)

// Defaults for Config. A zero field in Config means the default here.
const (
	// DefaultDataStreams is the size of the data stream pool per
	// connection. Streams are opened lazily, on first use.
	DefaultDataStreams = 16
	// DefaultMaxMessageSize caps one encoded message.
	DefaultMaxMessageSize = 16 << 20
	// DefaultPendingLimit caps messages queued per peer while its session
	// opens.
	DefaultPendingLimit = 10000
	// DefaultConnectTimeout bounds discovery, dial and dist handshake.
	DefaultConnectTimeout = 5 * time.Second
	// DefaultReapIdleAfter: an on-demand session with no traffic for this
	// long may be closed.
	DefaultReapIdleAfter = 60 * time.Second
	// DefaultReapMinAge: a session younger than this is never reaped.
	DefaultReapMinAge = 60 * time.Second
	// DefaultWriteBufferLimit: senders block once this many bytes wait on
	// one data stream (back-pressure, as Erlang's busy dist port).
	DefaultWriteBufferLimit = 8 << 20
	// DefaultDiscoveryPort is the UDP port assumed for DNS discovery when
	// no SRV record names one.
	DefaultDiscoveryPort = 4370
	// DefaultShutdownGrace bounds how long a graceful close waits for the
	// peer to finish its streams.
	DefaultShutdownGrace = time.Second
	// DefaultMaxUserStreams caps live user streams per connection and
	// direction.
	DefaultMaxUserStreams = 256
	// DefaultUserStreamWindow is how many bytes a user stream's writer
	// may send ahead of what the reader has consumed.
	DefaultUserStreamWindow = 1 << 20
	// DefaultMaxPeers caps the peers a node has a session with, or is
	// connecting to, at once.
	DefaultMaxPeers = 1024
	// DefaultMaxLearnedAddrs caps the nodes whose addresses the learned
	// discovery source holds (least recently used first out).
	DefaultMaxLearnedAddrs = 4096
	// DefaultReconnectBackoffMin is the backoff after a peer's first
	// failed connect attempt.
	DefaultReconnectBackoffMin = 100 * time.Millisecond
	// DefaultReconnectBackoffMax bounds the backoff between connect
	// attempts to an unreachable peer.
	DefaultReconnectBackoffMax = 5 * time.Second
	// DefaultSessionGrace is how long a session outlives a lost
	// connection, waiting to resume on a new one.
	DefaultSessionGrace = 15 * time.Second
	// DefaultSessionBuffer bounds the bytes of sent frames a session
	// keeps per data stream until the peer acknowledges them.
	DefaultSessionBuffer = 8 << 20
)

// The reconnect backoff's shape: each failed attempt in a row multiplies
// the delay by ReconnectBackoffFactor, and every delay is drawn within
// ±ReconnectBackoffJitter of its nominal value, never above
// Config.ReconnectBackoffMax.
const (
	ReconnectBackoffFactor = 2
	ReconnectBackoffJitter = 0.2
)

// Bounds of Config.UserStreamWindow, and of the window a peer announces.
const (
	minUserStreamWindow = 4 << 10
	maxUserStreamWindow = 1 << 30
)

// Protocol versions this build speaks.
const (
	MinProtocolVersion = 1
	MaxProtocolVersion = 1
)

// Config configures the dist layer. Zero fields mean the defaults above;
// WithDefaults fills them in and Validate checks the result. Inside
// actors.Config (the Dist section) Name, Incarnation, AdvertiseAddr and
// DisableMigration are set by actors.Start from the node-wide fields; the section's
// Logger, when nil, is the node's.
type Config struct {
	// Name is this node's name, name@host. Required.
	Name string
	// Incarnation distinguishes this run of the node from earlier ones.
	// Zero means a random value.
	Incarnation Incarnation
	// Peers is the static discovery map: node name → UDP address.
	Peers map[string]string
	// DiscoveryDir is a directory of endpoint files, one per node, each
	// node writing its own. Empty disables this backend.
	DiscoveryDir string
	// DisableDNS turns off the DNS backend of discovery (SRV
	// _cask._udp.<host>, then A/AAAA of <host> with DiscoveryPort), which
	// is on by default.
	DisableDNS bool
	// DiscoveryPort is the port used with A/AAAA records. Default
	// DefaultDiscoveryPort.
	DiscoveryPort int
	// Resolvers are discovery sources of the application's own (etcd,
	// Kubernetes, a service registry), asked in order after Peers and
	// before DiscoveryDir and DNS. A resolver answers ErrUnknownNode
	// (wrapped) to pass a name on to the next source; any other error
	// ends the lookup. See Resolver and docs/dist.md, "Writing a
	// resolver".
	Resolvers []Resolver
	// AdvertiseAddr is the "host:port" peers should dial to reach this
	// node: sent in the dist handshake and in membership messages, so
	// nodes that know one contact find the rest. Empty means the bound
	// address when it is dialable; a node bound to 0.0.0.0 or [::]
	// advertises nothing and peers use the source address they see.
	// Inside actors.Config it is set from the node-wide AdvertiseAddr.
	AdvertiseAddr string
	// MaxLearnedAddrs caps the learned discovery source: the addresses
	// this node learned from membership messages and authenticated
	// connections (docs/membership.md, "How nodes find each other").
	// Default DefaultMaxLearnedAddrs; negative turns learning off.
	MaxLearnedAddrs int
	// DataStreams is the data stream pool size per connection, 1..1024.
	// Default DefaultDataStreams.
	DataStreams int
	// MaxMessageSize caps one encoded message, in bytes, up to 1 GiB.
	// Default DefaultMaxMessageSize.
	MaxMessageSize int
	// PendingLimit caps messages queued per peer while connecting.
	// Default DefaultPendingLimit.
	PendingLimit int
	// ConnectTimeout bounds one connect attempt. Default
	// DefaultConnectTimeout.
	ConnectTimeout time.Duration
	// ReconnectBackoffMin and ReconnectBackoffMax bound the backoff after
	// failed connect attempts to a peer: ReconnectBackoffMin after the
	// first, doubling with each further failure in a row, up to
	// ReconnectBackoffMax, each delay drawn within ±20 % and never above
	// the maximum. While it runs the peer is unreachable: sends to it
	// are dead letters at once with ErrUnreachable (docs/dist.md, "Fail
	// fast and back off"). Defaults DefaultReconnectBackoffMin and
	// DefaultReconnectBackoffMax.
	ReconnectBackoffMin time.Duration
	ReconnectBackoffMax time.Duration
	// ReapIdleAfter and ReapMinAge tune idle-session reaping (defaults
	// DefaultReapIdleAfter, DefaultReapMinAge). A negative ReapIdleAfter
	// disables reaping.
	ReapIdleAfter time.Duration
	ReapMinAge    time.Duration
	// WriteBufferLimit is the per-stream byte count past which senders
	// block until the stream drains. Default DefaultWriteBufferLimit.
	WriteBufferLimit int
	// MaxUserStreams caps user streams per connection and direction
	// (streams this node opened; separately, streams the peer opened)
	// that hold a slot; Stream says when a slot is freed. More are
	// refused with ErrStreamLimit. Default DefaultMaxUserStreams.
	MaxUserStreams int
	// UserStreamWindow is the receive window of each user stream, in
	// bytes, 4 KiB..1 GiB: the peer writes at most this much ahead of
	// what this node's reader consumed, and this node buffers it. One
	// stream's throughput is at most UserStreamWindow per round trip;
	// unread streams hold at most MaxUserStreams × UserStreamWindow per
	// direction. Default DefaultUserStreamWindow.
	UserStreamWindow int
	// MaxPeers caps the peers this node has a session with, or is
	// connecting to, at once: beyond it an inbound dist hello from a new
	// peer is refused and a connect to a new peer fails, both with
	// ErrTooManyPeers. Peers with a session are never affected. Default
	// DefaultMaxPeers; it must leave room for membership's active view.
	MaxPeers int
	// SessionGrace is how long a session outlives a lost connection
	// (idle timeout, dead path, reset): the peer is NodeUnreachable at
	// once, both sides reconnect with the reconnect backoff, and a new
	// connection within SessionGrace resumes the session with nothing
	// lost, duplicated or reordered (NodeReachable). When it runs out the
	// session ends: NodeDown, Terminated{AddressTerminated}, and every
	// message not acknowledged is a dead letter (ErrSessionEnded). Sends
	// meanwhile wait in the PendingLimit queue. Default
	// DefaultSessionGrace; negative ends the session with its
	// connection, as before sessions (docs/dist.md, "Sessions").
	SessionGrace time.Duration
	// SessionBuffer bounds the bytes of frames a session keeps per data
	// stream until the peer acknowledges them (they are resent on a new
	// connection); senders to that stream block while it is full
	// (back-pressure, as WriteBufferLimit; per stream, so a bulk transfer
	// to one actor does not hold up messages to others). Default
	// DefaultSessionBuffer.
	SessionBuffer int
	// ShutdownGrace bounds a graceful close. Default DefaultShutdownGrace.
	ShutdownGrace time.Duration
	// DisableMigration is advertised in the handshake: peers must not
	// migrate connections to this node.
	DisableMigration bool
	// Logger receives structured logs; nil means slog.Default().
	Logger *slog.Logger
	// MeterProvider receives the dist layer's OpenTelemetry instruments
	// (cask.messages.*, cask.bytes.*, cask.dead_letters, cask.reconnects,
	// cask.migrations, cask.migration.duration, cask.path.*,
	// cask.pending.depth; docs/observability.md). nil means none, and
	// the message path then counts nothing unless CountTraffic is set.
	MeterProvider metric.MeterProvider
	// CountTraffic keeps the per-peer message and byte counters that
	// PeerInfo reports (and the debug page shows, actors.Node.DebugHandler)
	// even with no MeterProvider: two atomic additions per message and
	// direction. A MeterProvider turns them on by itself.
	CountTraffic bool
}

// WithDefaults returns a copy of c with every zero field set to its
// default. It is the only place the defaults above are applied.
func (c Config) WithDefaults() Config {
	if c.DiscoveryPort == 0 {
		c.DiscoveryPort = DefaultDiscoveryPort
	}
	if c.MaxLearnedAddrs == 0 {
		c.MaxLearnedAddrs = DefaultMaxLearnedAddrs
	}
	if c.DataStreams == 0 {
		c.DataStreams = DefaultDataStreams
	}
	if c.MaxMessageSize == 0 {
		c.MaxMessageSize = DefaultMaxMessageSize
	}
	if c.PendingLimit == 0 {
		c.PendingLimit = DefaultPendingLimit
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	if c.ReconnectBackoffMin == 0 {
		c.ReconnectBackoffMin = DefaultReconnectBackoffMin
	}
	if c.ReconnectBackoffMax == 0 {
		c.ReconnectBackoffMax = max(DefaultReconnectBackoffMax, c.ReconnectBackoffMin)
	}
	if c.ReapIdleAfter == 0 {
		c.ReapIdleAfter = DefaultReapIdleAfter
	}
	if c.ReapMinAge == 0 {
		c.ReapMinAge = DefaultReapMinAge
	}
	if c.WriteBufferLimit == 0 {
		c.WriteBufferLimit = DefaultWriteBufferLimit
	}
	if c.MaxUserStreams == 0 {
		c.MaxUserStreams = DefaultMaxUserStreams
	}
	if c.UserStreamWindow == 0 {
		c.UserStreamWindow = DefaultUserStreamWindow
	}
	if c.MaxPeers == 0 {
		c.MaxPeers = DefaultMaxPeers
	}
	if c.ShutdownGrace == 0 {
		c.ShutdownGrace = DefaultShutdownGrace
	}
	if c.SessionGrace == 0 {
		c.SessionGrace = DefaultSessionGrace
	}
	if c.SessionBuffer == 0 {
		c.SessionBuffer = DefaultSessionBuffer
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate reports whether c, with its defaults filled in, is usable. It
// names every bad field relative to Config ("DataStreams 0 out of range
// 1..1024"); a bad Name or Peers key wraps ErrBadNodeName. New prefixes
// "dist: invalid config".
func (c Config) Validate() error {
	c = c.WithDefaults()
	var errs []error
	if err := ValidateNodeName(c.Name); err != nil {
		errs = append(errs, fielderr.Wrap("Name", err))
	}
	for _, name := range slices.Sorted(maps.Keys(c.Peers)) {
		path := fmt.Sprintf("Peers[%q]", name)
		if err := ValidateNodeName(name); err != nil {
			errs = append(errs, fielderr.Wrap(path, err))
		} else if c.Peers[name] == "" {
			errs = append(errs, fielderr.New(path, "is an empty address"))
		}
	}
	if c.AdvertiseAddr != "" {
		if err := ValidAdvertiseAddr(c.AdvertiseAddr); err != nil {
			errs = append(errs, fielderr.New("AdvertiseAddr", "%v", err))
		}
	}
	if c.DataStreams < 1 || c.DataStreams > 1024 {
		errs = append(errs, fielderr.New("DataStreams", "%d out of range 1..1024", c.DataStreams))
	}
	if c.MaxMessageSize < 1 || c.MaxMessageSize > 1<<30 {
		errs = append(errs, fielderr.New("MaxMessageSize", "%d out of range 1..1 GiB", c.MaxMessageSize))
	}
	if c.PendingLimit < 1 {
		errs = append(errs, fielderr.New("PendingLimit", "%d must be positive", c.PendingLimit))
	}
	if c.ConnectTimeout < 0 {
		errs = append(errs, fielderr.New("ConnectTimeout", "%v must not be negative", c.ConnectTimeout))
	}
	if c.ReconnectBackoffMin < 0 {
		errs = append(errs, fielderr.New("ReconnectBackoffMin", "%v must be positive", c.ReconnectBackoffMin))
	}
	if c.ReconnectBackoffMax < c.ReconnectBackoffMin {
		errs = append(errs, fielderr.New("ReconnectBackoffMax", "%v must not be below ReconnectBackoffMin %v",
			c.ReconnectBackoffMax, c.ReconnectBackoffMin))
	}
	for i, r := range c.Resolvers {
		if r == nil {
			errs = append(errs, fielderr.New(fmt.Sprintf("Resolvers[%d]", i), "is nil"))
		}
	}
	if c.ReapMinAge < 0 {
		errs = append(errs, fielderr.New("ReapMinAge", "%v must not be negative", c.ReapMinAge))
	}
	if c.WriteBufferLimit < 1 {
		errs = append(errs, fielderr.New("WriteBufferLimit", "%d must be positive", c.WriteBufferLimit))
	}
	if c.SessionBuffer < 1 {
		errs = append(errs, fielderr.New("SessionBuffer", "%d must be positive", c.SessionBuffer))
	}
	if c.MaxUserStreams < 1 {
		errs = append(errs, fielderr.New("MaxUserStreams", "%d must be positive", c.MaxUserStreams))
	}
	if c.UserStreamWindow < minUserStreamWindow || c.UserStreamWindow > maxUserStreamWindow {
		errs = append(errs, fielderr.New("UserStreamWindow", "%d out of range 4 KiB..1 GiB", c.UserStreamWindow))
	}
	if c.MaxPeers < 1 {
		errs = append(errs, fielderr.New("MaxPeers", "%d must be positive", c.MaxPeers))
	}
	if c.DiscoveryPort < 1 || c.DiscoveryPort > 65535 {
		errs = append(errs, fielderr.New("DiscoveryPort", "%d out of range 1..65535", c.DiscoveryPort))
	}
	return errors.Join(errs...)
}

// Config is the configuration m runs with, defaults filled in.
func (m *Manager) Config() Config { return m.cfg }

// ValidateNodeName is identity.ValidateNodeName, Cask's one rule for node
// names: name@host, at most 255 bytes of UTF-8, no whitespace, control
// characters, '/' or '\'. A bad name fails with ErrBadNodeName.
func ValidateNodeName(name string) error { return identity.ValidateNodeName(name) }

// nodeHost returns the host part of a valid node name.
func nodeHost(name string) string {
	return name[strings.IndexByte(name, '@')+1:]
}
