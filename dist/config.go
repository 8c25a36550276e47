package dist

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/cask-p2p/cask/transport/identity"
)

// Defaults for Config. A zero field in Config means the default here.
const (
	// DefaultDataStreams is the size of the data stream pool per
	// connection. Streams are opened lazily, on first use.
	DefaultDataStreams = 16
	// DefaultMaxMessageSize caps one encoded message.
	DefaultMaxMessageSize = 16 << 20
	// DefaultPendingLimit caps messages queued per peer while its channel
	// opens.
	DefaultPendingLimit = 10000
	// DefaultConnectTimeout bounds discovery, dial and dist handshake.
	DefaultConnectTimeout = 5 * time.Second
	// DefaultReapIdleAfter: an on-demand channel with no traffic for this
	// long may be closed.
	DefaultReapIdleAfter = 60 * time.Second
	// DefaultReapMinAge: a channel younger than this is never reaped.
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
)

// Protocol versions this build speaks.
const (
	MinProtocolVersion = 1
	MaxProtocolVersion = 1
)

// Config configures the dist layer. Zero fields mean the defaults above.
type Config struct {
	// Name is this node's name, name@host. Required.
	Name string
	// Incarnation distinguishes this run of the node from earlier ones.
	// Zero means a random value.
	Incarnation uint64
	// Peers is the static discovery map: node name → UDP address.
	Peers map[string]string
	// DiscoveryDir is a directory of endpoint files, one per node, each
	// node writing its own. Empty disables this backend.
	DiscoveryDir string
	// DNSDiscovery enables the DNS backend (SRV _cask._udp.<host>, then
	// A/AAAA of <host> with DiscoveryPort). Default on; set DisableDNS to
	// turn it off.
	DisableDNS bool
	// DiscoveryPort is the port used with A/AAAA records.
	DiscoveryPort int
	// DataStreams is the data stream pool size per connection.
	DataStreams int
	// MaxMessageSize caps one encoded message, in bytes.
	MaxMessageSize int
	// PendingLimit caps messages queued per peer while connecting.
	PendingLimit int
	// ConnectTimeout bounds one connect attempt.
	ConnectTimeout time.Duration
	// ReapIdleAfter and ReapMinAge tune idle-channel reaping. A negative
	// ReapIdleAfter disables reaping.
	ReapIdleAfter time.Duration
	ReapMinAge    time.Duration
	// WriteBufferLimit is the per-stream byte count past which senders
	// block until the stream drains.
	WriteBufferLimit int
	// ShutdownGrace bounds a graceful close.
	ShutdownGrace time.Duration
	// DisableMigration is advertised in the handshake: peers must not
	// migrate connections to this node.
	DisableMigration bool
	// Logger receives structured logs; nil means slog.Default().
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.DiscoveryPort == 0 {
		c.DiscoveryPort = DefaultDiscoveryPort
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
	if c.ReapIdleAfter == 0 {
		c.ReapIdleAfter = DefaultReapIdleAfter
	}
	if c.ReapMinAge == 0 {
		c.ReapMinAge = DefaultReapMinAge
	}
	if c.WriteBufferLimit == 0 {
		c.WriteBufferLimit = DefaultWriteBufferLimit
	}
	if c.ShutdownGrace == 0 {
		c.ShutdownGrace = DefaultShutdownGrace
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

func (c Config) validate() error {
	if err := ValidateNodeName(c.Name); err != nil {
		return err
	}
	for name, addr := range c.Peers {
		if err := ValidateNodeName(name); err != nil {
			return fmt.Errorf("dist: Peers: %w", err)
		}
		if addr == "" {
			return fmt.Errorf("dist: Peers: %s has an empty address", name)
		}
	}
	switch {
	case c.DataStreams < 1 || c.DataStreams > 1024:
		return fmt.Errorf("dist: DataStreams %d out of range 1..1024", c.DataStreams)
	case c.MaxMessageSize < 1 || c.MaxMessageSize > 1<<30:
		return fmt.Errorf("dist: MaxMessageSize %d out of range 1..1 GiB", c.MaxMessageSize)
	case c.PendingLimit < 1:
		return fmt.Errorf("dist: PendingLimit %d must be positive", c.PendingLimit)
	case c.ConnectTimeout < 0:
		return fmt.Errorf("dist: ConnectTimeout %v must not be negative", c.ConnectTimeout)
	case c.ReapMinAge < 0:
		return fmt.Errorf("dist: ReapMinAge %v must not be negative", c.ReapMinAge)
	case c.WriteBufferLimit < 1:
		return fmt.Errorf("dist: WriteBufferLimit %d must be positive", c.WriteBufferLimit)
	case c.DiscoveryPort < 1 || c.DiscoveryPort > 65535:
		return fmt.Errorf("dist: DiscoveryPort %d out of range", c.DiscoveryPort)
	}
	return nil
}

// ValidateNodeName is identity.ValidateNodeName, Cask's one rule for node
// names: name@host, at most 255 bytes of UTF-8, no whitespace, control
// characters, '/' or '\'. A bad name fails with ErrBadNodeName.
func ValidateNodeName(name string) error { return identity.ValidateNodeName(name) }

// hostOf returns the host part of a valid node name.
func hostOf(name string) string {
	return name[strings.IndexByte(name, '@')+1:]
}
